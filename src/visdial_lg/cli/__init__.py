"""`visdial-lg <command>`: argument parsing only; every command calls one stage module.

Each module here registers its stage's commands (`registry.command`), the arguments
of a command right above its handler. Stage modules are imported inside the handlers
so that `visdial-lg --help` and the light commands start without importing torch.
`--config` is read and validated once, here, into the typed `Config` the handlers get.
"""

from __future__ import annotations

import argparse
import sys

from ..core.config import Config, merge_neutral_config, parse_config_arg
from ..core.errors import VisdialLGError, one_line
from . import chat, demo, download, evaluation, features, report, text, training
from .registry import COMMANDS, add_config_argument

# The modules whose import registered the commands, in the order `--help` lists them (the pipeline's).
STAGES = (download, demo, text, training, features, evaluation, report, chat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visdial-lg",
        description="visdial-lg: the stages of the LTMI-LG pipeline (each a Snakemake rule).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    order = [stage.__name__ for stage in STAGES]
    # sorted is stable: a module's commands keep the order they are registered in.
    for cmd in sorted(COMMANDS.values(), key=lambda c: order.index(c.handler.__module__)):
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.config:
            add_config_argument(p)
        cmd.arguments(p)
    return parser


def _config(args: argparse.Namespace) -> Config | None:
    """The typed `--config` of a command that takes one (the schema's defaults without it)."""
    if "config" not in vars(args):
        return None
    raw = parse_config_arg(args.config) if args.config else {}
    if getattr(args, "neutral_config", None):
        raw = merge_neutral_config(raw, parse_config_arg(args.neutral_config))
    return Config.from_dict(raw)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command].handler(args, _config(args))
    except VisdialLGError as e:
        print(f"visdial-lg: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # A stage that knows what it saved says so (train); otherwise only saved work resumes.
        kept = e.args[0] if e.args else "work already saved (extracted rows, finished epochs) resumes on the next run"
        print(f"visdial-lg: interrupted; {kept}", file=sys.stderr)
        return 130
    return 0
