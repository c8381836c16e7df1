"""Run ids: `{version}-{model}-{decoder}[@s{seed}]`, e.g. `v1.0-lg_attn_kl-multi` (seed 0) or
`v1.0-lg_attn_kl-multi@s2` (docs/formats.md). A run's training seed is part of its id, so
adding seeds to `train.seeds` never retrains, or renames, the runs already there."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import VisdialLGError

VERSIONS = ("v0.9", "v1.0")
DECODERS = ("gen", "disc", "multi")
# Grounding losses of the paper's Table 6; `attn_kl` is the main LTMI-LG.
LG_LOSSES = ("attn_kl", "attn_mse", "image_kl", "image_mse", "attn_kl_image_mse")
MODELS = ("ltmi",) + tuple(f"lg_{loss}" for loss in LG_LOSSES)
LG = "lg_attn_kl"  # the paper's LTMI-LG
# The distribution over regions a model scores with (Table 4): its own (LTMI's pooling / LG's
# prior), uniform, random, or the annotated regions.
GROUNDING_VARIANTS = ("prior", "mean", "random", "oracle")


def main_version(versions) -> str:
    """The version of the single-version results (val NDCG, ablations, figures, human
    evaluation): v1.0 when it runs, else the last version of the config."""
    return "v1.0" if "v1.0" in versions else versions[-1]

# The seed part of a run id: empty for seed 0 (the runs of a one-seed config keep their ids).
SEED_SUFFIX = r"(@s[1-9][0-9]*)?"
_RUN_RE = re.compile(rf"^(?P<version>v\d\.\d)-(?P<model>[a-z_]+)-(?P<decoder>[a-z]+)(?P<seed>{SEED_SUFFIX})$")


def seed_suffix(seed: int) -> str:
    """What a run id of training seed `seed` ends with: '' for 0, else '@s<seed>'."""
    return f"@s{seed}" if seed else ""


@dataclass(frozen=True)
class RunSpec:
    version: str
    model: str  # "ltmi" or "lg_<loss>"
    decoder: str
    seed: int = 0  # train.seeds: the seed this run trains with

    @property
    def grounding_loss(self) -> str | None:
        """The LG loss of Table 6, or None for plain LTMI."""
        return self.model[3:] if self.model.startswith("lg_") else None

    @property
    def base_id(self) -> str:
        """The id without the seed: what the runs of one table row share."""
        return f"{self.version}-{self.model}-{self.decoder}"

    @property
    def run_id(self) -> str:
        return self.base_id + seed_suffix(self.seed)


def parse_run_id(run_id: str) -> RunSpec:
    m = _RUN_RE.match(run_id)
    if not m or m["version"] not in VERSIONS or m["model"] not in MODELS or m["decoder"] not in DECODERS:
        raise VisdialLGError(
            f"bad run id '{run_id}': expected VERSION-MODEL-DECODER[@sSEED] with VERSION in {VERSIONS}, "
            f"MODEL in {MODELS}, DECODER in {DECODERS}, SEED > 0"
        )
    return RunSpec(m["version"], m["model"], m["decoder"], int(m["seed"][2:]) if m["seed"] else 0)


def seeded_runs(run: str, seeds) -> list[str]:
    """The ids of run `run` (without seed) trained with each of `seeds`."""
    return [run + seed_suffix(seed) for seed in seeds]
