"""Where the pipeline writes each result, as Snakemake path patterns (docs/formats.md).

The rules use these patterns as their outputs (the `{...}` are wildcards) and the
report derives each table's inputs from them, so a path is written down once.
"""

from __future__ import annotations

from pathlib import Path

from .runs import parse_run_id, seed_suffix

# A run id, e.g. v1.0-lg_attn_kl-multi or v1.0-lg_attn_kl-multi@s2 (core/runs.py); {seed} is
# the id's seed part, empty for seed 0.
RUN = "{version}-{model}-{decoder}{seed}"

VOCAB = "results/text/{version}_vocab.json"
GLOVE = "results/text/{version}_glove.pt"
TOKENS = "results/text/{version}_{split}.h5"
FEATURES = "results/features/{imageset}.h5"
# Region features are extracted per image set (docs/formats.md): which set a split's images are in.
IMAGESET_OF = {
    ("v0.9", "train"): "trainval2014",
    ("v0.9", "val"): "trainval2014",
    ("v1.0", "train"): "trainval2014",
    ("v1.0", "val"): "val2018",
    ("v1.0", "test"): "test2018",
}
CHECKPOINT = f"results/runs/{RUN}/checkpoint.pt"
EVALUATION = f"results/runs/{RUN}/{{split}}_{{grounding}}.json"
RANKS_SUFFIX = ".ranks.npz"  # beside each evaluation's metrics JSON: its per-round ranks
RANKS = EVALUATION.removesuffix(".json") + RANKS_SUFFIX
GROUNDING = f"results/grounding/{RUN}_{{split}}.json"
HUMAN_EVAL_SHEET = "results/human_eval/sheet.csv"
# The demo dataset (`visdial-lg make-demo`), and the region boxes its features are extracted with.
DEMO_ROOT = "resources/demo"
DEMO_BOXES = f"{DEMO_ROOT}/region_boxes.json"
HUMAN_EVAL_KEY = "results/human_eval/key.json"


def _run_fields(run: str) -> dict:
    spec = parse_run_id(run)
    return {"version": spec.version, "model": spec.model, "decoder": spec.decoder, "seed": seed_suffix(spec.seed)}


def checkpoint_path(run: str) -> str:
    return CHECKPOINT.format(**_run_fields(run))


def evaluation_path(run: str, split: str, grounding: str = "prior") -> str:
    return EVALUATION.format(**_run_fields(run), split=split, grounding=grounding)


def ranks_path(run: str, split: str, grounding: str = "prior") -> str:
    return RANKS.format(**_run_fields(run), split=split, grounding=grounding)


def ranks_file(metrics_json: str | Path) -> Path:
    """Where the ranks of an evaluation lie: `<split>_<variant>.ranks.npz` next to its JSON."""
    return Path(metrics_json).with_suffix(RANKS_SUFFIX)


def features_path(version: str, split: str) -> str:
    return FEATURES.format(imageset=IMAGESET_OF[(version, split)])


def tokens_path(version: str, split: str) -> str:
    return TOKENS.format(version=version, split=split)


def grounding_path(run: str, split: str) -> str:
    return GROUNDING.format(**_run_fields(run), split=split)


class _KeepMissing(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def fill(pattern: str, **values) -> str:
    """`pattern` with some wildcards filled in and the others kept, e.g.
    fill(EVALUATION, split="test", grounding="prior") for the rule that evaluates test."""
    return pattern.format_map(_KeepMissing(values))
