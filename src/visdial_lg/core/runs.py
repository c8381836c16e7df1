"""Run ids: `{version}-{model}-{decoder}`, e.g. `v1.0-lg_attn_kl-multi` (docs/formats.md)."""

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

_RUN_RE = re.compile(r"^(?P<version>v\d\.\d)-(?P<model>[a-z_]+)-(?P<decoder>[a-z]+)$")


@dataclass(frozen=True)
class RunSpec:
    version: str
    model: str  # "ltmi" or "lg_<loss>"
    decoder: str

    @property
    def grounding_loss(self) -> str | None:
        """The LG loss of Table 6, or None for plain LTMI."""
        return self.model[3:] if self.model.startswith("lg_") else None

    @property
    def run_id(self) -> str:
        return f"{self.version}-{self.model}-{self.decoder}"


def parse_run_id(run_id: str) -> RunSpec:
    m = _RUN_RE.match(run_id)
    if not m or m["version"] not in VERSIONS or m["model"] not in MODELS or m["decoder"] not in DECODERS:
        raise VisdialLGError(
            f"bad run id '{run_id}': expected VERSION-MODEL-DECODER with VERSION in {VERSIONS}, "
            f"MODEL in {MODELS}, DECODER in {DECODERS}"
        )
    return RunSpec(m["version"], m["model"], m["decoder"])
