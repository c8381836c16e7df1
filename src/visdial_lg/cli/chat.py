"""`chat`: a dialog with a trained run about your own image (chat/, docs/chat.md)."""

from __future__ import annotations

from pathlib import Path

from .registry import command


def _positive(text: str) -> int:
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _chat_arguments(p):
    p.add_argument("--run", required=True, help="run id, e.g. v1.0-ltmi-gen")
    p.add_argument("--image", required=True, type=Path, help="the image to talk about (.jpg/.png)")
    p.add_argument("--directory", default=".", type=Path,
                   help="the pipeline folder holding results/ (e.g. demo); default: the current one")
    p.add_argument("--caption", default="", help="the dialog's caption, its first history entry (default: none)")
    p.add_argument("--questions", type=Path, metavar="FILE",
                   help="a JSON list of questions: answer them in order and print the rounds as JSON")
    p.add_argument("--figure", type=Path, metavar="OUT.png", help="draw each round's top regions, one row per round")
    p.add_argument("--pool-size", type=_positive, metavar="N",
                   help="retrieve from the N most frequent train answers only (default: all)")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="the detector weights file the run's features were extracted with (trained weights "
                        "only; default: features.weights of --config, relative to --directory)")
    p.add_argument("--device", default="cpu")


@command("chat", "a dialog about your own image with a trained run: generated and retrieved answers, "
                 "the regions it looked at", _chat_arguments)
def _chat(args, config):
    from ..chat.terminal import chat_command

    chat_command(args.run, args.image, directory=args.directory, caption=args.caption, questions=args.questions,
                 figure=args.figure, beam_width=config.generation.beam_width, pool_size=args.pool_size,
                 weights=args.weights, weights_setting=config.features.weights, device=args.device)
