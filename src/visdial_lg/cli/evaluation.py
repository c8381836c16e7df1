"""`evaluate`, `grounding`, `human-eval-sheet`: scoring trained runs (evaluation/)."""

from __future__ import annotations

from pathlib import Path

from ..core.runs import GROUNDING_VARIANTS
from .registry import command


def _evaluate_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--split", required=True, choices=["train", "val", "test"])
    p.add_argument("--grounding", default="prior", choices=GROUNDING_VARIANTS)
    p.add_argument("--oracle", type=Path, help="grounding annotations JSON (for --grounding oracle)")
    p.add_argument("--test-answers", type=Path, help="held-back test answers (the demo)")
    p.add_argument("--submission", type=Path, help="where to write the EvalAI submission (test)")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON")
    p.add_argument("--device", default="cpu")


@command("evaluate", "metrics of a trained run on one split, with one grounding variant", _evaluate_arguments)
def _evaluate(args, config):
    from ..evaluation.evaluate import EvalInputs, evaluate

    inputs = EvalInputs(
        checkpoint=args.checkpoint, tokens=args.tokens, features=args.features, split=args.split,
        grounding=args.grounding, oracle=args.oracle, test_answers=args.test_answers,
        submission=args.submission,
    )
    evaluate(inputs, args.out, batch_size=config.evaluate.batch_size, device=args.device)


def _grounding_arguments(p):
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--vocab", type=Path, help="vocabulary (to read the rounds' words)")
    p.add_argument("--coco-instances", type=Path, help="COCO-format instances of the split's images")
    p.add_argument("--grounding", type=Path, help="round boxes JSON, instead of COCO instances")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="cpu")


@command("grounding", "grounding accuracy of a run's top-3 regions (Table 3)", _grounding_arguments)
def _grounding(args, config):
    from ..evaluation.grounding import grounding_accuracy, load_annotations

    annotations, source = load_annotations(args.coco_instances, args.grounding, args.tokens, args.vocab)
    grounding_accuracy(args.checkpoint, args.tokens, args.features, args.out, annotations=annotations,
                       source=source, samples=config.evaluate.grounding_samples,
                       batch_size=config.evaluate.batch_size, device=args.device)


def _human_eval_sheet_arguments(p):
    p.add_argument("--ltmi", required=True, type=Path, help="val metrics JSON of LTMI (gen)")
    p.add_argument("--lg", required=True, type=Path, help="val metrics JSON of LTMI-LG (gen)")
    p.add_argument("--tokens", required=True, type=Path)
    p.add_argument("--vocab", required=True, type=Path)
    p.add_argument("--sheet", required=True, type=Path)
    p.add_argument("--key", required=True, type=Path)


@command("human-eval-sheet", "the blinded human-evaluation sheet of Table 7", _human_eval_sheet_arguments)
def _human_eval_sheet(args, config):
    from ..evaluation.human import write_sheet

    write_sheet({"ltmi": args.ltmi, "lg": args.lg}, args.tokens, args.vocab, args.sheet, args.key,
                samples=config.evaluate.human_eval_samples)
