"""`visdial-lg <command>`: argument parsing only; every command calls one stage module.

Stage modules are imported inside the handlers so that `visdial-lg --help` and
the light commands start without importing torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from .config import parse_config_arg
from .errors import VisdialLGError

_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(name: str):
    def register(fn):
        _COMMANDS[name] = fn
        return fn

    return register


def _config(args: argparse.Namespace) -> dict:
    return parse_config_arg(args.config) if getattr(args, "config", None) else {}


# --------------------------------------------------------------------------- data


@command("download")
def _download(args):
    from .data.download import download

    download(args.url, args.out, sha256=args.sha256, size=args.size, lock=args.lock, name=args.name,
             retries=args.retries, timeout_s=args.timeout)


@command("unzip")
def _unzip(args):
    from .data.archive import safe_extract_zip

    safe_extract_zip(args.zip, args.out, args.manifest)


@command("make-demo")
def _make_demo(args):
    from .config import DemoConfig

    cfg = DemoConfig.from_dict(_config(args).get("demo", {}), "demo")
    from .data.demo import make_demo

    make_demo(cfg, args.out)


@command("vocab")
def _vocab(args):
    from .config import TextConfig
    from .data.vocab import build_vocabulary_file

    build_vocabulary_file(
        args.train_json, args.out, TextConfig.from_dict(_config(args).get("text", {}), "text"),
        glove_path=args.glove, glove_out=args.glove_out,
    )


@command("tokenize")
def _tokenize(args):
    from .config import TextConfig
    from .data.tokens import tokenize_split

    tokenize_split(
        args.json, args.vocab, args.out, TextConfig.from_dict(_config(args).get("text", {}), "text"),
        version=args.version, split=args.split, dense_path=args.dense,
    )


# ------------------------------------------------------------------------ training


@command("train")
def _train(args):
    from .config import validate
    from .train import TrainInputs, train

    inputs = TrainInputs(tokens=args.tokens, features=args.features, vocab=args.vocab, glove=args.glove)
    train(args.run, inputs, args.out_dir, validate(_config(args)), device=args.device)


# ----------------------------------------------------------------------- argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visdial-lg",
        description="visdial-lg: the stages of the LTMI-LG pipeline (each a Snakemake rule).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if config:
            p.add_argument("--config", help="config as inline JSON (as the rules pass it) or a YAML file")
        return p

    p = add("download", "download a file, resumable (HTTP Range) and verified (size, sha256)", config=False)
    p.add_argument("url", help="http://, https:// or file:// URL")
    p.add_argument("--out", required=True, help="destination file (written as OUT.part until verified)")
    p.add_argument("--sha256", help="published sha256; without it the --lock file pins it on first use")
    p.add_argument("--size", type=int, help="expected size in bytes")
    p.add_argument("--lock", help="JSON checksum lock file (e.g. resources/checksums.lock)")
    p.add_argument("--name", help="entry name in the lock file (default: the file name of --out)")
    p.add_argument("--retries", type=int, default=5, help="retries without progress before giving up")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry")

    p = add("unzip", "extract a zip safely (no absolute/.. paths, no symlinks; CRC-checked)", config=False)
    p.add_argument("zip")
    p.add_argument("--out", required=True, help="folder to create with the zip's content")
    p.add_argument("--manifest", required=True, help="manifest JSON listing the extracted files")

    p = add("make-demo", "write the synthetic grounded visual-dialog dataset")
    p.add_argument("--out", required=True, help="output folder (e.g. resources/demo)")

    p = add("vocab", "build the vocabulary from a train split")
    p.add_argument("--train-json", required=True)
    p.add_argument("--out", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe text file (word + 300 floats per line)")
    p.add_argument("--glove-out", help="where to write the GloVe-initialised embedding (.pt)")

    p = add("tokenize", "tokenize one VisDial split into the tokens HDF5")
    p.add_argument("--json", required=True, help="VisDial dialogs JSON")
    p.add_argument("--vocab", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--version", required=True, choices=["v0.9", "v1.0"])
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--dense", help="dense annotations JSON (v1.0 val)")

    p = add("train", "train one run; resumes from OUT_DIR/last.pt (launch with torchrun for several GPUs)")
    p.add_argument("--run", required=True, help="run id VERSION-MODEL-DECODER, e.g. v1.0-lg_attn_kl-disc")
    p.add_argument("--tokens", required=True, help="train tokens HDF5")
    p.add_argument("--features", required=True, help="features HDF5 of the train images")
    p.add_argument("--vocab", required=True, help="vocabulary JSON")
    p.add_argument("--glove", help="GloVe-initialised embedding (.pt) from `visdial-lg vocab`")
    p.add_argument("--out-dir", required=True, help="run folder (e.g. results/runs/RUN)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available); torchrun: one GPU per rank")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except VisdialLGError as e:
        print(f"visdial-lg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("visdial-lg: interrupted; partial work is kept and resumes on the next run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
