"""The regions of one image, extracted as the run's train features were.

A feature file records what its rows were computed from (`features/extract.py`, `_identity`):
the detector's config (`extractor_config`), the weights and their sha256, and the sha256 of
the given boxes. The detector is rebuilt from those with `build_detector`, the image decoded
and resized by the extractor's own `DecodedImages`, and the detector's outputs turned into a
feature-file row by the extractor's `rows_to_arrays` (storage dtype included), so the model
gets what a row of the train features would hold for this image.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from ..core.config import FeaturesConfig
from ..core.errors import InputFormatError, VisdialLGError
from ..core.files import sha256_of
from ..features.extract import FEATURE_DIM, rows_to_arrays, load_given_boxes, precision_context
from ..features.images import BadImageError, DecodedImages, ImageEntry, collate_padded, image_id_from_name
from ..features.model import build_detector, preprocess
from ..features.store import FeatureLayout
from .files import RunFiles


@dataclass(frozen=True)
class ImageRegions:
    """One image's regions as a feature-file row: features [K, D], boxes [K, 4] x1y1x2y2 in the
    image's pixels; rows >= num_boxes are padding."""

    path: Path
    features: np.ndarray
    boxes: np.ndarray
    num_boxes: int
    width: int
    height: int

    def batch(self, device) -> dict:
        """The image keys of a one-dialog batch (docs/formats.md "A batch"), as VisDialDataset gives them."""
        return {"img_feat": torch.from_numpy(self.features)[None].to(device),  # [1, K, D]
                "boxes": torch.from_numpy(self.boxes)[None].to(device),  # [1, K, 4]
                "num_boxes": torch.tensor([self.num_boxes], device=device),
                "img_w": torch.tensor([float(self.width)], device=device),
                "img_h": torch.tensor([float(self.height)], device=device),
                "image_id": torch.zeros(1, dtype=torch.long, device=device)}


@dataclass(frozen=True)
class Extraction:
    """How the run's train features were extracted: the detector config, weights and given boxes."""

    features_file: Path
    config: FeaturesConfig
    weights: str  # "random" or the file's name
    weights_sha256: str
    boxes_file: Path | None  # the given boxes (features.given_boxes), checked against the recorded sha256

    @classmethod
    def of_run(cls, files: RunFiles) -> "Extraction":
        path = files.train_features
        if not path.is_file():
            raise InputFormatError(f"feature file {path} (the train features of run {files.spec.run_id}) "
                                   f"does not exist")
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: f.attrs[k] for k in ("extractor_config", "weights", "weights_sha256", "boxes_sha256")
                         if k in f.attrs}
        except OSError as e:
            raise InputFormatError(f"feature file {path} is not a readable HDF5 file ({e})") from None
        if "extractor_config" not in attrs:
            raise InputFormatError(f"feature file {path} records no extractor_config (imported from an LTMI file?): "
                                   f"the detector its regions come from is unknown, so no matching regions can be "
                                   f"extracted")
        # The recorded keys; the runtime keys it leaves out (batching, weights path) take the schema's defaults.
        config = FeaturesConfig.from_dict(json.loads(attrs["extractor_config"]))
        boxes = files.given_boxes(config.given_boxes)
        if boxes is not None:
            if not boxes.is_file():
                raise InputFormatError(f"given boxes file {boxes} (features.given_boxes: {config.given_boxes} of "
                                       f"{path}) not found")
            if sha256_of(boxes) != attrs.get("boxes_sha256"):
                raise InputFormatError(f"given boxes file {boxes} is not the one {path} was extracted with "
                                       f"(its sha256 differs from the recorded boxes_sha256)")
        return cls(path, config, str(attrs.get("weights", "")), str(attrs.get("weights_sha256", "")), boxes)

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    def detector(self, weights_file: str | Path | None = None):
        """The detector the features were extracted with; trained weights come from `weights_file`,
        which must be the recorded file (its sha256 is checked)."""
        if self.random_weights:
            return build_detector(self.config, "random", seed=self.config.seed)
        if weights_file is None:
            raise VisdialLGError(f"{self.features_file} was extracted with the detector weights {self.weights} "
                                 f"(sha256 {self.weights_sha256[:12]}…): give that file with --weights")
        return build_detector(self.config, str(weights_file), self.weights_sha256)

    def given_boxes_of(self, image: Path) -> np.ndarray | None:
        """The given boxes [k, 4] of `image` (found by the image id its name ends with, as
        features/images.py reads it), or None. Fails when the detector has random weights and
        the image has none: such a detector finds no real regions."""
        given = load_given_boxes(self.boxes_file) if self.boxes_file is not None else {}
        try:
            image_id = image_id_from_name(image)
        except InputFormatError:
            image_id = None
        if image_id in given:
            return given[image_id]
        if self.random_weights:
            if self.boxes_file is None:
                why = "the run's features were extracted without given boxes"
            elif image_id is None:
                why = f"its name ends in no image id to look up in {self.boxes_file}"
            else:
                why = f"{self.boxes_file} has no image id {image_id}"
            raise InputFormatError(f"image {image} has no given boxes ({why}) and the run's detector has random "
                                   f"weights (features.weights: random), which finds no real regions: use an image "
                                   f"the boxes file covers (a demo image) or a run extracted with trained weights")
        if self.boxes_file is not None:
            print(f"visdial-lg chat: image {image} has no given boxes in {self.boxes_file}; the detector proposes "
                  f"its own regions", file=sys.stderr)
        return None


class RegionExtractor:
    """Regions of any image with the run's detector, built once."""

    def __init__(self, extraction: Extraction, device, weights_file: str | Path | None = None):
        self.extraction, self.device = extraction, device
        self.detector = extraction.detector(weights_file).to(device).eval()

    def regions(self, image: str | Path) -> ImageRegions:
        image = Path(image)
        cfg = self.extraction.config
        given = self.extraction.given_boxes_of(image)
        item = DecodedImages([ImageEntry(0, image)], [0], preprocess, cfg.min_size, cfg.max_size)[0]
        batch = collate_padded([item])
        if batch["bad"]:
            raise BadImageError(batch["bad"][0]["error"])
        dev = self.device
        boxes = None if given is None else [torch.from_numpy(given).to(dev)]
        with torch.inference_mode(), precision_context(dev, cfg.precision):
            outputs = self.detector(batch["images"].to(dev), batch["image_sizes"].to(dev), batch["scales"].to(dev),
                                    given_boxes=boxes, original_sizes=batch["original_hw"].to(dev))
        layout = FeatureLayout(max(cfg.max_boxes, 0 if given is None else len(given)), FEATURE_DIM, cfg.top_attrs,
                               cfg.storage_dtype)
        row = rows_to_arrays(outputs, batch, layout)  # one row of a feature file
        return ImageRegions(image, row["features"][0].astype(np.float32), row["boxes"][0],
                            int(row["num_boxes"][0]), int(row["image_w"][0]), int(row["image_h"][0]))
