# Shared definitions: config validation, where each input comes from (demo,
# a user's local copy, or a download), run ids and the command line of our CLI.
# Functions only; rules live in the stage files.

import json
import os
import shlex
import sys
from pathlib import Path

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from visdial_lg.core.config import ConfigError, validate  # noqa: E402
from visdial_lg.core.runs import DECODERS, GROUNDING_VARIANTS, LG, LG_LOSSES, MODELS, VERSIONS  # noqa: E402

try:
    validate(config)  # in place: fills the schema's defaults
except ConfigError as error:
    raise WorkflowError(f"config: {error}")

DEMO = config["dataset"] == "demo"

# Rules call the package as `python -m visdial_lg`: the conda envs (or the
# environment Snakemake runs in) hold the dependencies, and `src/` goes on
# PYTHONPATH after conda activation (conda envs drop an inherited PYTHONPATH),
# relative to the working directory so that moving the checkout changes nothing.
# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning; with spinning,
# jobs that share cores (2-core machines, busy nodes) ran up to 3x slower.
shell.prefix(
    "set -euo pipefail; export OMP_WAIT_POLICY=PASSIVE PYTHONPATH={}; ".format(
        shlex.quote(os.path.relpath(REPO / "src"))
    )
)

SPLITS = {"v0.9": ["train", "val"], "v1.0": ["train", "val", "test"]}
# Region features are extracted per image set (docs/formats.md).
IMAGESET_OF = {
    ("v0.9", "train"): "trainval2014",
    ("v0.9", "val"): "trainval2014",
    ("v1.0", "train"): "trainval2014",
    ("v1.0", "val"): "val2018",
    ("v1.0", "test"): "test2018",
}
IMAGE_FOLDERS = {
    "trainval2014": ["images_train2014", "images_val2014"],
    "val2018": ["images_val2018"],
    "test2018": ["images_test2018"],
}

# Every input the pipeline reads, by logical name:
#   real data: (source in config["sources"], path inside its extracted archive or None)
#   demo: path under resources/demo (written by make_demo)
REAL_INPUTS = {
    "visdial_1.0_train": ("visdial_1.0_train", "visdial_1.0_train.json"),
    "visdial_1.0_val": ("visdial_1.0_val", "visdial_1.0_val.json"),
    "visdial_1.0_test": ("visdial_1.0_test", "visdial_1.0_test.json"),
    "visdial_1.0_val_dense": ("visdial_1.0_val_dense", None),
    "visdial_1.0_train_dense": ("visdial_1.0_train_dense", None),
    "visdial_0.9_train": ("visdial_0.9_train", "visdial_0.9_train.json"),
    "visdial_0.9_val": ("visdial_0.9_val", "visdial_0.9_val.json"),
    "images_train2014": ("images_train2014", "train2014"),
    "images_val2014": ("images_val2014", "val2014"),
    "images_val2018": ("images_val2018", "VisualDialog_val2018"),
    "images_test2018": ("images_test2018", "VisualDialog_test2018"),
    "coco_instances_train2014": ("coco_annotations_2014", "annotations/instances_train2014.json"),
    "coco_instances_val2014": ("coco_annotations_2014", "annotations/instances_val2014.json"),
    "glove": ("glove", "glove.840B.300d.txt"),
    "detector_weights": ("detector_weights", None),
}
DEMO_ROOT = "resources/demo"
DEMO_MANIFEST = f"{DEMO_ROOT}/MANIFEST.json"
DEMO_INPUTS = {
    "visdial_1.0_train": "visdial_1.0_train.json",
    "visdial_1.0_val": "visdial_1.0_val.json",
    "visdial_1.0_test": "visdial_1.0_test.json",
    "visdial_1.0_val_dense": "visdial_1.0_val_dense_annotations.json",
    "visdial_1.0_train_dense": "visdial_1.0_train_dense_sample.json",
    "visdial_0.9_train": "visdial_0.9_train.json",
    "visdial_0.9_val": "visdial_0.9_val.json",
    "images_train2014": "images/train2014",
    "images_val2014": "images/val2014",
    "images_val2018": "images/VisualDialog_val2018",
    "images_test2018": "images/VisualDialog_test2018",
    "coco_instances_train2014": "annotations/instances_train2014.json",
    "coco_instances_val2014": "annotations/instances_val2014.json",
}

for _name in config["local"]:
    if _name not in REAL_INPUTS:
        raise WorkflowError(
            f"config: unknown key 'local.{_name}' (known inputs: {', '.join(sorted(REAL_INPUTS))})"
        )


def _source(name):
    source, member = REAL_INPUTS[name]
    if source not in config["sources"] or not config["sources"][source].get("url"):
        raise WorkflowError(
            f"input '{name}' needs config 'sources.{source}.url', or a local copy in 'local.{name}'"
        )
    return source, member


def input_path(name):
    """Where the input `name` lies once it is available (a file or a folder)."""
    if DEMO and name in DEMO_INPUTS:
        return f"{DEMO_ROOT}/{DEMO_INPUTS[name]}"
    if name in config["local"]:
        return config["local"][name]
    source, member = _source(name)
    if member is None:
        return f"resources/downloads/{source}"
    return f"resources/extracted/{source}/{member}"


def input_stamp(name):
    """What a job waits for to have input `name`: the demo manifest, the
    user's own copy (ancient: touching it does not rerun the pipeline), the
    download, or the manifest of the extracted archive."""
    if DEMO and name in DEMO_INPUTS:
        return DEMO_MANIFEST
    if name in config["local"]:
        return ancient(config["local"][name])
    source, member = _source(name)
    if member is None:
        return f"resources/downloads/{source}"
    return f"resources/extracted/{source}.manifest.json"


