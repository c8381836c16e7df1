"""Loading, validating and typing the pipeline configuration.

The JSON schema (`src/visdial_lg/resources/config.schema.yaml`, checked by
`core.schema`) is the single source of keys, types and defaults. This module only
depends on `yaml` and `jsonschema` so that the Snakefile can import it at parse time.

Two levels:

* dicts, for the Snakefile: `validate` (in place, filling defaults), `load_config`,
  `parse_config_arg`;
* the typed config, for the package: `Config.from_dict(raw)` validates once and
  returns frozen dataclasses (`config.train.lr`, `config.features.max_boxes`, ...), one
  per schema object; stage code receives these. `as_dict` turns one back into the
  plain dict a checkpoint stores.
"""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from .schema import ConfigError, validate

def deep_merge(base: dict, override: Mapping) -> dict:
    """Recursively merge `override` into a copy of `base` (as Snakemake merges --configfile)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: str | Path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def load_config(*paths: str | Path, overrides: Mapping | None = None) -> dict:
    """Merge YAML files left to right (then `overrides`), validate, fill defaults."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, load_yaml(path))
    if overrides:
        config = deep_merge(config, overrides)
    return validate(config)


# Settings that change how fast a job runs or how it is spread, not what it computes (batching
# within float tolerance): a finished job is not rerun when they change (the workflow passes
# them apart from the others: `neutral_config_arg` in workflow/rules/common.smk), and a resumed
# extraction or training may differ in them. `train.seeds` lists the DAG's runs (a run's own
# seed is in its id).
RESULT_NEUTRAL_KEYS = {
    "features": ("batch_size", "num_workers", "shards", "merge", "on_bad_image", "existing", "weights",
                 "weights_sha256"),
    "text": ("workers",),
    "train": ("num_workers", "gpus", "cpu_processes", "log_every", "seeds"),
}


def merge_neutral_config(config: dict, neutral: dict) -> dict:
    """`config` with the result-neutral settings `neutral` ({section: {key: value}}) put in;
    a key that is not result-neutral is refused, so nothing else can bypass the workflow's
    rerun tracking."""
    merged = {name: dict(values) if isinstance(values, dict) else values for name, values in config.items()}
    for name, values in neutral.items():
        allowed = RESULT_NEUTRAL_KEYS.get(name, ())
        if not isinstance(values, dict) or any(key not in allowed for key in values):
            raise ConfigError(f"--neutral-config may hold only the result-neutral settings "
                              f"{ {k: list(v) for k, v in RESULT_NEUTRAL_KEYS.items()} }, got {name}: {values}")
        merged.setdefault(name, {}).update(values)
    return merged


def parse_config_arg(value: str) -> dict:
    """A CLI `--config` value: inline JSON (as the rules pass it) or a YAML file path."""
    text = value.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--config is not valid JSON: {e}") from e
    return load_yaml(value)


# ---------------------------------------------------------------------------
# The typed config: one frozen dataclass per schema object, field names = schema
# keys (`lambda` is `lambda_`, its `key` metadata names the schema key). Fields have
# no defaults of their own: every instance is built from a validated dict, so the
# schema stays the only place defaults are written. Values keep the types validation
# gives them (lists stay lists, an integer written for a number stays an integer), so
# `as_dict` returns exactly the validated dict.


class Section:
    """A top-level section of the config; `KEY` is its schema key."""

    KEY: ClassVar[str]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, name: str | None = None):
        """This section alone from its raw dict (tests, benchmarks, a checkpoint's stored
        sections): validated as `Config.from_dict` does, defaults filled. `name`, where
        given, must be the section's key."""
        if name is not None and name != cls.KEY:
            raise ValueError(f"{cls.__name__} is the config section {cls.KEY!r}, not {name!r}")
        return getattr(Config.from_dict({cls.KEY: dict(data or {})}), cls.KEY)


@dataclass(frozen=True)
class DemoConfig(Section):
    KEY = "demo"
    seed: int
    images_train2014: int
    images_val2014: int
    images_val2018: int
    images_test2018: int
    image_width: int
    image_height: int
    train_dense: int
    regions_per_image: int


@dataclass(frozen=True)
class ExistingFeatures:
    """`features.existing`: image set -> an LTMI feature file imported instead of extracting."""

    trainval2014: str | None
    val2018: str | None
    test2018: str | None


