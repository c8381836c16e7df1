# What several stages share: config validation, where each input comes from (demo,
# a user's local copy, or a download), the result paths (visdial_lg/core/paths.py)
# and the config sections a command gets. Rules live in the stage files.

import json
import os
import shlex
import sys
from pathlib import Path

REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from visdial_lg.core import paths  # noqa: E402
from visdial_lg.core.config import RESULT_NEUTRAL_KEYS, ConfigError, validate  # noqa: E402
from visdial_lg.core.runs import DECODERS, GROUNDING_VARIANTS, LG, MODELS, SEED_SUFFIX, VERSIONS, RunSpec, main_version  # noqa: E402

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

IMAGESET_OF = paths.IMAGESET_OF  # region features are extracted per image set
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
DEMO_ROOT = paths.DEMO_ROOT
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


# Keys no job reads: `train.seeds` says which runs the DAG has (a run's seed is in its id),
# so adding a seed reruns no job that exists already.
DAG_ONLY_KEYS = {"train": ("seeds",)}


def _result_settings(section):
    """What of a config section (or top-level value: `versions`) determines its jobs' results:
    all but the result-neutral keys."""
    if not isinstance(config[section], dict):
        return config[section]
    skip = RESULT_NEUTRAL_KEYS.get(section, ()) + DAG_ONLY_KEYS.get(section, ())
    return {k: v for k, v in config[section].items() if k not in skip}


def _neutral_settings(section):
    keep = set(RESULT_NEUTRAL_KEYS.get(section, ())) - set(DAG_ONLY_KEYS.get(section, ()))
    return {k: v for k, v in config[section].items() if k in keep}


def config_arg(*selected):
    """The config a command reads, as one shell-quoted JSON argument: a whole section
    ("train") or one key of it ("evaluate.batch_size"). Passing it as a param makes a change
    of exactly these values rerun the job; the command gets the schema's defaults for the
    rest, so it must read nothing else (tests/workflow/test_config_args.py checks this)."""
    chosen = {}
    for name in selected:
        section, _, key = name.partition(".")
        if key:
            chosen.setdefault(section, {})[key] = config[section][key]
        else:  # the result-neutral keys travel apart: neutral_config_arg
            chosen[section] = _result_settings(section)
    return shlex.quote(json.dumps(chosen, sort_keys=True))


def neutral_config_arg(*sections):
    """The result-neutral settings of whole sections (worker counts, batching, log interval:
    core.config.RESULT_NEUTRAL_KEYS) as one shell-quoted JSON argument for `--neutral-config`.
    Jobs get it as a string resource, `neutral_config`, not as a param: Snakemake reruns a job
    whose params change (resources are no rerun trigger), and a change of these settings must
    rerun nothing."""
    return shlex.quote(json.dumps({s: _neutral_settings(s) for s in sections}, sort_keys=True))


# ------------------------------------------------------------ results and jobs

DEVICE = config["device"]  # auto | cpu | cuda | cuda:N, passed to every torch stage
RESOURCES = config["resources"]  # threads, GPUs, memory and minutes per kind of job
# The version of the single-version results (val NDCG, ablations, figures, human evaluation).
MAIN_VERSION = main_version(config["versions"])
RUN = paths.RUN  # the run-id wildcards {version}-{model}-{decoder}{seed}
RUN_WILDCARDS = dict(model="|".join(MODELS), decoder="|".join(DECODERS), seed=SEED_SUFFIX)
SEEDS = config["train"]["seeds"]  # every run a table needs is trained once per seed


def run_id(version, model, decoder):
    """The id of the run trained with the first of `train.seeds` (the figures' and the human evaluation's)."""
    return RunSpec(version, model, decoder, SEEDS[0]).run_id


features_path = paths.features_path
tokens_path = paths.tokens_path


def vocab_path(version):
    return paths.VOCAB.format(version=version)
