"""The GPU time of reproducing the whole paper on one GPU, from measured rates (issue 14, goal 3).

The goal: at most 12 GPU-hours on one H100.

Adds up, from the rates file: the feature extraction of every image set the DAG reads; every
training run the paper's tables need, for `train.epochs` epochs (the schema's default, the
paper's 20); every evaluation, and the grounding accuracy of Table 3. The runs and evaluations
are the project's own lists (`report.tables.ROWS` / `table_inputs`, `report.significance.
significance_inputs`, the human-evaluation sheet's and the figures' runs), so the cost follows
the DAG. Nothing runs: a pure calculation, a fraction of a second on any machine. Prints one
JSON object: per stage and per item the count, units, rate and hours, the total GPU-hours,
the goal and whether it is met, where each rate came from and every assumption.

    .venv/bin/python bench/paper_cost.py [--seeds 0,1,2] [--versions v0.9,v1.0] \\
        [--extraction whole_pipeline|detector] [--rates bench/rates/h100-2026-11.json] > cost.json

The rates file (JSON; bench/rates/h100-2026-11.json is the last H100 measurement):

    {"machine": "...", "note": "...",
     "extraction": {"whole_pipeline": FIGURE, "detector": FIGURE},        # images/s
     "training": {"<model>-<decoder>": FIGURE, ...},                     # dialogs/s
     "scoring": {"<model>-<decoder>": FIGURE, ...},                      # dialogs/s
     "reference": {...}}                                                 # optional, not used
    FIGURE = {"value": number > 0, "unit": "...", "setting": "...", "source": "where it was measured"}

`<model>` is `ltmi` or an LG model (`lg_attn_kl`, ...), `<decoder>` gen, disc or multi. A run
kind missing from `training` or `scoring` takes, in this order: the `lg_attn_kl` figure of the
same decoder (for the other LG losses: the same network, another grounding loss), then the other
family's figure of the same decoder (`ltmi-<decoder>` for an LG run, `lg_attn_kl-<decoder>` for
LTMI). The output names the figure each item used and the rule that chose it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from visdial_lg.core.config import Config  # noqa: E402
from visdial_lg.core.paths import IMAGESET_OF, evaluation_path, grounding_path  # noqa: E402
from visdial_lg.core.runs import LG, RunSpec, main_version, parse_run_id  # noqa: E402
from visdial_lg.report.significance import significance_inputs  # noqa: E402
from visdial_lg.report.tables import TABLES, table_inputs  # noqa: E402

DEFAULT_RATES = Path(__file__).resolve().parent / "rates" / "h100-2026-11.json"
GOAL_GPU_HOURS = 12  # issue 14, goal 3: the whole paper in at most 12 GPU-hours on one H100

# Dialogs per split (VisDial: one dialog per image; docs/formats.md and docs/upstream.md give the
# same image counts).
DIALOGS = {
    ("v1.0", "train"): 123_287,  # VisDial v1.0 train: all of COCO train2014 + val2014
    ("v1.0", "val"): 2_064,  # VisDial v1.0 val: VisualDialog_val2018 (docs/formats.md)
    ("v1.0", "test"): 8_000,  # VisDial v1.0 test-std: VisualDialog_test2018 (docs/formats.md)
    ("v0.9", "train"): 82_783,  # VisDial v0.9 train: COCO train2014 (docs/upstream.md)
    ("v0.9", "val"): 40_504,  # VisDial v0.9 val: COCO val2014 (docs/upstream.md)
}
# Images per image set (core/paths.py IMAGESET_OF; docs/formats.md, docs/upstream.md).
IMAGES = {
    "trainval2014": 82_783 + 40_504,  # COCO train2014 + val2014 = 123,287
    "val2018": 2_064,  # VisualDialog_val2018
    "test2018": 8_000,  # VisualDialog_test2018
}
ROUNDS_PER_DIALOG = 10  # VisDial: 10 question-answer rounds a dialog (docs/formats.md, R = 10)
FIGURE_KEYS = ("value", "unit", "setting", "source")


def load_rates(path: Path) -> dict:
    rates = json.loads(path.read_text())
    for key in ("machine", "note", "extraction", "training", "scoring"):
        if key not in rates:
            raise SystemExit(f"{path}: no '{key}' (see the format in {Path(__file__).name}'s docstring)")
    for section in ("extraction", "training", "scoring"):
        for name, figure in rates[section].items():
            missing = [k for k in FIGURE_KEYS if k not in figure]
            if missing or not isinstance(figure["value"], (int, float)) or figure["value"] <= 0:
                raise SystemExit(f"{path}: {section}.{name} needs {', '.join(FIGURE_KEYS)} with value > 0")
    for name in ("whole_pipeline", "detector"):
        if name not in rates["extraction"]:
            raise SystemExit(f"{path}: no extraction.{name}")
    return rates


def kind_rate(rates: dict, section: str, model: str, decoder: str) -> tuple[str, dict, str]:
    """The figure of `section` for a run of `model` and `decoder`: (key, figure, the rule that chose it)."""
    family = "lg" if model.startswith("lg_") else "ltmi"
    candidates = [(f"{model}-{decoder}", "measured for this kind")]
    if family == "lg" and model != LG:
        candidates.append((f"{LG}-{decoder}", f"the {LG} figure of the same decoder (another LG loss, same network)"))
    other = "ltmi" if family == "lg" else LG
    candidates.append((f"{other}-{decoder}", f"not measured: the {other} figure of the same decoder"))
    for key, rule in candidates:
        if key in rates[section]:
            return key, rates[section][key], rule
    raise SystemExit(f"rates: no {section} figure for {model}-{decoder} (tried {', '.join(k for k, _ in candidates)})")


def parse_evaluation(path: str) -> tuple[str, str, str]:
    """results/runs/<run>/<split>_<grounding>.json -> (run, split, grounding), checked against core/paths.py."""
    run, _, name = path.removeprefix("results/runs/").removesuffix(".json").partition("/")
    split, _, grounding = name.partition("_")
    parse_run_id(run)
    if evaluation_path(run, split, grounding) != path:
        raise SystemExit(f"unexpected evaluation path {path} (core/paths.py EVALUATION changed?)")
    return run, split, grounding


def parse_grounding(path: str) -> tuple[str, str]:
    """results/grounding/<run>_<split>.json -> (run, split); the run id may hold '_', the split does not."""
    run, _, split = path.removeprefix("results/grounding/").removesuffix(".json").rpartition("_")
    parse_run_id(run)
    if grounding_path(run, split) != path:
        raise SystemExit(f"unexpected grounding path {path} (core/paths.py GROUNDING changed?)")
    return run, split


def paper_dag(versions: tuple[str, ...], seeds: tuple[int, ...]) -> dict:
    """The GPU jobs of the tables, the significance tests, the human-evaluation sheet and the figures."""
    files = [p for n in TABLES for p in table_inputs(n, versions, seeds)] + significance_inputs(versions, seeds)
    main = main_version(versions)  # workflow/rules/evaluate.smk human_eval_sheet, report.smk dialog_figure
    # common.smk run_id(): their runs are those of the first seed
    figure_runs = [RunSpec(main, model, "gen", seeds[0]).run_id for model in ("ltmi", LG)]
    files += [evaluation_path(run, "val") for run in figure_runs]
    evaluations, groundings, skipped = set(), set(), set()
    for path in files:
        if path.startswith("results/runs/") and path.endswith(".json"):
            evaluations.add(parse_evaluation(path))
        elif path.startswith("results/grounding/"):
            groundings.add(parse_grounding(path))
        else:  # the ranks beside each metrics JSON (same job); Table 7's sheet and key (CPU)
            skipped.add(path)
    runs = {run for run, *_ in evaluations} | {run for run, _ in groundings}
    # The attention figures (Figure 4) load the checkpoints of the human evaluation's runs.
    runs |= set(figure_runs)
    return {"runs": runs, "evaluations": evaluations, "groundings": groundings, "skipped": skipped}


def end_to_end(rates: dict) -> str:
    """What the rates file's end-to-end training figure, if any, says of the rates used."""
    reference = rates.get("reference", {}).get(f"training_end_to_end_{LG}-multi")
    measured = rates["training"].get(f"{LG}-multi")
    if not reference or not measured:
        return "no end-to-end training figure to compare with."
    slower = 100 * (1 - reference["value"] / measured["value"])
    return (f"train() end to end ({LG}-multi, data loader included) ran {reference['value']} against "
            f"{measured['value']} dialogs/s, {slower:.0f} % slower: the training stage is a lower bound by about that.")