@dataclass(frozen=True)
class FeaturesConfig(Section):
    """The `features:` section: the detector network's keys (depth .. top_attrs), then
    those of the extraction run."""

    KEY = "features"
    weights: str
    weights_sha256: str | None
    depth: int
    res5_halve: bool
    min_size: int
    max_size: int
    pre_nms_topk: int
    rpn_nms: float
    post_nms_topk: int
    class_nms: float
    conf_thresh: float
    min_boxes: int
    max_boxes: int
    top_attrs: int
    batch_size: int
    num_workers: int
    precision: str
    storage_dtype: str
    shards: int
    merge: str
    on_bad_image: str
    given_boxes: str | None
    seed: int
    existing: ExistingFeatures

    def __post_init__(self):
        # Pairs the schema cannot relate.
        for low, high in (("min_boxes", "max_boxes"), ("min_size", "max_size")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(f"config key 'features.{low}' ({getattr(self, low)}) "
                                  f"exceeds 'features.{high}' ({getattr(self, high)})")


@dataclass(frozen=True)
class TextConfig(Section):
    KEY = "text"
    min_count: int
    max_question_len: int
    max_answer_len: int
    max_caption_len: int
    glove: bool
    workers: int


@dataclass(frozen=True)
class ModelConfig(Section):
    KEY = "model"
    hidden: int
    embed: int
    blocks: int
    heads: int
    pad_slots: int
    dropout: float
    lstm_layers: int
    box_bins: int


@dataclass(frozen=True)
class LGConfig(Section):
    KEY = "lg"
    lambda_: float = field(metadata={"key": "lambda"})  # `lambda` is a Python keyword


@dataclass(frozen=True)
class TrainConfig(Section):
    KEY = "train"
    batch_size: int
    epochs: int
    lr: float
    warmup_epochs: float
    warmup_factor: float
    decay_every: int
    decay_factor: float
    min_lr: float
    betas: list[float]
    eps: float
    weight_decay: float
    seeds: list[int]
    num_workers: int
    gpus: int
    cpu_processes: int
    precision: str
    log_every: int


@dataclass(frozen=True)
class EvaluateConfig(Section):
    KEY = "evaluate"
    batch_size: int
    grounding_samples: int
    human_eval_samples: int
    oracle_annotations: str | None
    grounding_annotations: str | None
    evalai_result: str | None
    human_judgments: str | None
    figure_samples: int


@dataclass(frozen=True)
class GenerationConfig(Section):
    KEY = "generation"
    beam_width: int


@dataclass(frozen=True)
class ExplorerConfig(Section):
    KEY = "explorer"
    dialogs: int
    top_regions: int
    top_options: int


@dataclass(frozen=True)
class StatisticsConfig(Section):
    KEY = "statistics"
    bootstrap_samples: int
    bootstrap_seed: int


@dataclass(frozen=True)
class GPUJobResources:
    """`resources.extract`, `resources.evaluate`: what such a job asks the scheduler for."""

    threads: int
    gpu: int
    mem_mb: int
    runtime: int


@dataclass(frozen=True)
class TrainResources:
    threads: int
    mem_mb: int
    runtime: int


@dataclass(frozen=True)
class MemoryResources:
    """`resources.merge`, `resources.text`."""

    mem_mb: int


@dataclass(frozen=True)
class ResourcesConfig(Section):
    """Job resources; read by the workflow only."""

    KEY = "resources"
    extract: GPUJobResources
    merge: MemoryResources
    text: MemoryResources
    train: TrainResources
    evaluate: GPUJobResources


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    dataset: str
    versions: list[str]
    device: str  # auto | cpu | cuda | cuda:N
    sources: dict[str, dict]  # name -> {url, sha256, size, archive}; read by the workflow only
    local: dict[str, str]  # name -> local path; read by the workflow only
    demo: DemoConfig
    features: FeaturesConfig
    text: TextConfig
    model: ModelConfig
    lg: LGConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    generation: GenerationConfig
    explorer: ExplorerConfig
    statistics: StatisticsConfig
    resources: ResourcesConfig

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Config":
        """Validate a copy of `raw` (filling defaults, reading strings as their schema
        types; `raw` is left as it is) and type it. Raises ConfigError on the first problem."""
        return _build(cls, validate(copy.deepcopy(dict(raw))))


def _key(f) -> str:
    return f.metadata.get("key", f.name)


def _build(cls, values: Mapping[str, Any]):
    """`cls` from a validated dict, nested dataclasses (sections, `features.existing`) included."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        kind, value = hints[f.name], values[_key(f)]
        kwargs[f.name] = _build(kind, value) if isinstance(kind, type) and is_dataclass(kind) else value
    return cls(**kwargs)


def as_dict(typed) -> dict:
    """The plain dict of a typed config or section, keyed by schema keys (`lambda`, not
    `lambda_`), nested objects as dicts, values copied: equal to the validated dict it was
    built from. The one way back to a dict: what checkpoints store (`training.loop.run_config`)
    and what a feature file's `extractor_config` records."""
    out = {}
    for f in fields(typed):
        value = getattr(typed, f.name)
        out[_key(f)] = as_dict(value) if is_dataclass(value) else copy.deepcopy(value)
    return out


def section(config: Mapping, name: str) -> dict:
    """One section of a raw config, validated with its defaults, as a plain dict, e.g.
    `section(cfg, "text")`; the package itself uses the typed `Config`."""
    value = getattr(Config.from_dict({name: config.get(name, {})}), name)
    return as_dict(value) if is_dataclass(value) else value