def dialogs_name(version, split):
    return f"visdial_{version[1:]}_{split}"


def config_arg(*sections):
    """The config sections a command needs, as one shell-quoted JSON argument.
    Passing them as params makes a change of these sections rerun the job."""
    return shlex.quote(json.dumps({s: config[s] for s in sections}, sort_keys=True))


# --------------------------------------------------------------------- runs

RUN_VERSION = "|".join(v.replace(".", r"\.") for v in VERSIONS)
RUN_PATTERN = f"({RUN_VERSION})-({'|'.join(MODELS)})-({'|'.join(DECODERS)})"


def run_id(version, model, decoder):
    return f"{version}-{model}-{decoder}"


def checkpoint_path(run):
    return f"results/runs/{run}/checkpoint.pt"


def evaluation_path(run, split, grounding="prior"):
    return f"results/runs/{run}/{split}_{grounding}.json"


def features_path(version, split):
    return f"results/features/{IMAGESET_OF[(version, split)]}.h5"


def tokens_path(version, split):
    return f"results/text/{version}_{split}.h5"


def oracle_arg(grounding):
    if grounding != "oracle":
        return ""
    return f"--oracle {config['evaluate']['oracle_annotations'] or f'{DEMO_ROOT}/grounding.json'}"


def grounding_annotations_input():
    user_file = config["evaluate"]["grounding_annotations"]
    return ancient(user_file) if user_file else input_stamp("coco_instances_val2014")


def grounding_annotations_arg():
    user_file = config["evaluate"]["grounding_annotations"]
    if user_file:
        return f"--grounding {user_file}"
    return f"--coco-instances {input_path('coco_instances_val2014')}"


def train_gpus():
    return config["train"]["gpus"]


def training_launcher(wildcards, resources):
    """Our CLI, under torchrun when the job trains in several processes: one per
    GPU the job asks for (resources.gpu: train.gpus, or a profile's set-resources),
    or `train.cpu_processes` on CPU (gloo)."""
    processes = resources.gpu if resources.gpu else config["train"]["cpu_processes"]
    if processes <= 1:
        return "python -m visdial_lg"
    return f"python -m torch.distributed.run --standalone --nproc-per-node {processes} -m visdial_lg"


def glove_input(wildcards):
    if config["text"]["glove"] and not DEMO:
        return f"results/text/{wildcards.version}_glove.pt"
    return []


# ------------------------------------------------------------------ features


def given_boxes_path():
    """The boxes JSON whose regions to describe instead of detecting them, or None."""
    given = config["features"]["given_boxes"]
    return f"{DEMO_ROOT}/region_boxes.json" if given == "demo" else given


def given_boxes_input():
    given = config["features"]["given_boxes"]
    if not given:
        return []
    return DEMO_MANIFEST if given == "demo" else ancient(given)


def weights_input():
    weights = config["features"]["weights"]
    if weights == "random":
        return []
    if weights == "download":
        return [input_stamp("detector_weights")]
    return [ancient(weights)]


# -------------------------------------------------------------------- tables

# The latest version drives the v1.0-only tables (val NDCG, test-std, ablations).
MAIN_VERSION = "v1.0" if "v1.0" in config["versions"] else config["versions"][-1]
# Table 3 needs object annotations: COCO instances exist for v0.9 val (val2014).
GROUNDING_VERSION = "v0.9" if "v0.9" in config["versions"] else MAIN_VERSION
HUMAN_EVAL = ["results/human_eval/sheet.csv", "results/human_eval/key.json"]


def table_inputs(n):
    """The evaluations each paper table is built from (docs/evaluation.md "Tables", paper Tables 1-7)."""
    v = MAIN_VERSION
    if n == 1:  # generative decoder, val of every version; LTMI-LG* = multi-task
        return [
            evaluation_path(run_id(version, model, decoder), "val")
            for version in config["versions"]
            for model, decoder in [("ltmi", "gen"), (LG, "gen"), (LG, "multi")]
        ]
    if n == 2:  # discriminative decoder: v0.9 val, v1.0 test-std (EvalAI submission)
        return [
            evaluation_path(run_id(version, model, "disc"), "val" if version == "v0.9" else "test")
            for version in config["versions"]
            for model in ("ltmi", LG)
        ]
    if n == 3:  # grounding accuracy with and without the answer
        return [f"results/grounding/{run_id(GROUNDING_VERSION, model, 'gen')}_val.json" for model in ("ltmi", LG)]
    if n == 4:  # distributions over regions at inference
        return [
            evaluation_path(run_id(v, "ltmi", "gen"), "val", variant) for variant in GROUNDING_VARIANTS
        ] + [evaluation_path(run_id(v, LG, "gen"), "val")]
    if n == 5:  # discriminative decoder, v1.0 val
        return [evaluation_path(run_id(v, model, "disc"), "val") for model in ("ltmi", LG)]
    if n == 6:  # ablation of the grounding loss, generative decoder
        return [evaluation_path(run_id(v, "ltmi", "gen"), "val")] + [
            evaluation_path(run_id(v, f"lg_{loss}", "gen"), "val") for loss in LG_LOSSES
        ]
    if n == 7:  # human evaluation: the blinded sheet, its key, and the judgments once filled in
        judgments = config["evaluate"]["human_judgments"]
        return HUMAN_EVAL + ([ancient(judgments)] if judgments else [])
    raise ValueError(f"no paper table {n}")


TABLES = range(1, 8)
ALL_TABLES = [f"results/table{n}.csv" for n in TABLES] + ["results/tables.md"]
