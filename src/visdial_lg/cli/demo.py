"""`make-demo`: the synthetic dataset (demo/)."""

from __future__ import annotations

from .registry import command


def _make_demo_arguments(p):
    p.add_argument("--out", required=True, help="output folder (e.g. resources/demo)")


@command("make-demo", "write the synthetic grounded visual-dialog dataset", _make_demo_arguments)
def _make_demo(args, config):
    from ..demo.make import make_demo

    make_demo(config.demo, args.out)
