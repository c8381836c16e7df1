"""The files of a pipeline folder that a chat with one run reads, by the result path patterns
of core/paths.py: the run's checkpoint, its version's vocabulary, train tokens (the answer
pool) and train features (whose attributes say how regions were extracted)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core import paths
from ..core.errors import VisdialLGError
from ..core.runs import RunSpec, parse_run_id


@dataclass(frozen=True)
class RunFiles:
    spec: RunSpec
    directory: Path
    checkpoint: Path
    vocab: Path
    train_tokens: Path
    train_features: Path

    @classmethod
    def of(cls, run: str, directory: str | Path = ".") -> "RunFiles":
        """The files of run `run` (a run id, e.g. v1.0-ltmi-gen) in pipeline folder `directory`."""
        spec = parse_run_id(run)
        d = Path(directory)
        return cls(spec, d, d / paths.checkpoint_path(spec.run_id), d / paths.VOCAB.format(version=spec.version),
                   d / paths.tokens_path(spec.version, "train"), d / paths.features_path(spec.version, "train"))

    def check_checkpoint(self) -> None:
        if not self.checkpoint.is_file():
            raise VisdialLGError(f"run {self.spec.run_id} has no checkpoint in {self.directory}: {self.checkpoint} "
                                 f"not found (train it there, or give the pipeline folder with --directory)")

    def weights_file(self, setting: str | None) -> Path | None:
        """The detector weights file of `features.weights` (a path, relative to the folder), or
        None for none, "random" and "download" (whose file the workflow keeps to itself)."""
        return None if setting in (None, "random", "download") else self.directory / setting

    def given_boxes(self, setting: str | None) -> Path | None:
        """The boxes file of `features.given_boxes` (None, "demo" or a path, relative to the folder)."""
        if not setting:
            return None
        return self.directory / (paths.DEMO_BOXES if setting == "demo" else setting)
