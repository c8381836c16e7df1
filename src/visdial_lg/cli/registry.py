"""The command registry: each stage module of `visdial_lg.cli` registers its commands,
each with the function that adds its arguments and the handler that runs it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from ..core.config import Config

CONFIG_HELP = "config as inline JSON (as the rules pass it) or a YAML file"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    # handler(args, config): config is the typed `--config` (None for a command without one).
    handler: Callable[[argparse.Namespace, Config | None], None]
    config: bool  # whether build_parser adds --config (`figure` adds it to each figure instead)


# Name -> command, in registration order (the order `visdial-lg --help` lists them).
COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None], *, config: bool = True):
    """Register the decorated handler as `visdial-lg NAME`; `arguments(parser)` adds its
    arguments (--config is added here when `config`)."""

    def register(handler):
        if name in COMMANDS:
            raise ValueError(f"command {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, arguments, handler, config)
        return handler

    return register


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--neutral-config", help="settings that do not change the results (worker counts, "
                        "batching, log interval: core.config.RESULT_NEUTRAL_KEYS) as JSON or YAML, put into "
                        "--config; the rules pass them apart so that a change of them reruns no job")
