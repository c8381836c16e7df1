"""Per-round grounding annotations: which boxes of an image a dialog round refers to.

File format (the demo's `grounding.json`, or a user-supplied file):
`[{"image_id": int, "round_id": int (1-based), "boxes": [[x1, y1, x2, y2], ...]}, ...]`
in original-image pixels. They serve the oracle distribution over regions
(Table 4, "LTMI-Human") and the grounding accuracy (Table 3).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.ops import box_iou

from ..core.errors import InputFormatError
from ..core.files import read_json

RoundKey = tuple[int, int]  # (image_id, round_id)


def load_round_boxes(path: str | Path) -> dict[RoundKey, torch.Tensor]:
    """(image_id, round_id) -> boxes [n, 4] float32 (n may be 0)."""
    entries = read_json(path, "grounding annotations")
    if not isinstance(entries, list):
        raise InputFormatError(f"{path}: expected a list of {{image_id, round_id, boxes}} entries")
    table: dict[RoundKey, torch.Tensor] = {}
    for i, entry in enumerate(entries):
        try:
            key = (int(entry["image_id"]), int(entry["round_id"]))
            boxes = torch.tensor(entry["boxes"], dtype=torch.float32).reshape(-1, 4)  # [n, 4]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputFormatError(f"{path}: entry {i} is not {{image_id, round_id, boxes [[x1,y1,x2,y2]]}}: {e}") from e
        table[key] = boxes
    return table


def matching_regions(regions: torch.Tensor, annotated: torch.Tensor, iou: float = 0.5) -> torch.Tensor:
    """regions [K, 4], annotated [n, 4] -> [K] bool: the regions overlapping an annotated
    box with IoU >= `iou`."""
    if annotated.numel() == 0:
        return torch.zeros(regions.shape[0], dtype=torch.bool, device=regions.device)
    return (box_iou(regions, annotated.to(regions)) >= iou).any(dim=1)


def oracle_regions(batch: dict, table: dict[RoundKey, torch.Tensor], iou: float = 0.5) -> torch.Tensor:
    """[B, R, K] bool: per round, the valid regions matching its annotated boxes.
    Rounds without annotation or without a matching region get none (the model then
    keeps its own prior there, `models.grounding.replace_distribution`)."""
    boxes, num_boxes = batch["boxes"], batch["num_boxes"]  # [B, K, 4], [B]
    B, K = boxes.shape[:2]
    R = batch["ques_tokens"].shape[1]
    out = torch.zeros(B, R, K, dtype=torch.bool)
    for b in range(B):
        valid = int(num_boxes[b])
        image_id = int(batch["image_id"][b])
        for r in range(R):
            annotated = table.get((image_id, r + 1))
            if annotated is not None:
                out[b, r, :valid] = matching_regions(boxes[b, :valid].float().cpu(), annotated, iou)
    return out