def item(name: str, count: int, units_each: float, unit: str, key: str, figure: dict, rule: str | None = None,
         **extra) -> dict:
    seconds = count * units_each / figure["value"]
    out = {"item": name, "count": count, "units_each": units_each, "units": count * units_each, "unit": unit,
           "rate": figure["value"], "rate_unit": figure["unit"], "rate_key": key}
    if rule is not None:
        out["rate_rule"] = rule
    out.update(extra)
    out["gpu_s"] = round(seconds, 1)
    out["gpu_hours"] = round(seconds / 3600, 3)
    out["_seconds"] = seconds
    return out


def stage(items: list[dict], **extra) -> dict:
    seconds = sum(i.pop("_seconds") for i in items)
    return {"gpu_hours": round(seconds / 3600, 3), "gpu_s": round(seconds, 1), **extra, "items": items,
            "_seconds": seconds}


def grouped(keys) -> dict:
    """(run, *rest) keys grouped by (base run id, *rest): the seeds of one table cell together."""
    groups = defaultdict(list)
    for run, *rest in sorted(keys):
        groups[(parse_run_id(run).base_id, *rest)].append(run)
    return dict(sorted(groups.items()))


def main() -> None:
    defaults = Config.from_dict({})  # the schema's defaults: the paper's settings
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(str(s) for s in defaults.train.seeds), help="train.seeds")
    parser.add_argument("--versions", default=",".join(defaults.versions))
    parser.add_argument("--extraction", choices=["whole_pipeline", "detector"], default="whole_pipeline",
                        help="which extraction figure: the whole pipeline (default) or the detector alone")
    parser.add_argument("--rates", type=Path, default=DEFAULT_RATES, help="measured rates (format: docstring)")
    args = parser.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    versions = tuple(args.versions.split(","))
    config = Config.from_dict({"versions": list(versions), "train": {"seeds": list(seeds)}})
    epochs, samples = config.train.epochs, config.evaluate.grounding_samples
    rates = load_rates(args.rates)
    dag = paper_dag(versions, seeds)
    used, derived = {}, {}

    def rate(section, model, decoder):
        key, figure, rule = kind_rate(rates, section, model, decoder)
        used[f"{section}.{key}"] = figure
        if key != f"{model}-{decoder}":
            derived[f"{section}.{model}-{decoder}"] = f"{section}.{key}"
        return f"{section}.{key}", figure, rule

    # Extraction: every image set whose features a training run or an evaluation reads.
    needs = {(parse_run_id(r).version, "train") for r in dag["runs"]}
    needs |= {(parse_run_id(r).version, split) for r, split, _ in dag["evaluations"]}
    needs |= {(parse_run_id(r).version, split) for r, split in dag["groundings"]}
    imagesets = sorted({IMAGESET_OF[need] for need in needs})
    figure = rates["extraction"][args.extraction]
    used[f"extraction.{args.extraction}"] = figure
    extraction = stage([item(s, 1, IMAGES[s], "images", f"extraction.{args.extraction}", figure,
                             read_by=sorted(f"{v} {split}" for v, split in needs if IMAGESET_OF[(v, split)] == s))
                        for s in imagesets])

    # Training: each run, `epochs` passes over its version's train split.
    items = []
    for (base,), runs in grouped((r,) for r in dag["runs"]).items():
        spec = parse_run_id(runs[0])
        key, figure, rule = rate("training", spec.model, spec.decoder)
        items.append(item(base, len(runs), epochs * DIALOGS[(spec.version, "train")],
                          f"dialogs ({epochs} epochs x {DIALOGS[(spec.version, 'train')]:,} {spec.version} train)",
                          key, figure, rule, runs=runs))
    training = stage(items)

    # Evaluation: every round of every dialog of the split scored (test too: its dialogs are padded
    # to 10 rounds and scored whole, evaluation/evaluate.py), at the run kind's scoring rate.
    items = []
    for (base, split, grounding), runs in grouped(dag["evaluations"]).items():
        spec = parse_run_id(runs[0])
        key, figure, rule = rate("scoring", spec.model, spec.decoder)
        items.append(item(f"{base} {split} {grounding}", len(runs), DIALOGS[(spec.version, split)],
                          f"dialogs ({spec.version} {split})", key, figure, rule, runs=runs))
    evaluation = stage(items)

    # Grounding accuracy (Table 3): evaluation/grounding.py runs the model over the whole split and
    # only then samples `grounding_samples` rounds, so the whole split is costed.
    items = []
    for (base, split), runs in grouped(dag["groundings"]).items():
        spec = parse_run_id(runs[0])
        key, figure, rule = rate("scoring", spec.model, spec.decoder)
        items.append(item(f"{base} {split}", len(runs), DIALOGS[(spec.version, split)],
                          f"dialogs ({spec.version} {split}, all of them)", key, figure, rule, runs=runs))
    sampled_s = sum(i["count"] * samples / ROUNDS_PER_DIALOG / i["rate"] for i in items)
    grounding = stage(items, note=(
        f"region distributions of every {', '.join(sorted({s for _, s in dag['groundings']}))} dialog "
        f"(evaluation/grounding.py loops over the whole split, then samples {samples} of the annotated "
        f"rounds, evaluate.grounding_samples); were only the {samples} sampled rounds run "
        f"({samples} / {ROUNDS_PER_DIALOG} rounds = {samples // ROUNDS_PER_DIALOG} dialogs-worth a run), "
        f"this stage would be {sampled_s:.1f} GPU-s"))

    stages = {"extraction": extraction, "training": training, "evaluation": evaluation, "grounding": grounding}
    total_s = sum(s.pop("_seconds") for s in stages.values())
    total = round(total_s / 3600, 2)
    evaluated_val = {run for run, split, grounding in dag["evaluations"] if split == "val" and grounding == "prior"}
    print(json.dumps({
        "total_gpu_hours": total,
        "goal": {"gpu_hours": GOAL_GPU_HOURS, "met": total_s / 3600 <= GOAL_GPU_HOURS,
                 "source": "issue 14, goal 3: the whole paper on one H100 in at most 12 GPU-hours"},
        "per_stage_gpu_hours": {name: s["gpu_hours"] for name, s in stages.items()},
        "settings": {"versions": versions, "seeds": seeds, "epochs": epochs,
                     "epochs_source": "train.epochs default, src/visdial_lg/resources/config.schema.yaml",
                     "extraction_rate": args.extraction, "grounding_samples": samples},
        "counts": {"image_sets": len(imagesets), "training_runs": len(dag["runs"]),
                   "evaluations": len(dag["evaluations"]), "grounding_measurements": len(dag["groundings"]),
                   "runs_without_val_prior_evaluation": sorted(dag["runs"] - evaluated_val)},
        "stages": stages,
        "rates": {"file": str(args.rates), "machine": rates["machine"], "note": rates["note"],
                  "used": dict(sorted(used.items()))},
        "assumptions": [
            "One GPU, jobs one after another: GPU-hours are the sum of each job's units / rate; start-up, "
            "checkpoint writes, interpreter and import time are not counted.",
            f"Training: {epochs} epochs over the version's whole train split per run, at the bench/train.py "
            f"bf16 rate (batches already on the GPU); {end_to_end(rates)}",
            "Training and scoring rates were measured at v1.0 shapes (vocabulary 11,322); v0.9 runs use the "
            "same rates per dialog.",
            f"Kinds without a figure of their own take another's (rule in the docstring; each item's "
            f"rate_rule): {'; '.join(f'{k} <- {v}' for k, v in sorted(derived.items())) or 'none'}.",
            "Evaluation: the bench/model_step.py scoring rate (model alone, bf16, no data loading) over every "
            "dialog of the split; evaluate runs without autocast (fp32) and with the data loader, so it "
            "may be slower; the mean / random / oracle groundings cost what prior costs.",
            "Test (v1.0, Table 2): all 8,000 dialogs scored whole (padded to 10 rounds), as evaluate does.",
            "Grounding accuracy (Table 3): no measured rate; costed at the run's scoring rate over the "
            "whole split (the encoder over the same dialogs without ranking the options; see its note).",
            "Extraction: each needed image set once (trainval2014 serves v0.9 train, v0.9 val and v1.0 "
            "train); the whole-pipeline figure was taken before channels_last and the writer thread "
            "(docs/performance.md), the detector-alone figure is its ceiling.",
        ],
        "not_counted": [
            "Figure 4 (attention_figures): a forward pass over evaluate.figure_samples "
            f"({config.evaluate.figure_samples}) questions with 2 checkpoints: seconds.",
            "CPU stages: downloads, vocabularies, tokenization, feature merges, the human-evaluation sheet, "
            "tables and significance tests, Figure 5.",
            "Paths read but written by the same GPU job: the ranks (.ranks.npz) beside each evaluation; "
            "Table 7's sheet and key (CPU job).",
        ],
    }, indent=1))


if __name__ == "__main__":
    main()
