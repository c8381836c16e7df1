"""`visdial-lg evaluate`: a trained run on one split, with one grounding variant.

val: every answered round is ranked (R@k, MRR, Mean) and the densely annotated
round gives NDCG. test: only the last round of each dialog is ranked; its ranks
go into the EvalAI submission file, and where held-back answers are given (the
demo) they are scored the way the server scores them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .annotations import load_round_boxes, oracle_regions
from ..training.dataset import VisDialDataset, batch_to, collate
from ..core.device import resolve_device
from ..core.errors import InputFormatError
from ..core.files import read_json, sha256_of, write_text_atomic
from ..core.paths import ranks_file
from .metrics import SparseGTMetrics, ndcg_per_row, scores_to_ranks
from ..core.runs import GROUNDING_VARIANTS
from ..training.checkpoint import load_trained_model

NUM_OPTIONS = 100


@dataclass(frozen=True)
class EvalInputs:
    checkpoint: Path
    tokens: Path
    features: Path
    split: str
    grounding: str = "prior"
    oracle: Path | None = None  # grounding annotations, for grounding == "oracle"
    test_answers: Path | None = None  # held-back test answers (the demo)
    submission: Path | None = None  # where to write the EvalAI file (test)


def load_test_answers(path: Path) -> dict[int, dict]:
    """image_id -> {round_id, gt_index, gt_relevance[100]} of the last round (held back)."""
    entries = read_json(path, "the held-back test answers")
    answers = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
        try:
            image_id = int(entry["image_id"])
            answers[image_id] = {"round_id": int(entry["round_id"]), "gt_index": int(entry["gt_index"]),
                                 "gt_relevance": [float(v) for v in entry["gt_relevance"]]}
        except (KeyError, TypeError, ValueError) as e:
            raise InputFormatError(f"{path}: entry {i} is not {{image_id, round_id, gt_index, gt_relevance}} "
                                   f"({type(e).__name__}: {e})") from e
        if not 0 <= answers[image_id]["gt_index"] < NUM_OPTIONS or len(entry["gt_relevance"]) != NUM_OPTIONS:
            raise InputFormatError(f"{path}: entry {i} (image {image_id}) needs gt_index in 0..{NUM_OPTIONS - 1} "
                                   f"and {NUM_OPTIONS} relevance values")
    return answers


def _last_round(tensor: torch.Tensor, num_rounds: torch.Tensor) -> torch.Tensor:
    """[B, R, ...] -> [B, ...]: the entry of each dialog's last round."""
    index = (num_rounds - 1).long().to(tensor.device)
    return tensor[torch.arange(tensor.shape[0], device=tensor.device), index]


class _Scorer:
    """Accumulates, per decoder, the ranks and the metrics: the sparse ones over each round's
    ground-truth rank, NDCG as the mean of the dialogs' NDCG (also what the statistics resample)."""

    def __init__(self) -> None:
        self.sparse: dict[str, SparseGTMetrics] = {}
        self.dense: set[str] = set()  # decoders scored on dense annotations: their metrics have NDCG
        self.ranks: dict[str, list[np.ndarray]] = {}
        self.per_dialog: dict[str, list[np.ndarray]] = {}

    def observe(self, name: str, ranks: torch.Tensor, gt_index: torch.Tensor, ndcg: torch.Tensor,
                dense: bool) -> None:
        """ranks [B, R, O] or [B, O]; gt_index [B, R] or [B] (−1 = not scored); ndcg [B] of each
        dialog's dense round (NaN: none); dense: the batch had dense annotations."""
        self.sparse.setdefault(name, SparseGTMetrics()).observe_ranks(ranks, gt_index)
        self.keep_per_dialog(name, _gt_rank(ranks, gt_index), ndcg)
        if dense:
            self.dense.add(name)

    def keep_ranks(self, name: str, ranks: torch.Tensor) -> None:
        self.ranks.setdefault(name, []).append(ranks.to(torch.int16).cpu().numpy())

    def keep_per_dialog(self, name: str, gt_rank: torch.Tensor, ndcg: torch.Tensor) -> None:
        """What the statistics resample (evaluation/statistics.py): gt_rank [B, R] or [B], the
        ground truth's rank (0: round not scored); ndcg [B] of the dense round (NaN: none)."""
        self.per_dialog.setdefault(f"{name}_gt_rank", []).append(gt_rank.to(torch.int16).cpu().numpy())
        self.per_dialog.setdefault(f"{name}_ndcg", []).append(ndcg.to(torch.float64).cpu().numpy())

    def metrics(self) -> dict[str, dict]:
        out = {}
        for name, sparse in self.sparse.items():
            values = sparse.retrieve()
            if name in self.dense:
                ndcg = torch.from_numpy(np.concatenate(self.per_dialog[f"{name}_ndcg"]))
                ndcg = ndcg[~ndcg.isnan()]  # dialogs with a dense round that has a relevant option
                values.update(ndcg=float(ndcg.mean()) if len(ndcg) else math.nan, ndcg_count=len(ndcg))
            out[name] = values
        return out


def evaluate(inputs: EvalInputs, out: str | Path, batch_size: int = 32, device: str = "cpu",
             num_workers: int = 0) -> dict:
    if inputs.grounding not in GROUNDING_VARIANTS:
        raise InputFormatError(f"unknown grounding variant '{inputs.grounding}' (one of {', '.join(GROUNDING_VARIANTS)})")
    if inputs.grounding == "oracle" and inputs.oracle is None:
        raise InputFormatError("grounding 'oracle' needs the grounding annotations (--oracle FILE)")
    device = resolve_device(device)
    model, spec, _ = load_trained_model(inputs.checkpoint, device)
    dataset = VisDialDataset(inputs.tokens, inputs.features, feature_dim=model.feature_dim)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                        num_workers=num_workers)
    oracle_table = load_round_boxes(inputs.oracle) if inputs.grounding == "oracle" else None
    answers = load_test_answers(inputs.test_answers) if inputs.test_answers else None

    scorer, image_ids, submission = _Scorer(), [], []
    for batch in tqdm(loader, desc=f"evaluate {spec.run_id} {inputs.split} ({inputs.grounding})", unit="batch"):
        oracle = oracle_regions(batch, oracle_table) if oracle_table is not None else None
        on_device = batch_to(batch, device)
        scores = model.score(on_device, grounding=inputs.grounding,
                             oracle_regions=oracle.to(device) if oracle is not None else None)
        image_ids.append(batch["image_id"].numpy())
        for name, value in scores.items():
            value = value.float().cpu()  # [B, R, O]
            if inputs.split == "test":
                _observe_test(scorer, name, value, batch, answers, submission if name == primary_decoder(spec) else None)
            else:
                _observe_val(scorer, name, value, batch)

    result = {
        "run": spec.run_id,
        "split": inputs.split,
        "grounding": inputs.grounding,
        "primary": primary_decoder(spec),
        "decoders": scorer.metrics(),
        "dialogs": len(dataset),
        "checkpoint": str(inputs.checkpoint),
        "checkpoint_sha256": sha256_of(inputs.checkpoint),
        "scored_by": _scored_by(inputs.split, answers is not None),
    }
    if inputs.grounding == "oracle":
        result["oracle_annotations"] = Path(inputs.oracle).name
    if inputs.split == "test" and inputs.submission is not None:
        _write_json(inputs.submission, submission)
        result["submission"] = str(inputs.submission)
    out = Path(out)
    ranks_path = ranks_file(out)
    tmp = ranks_path.with_name(ranks_path.name + ".tmp.npz")
    np.savez_compressed(tmp, image_id=np.concatenate(image_ids),
                        **{name: np.concatenate(r) for name, r in scorer.ranks.items()},
                        **{key: np.concatenate(v) for key, v in scorer.per_dialog.items()})
    os.replace(tmp, ranks_path)
    result["ranks"] = ranks_path.name  # next to the metrics JSON
    _write_json(out, result)
    return result


def _scored_by(split: str, have_answers: bool) -> str:
    if split != "test":
        return "ground truth"
    return "held-back test answers, scored as the EvalAI server" if have_answers else "EvalAI (submit the file)"


def primary_decoder(spec) -> str:
    """The decoder whose ranking a run is reported by: its own; `multi` runs are
    reported by the generative decoder (Table 1's LTMI-LG*), the others kept too."""
    return "disc" if spec.decoder == "disc" else "gen"


def _gt_rank(ranks: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """ranks [..., O], gt [...] (−1 = unknown) -> the ground truth's rank [...], 0 where unknown."""
    rank = ranks.gather(-1, gt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(gt >= 0, rank, torch.zeros_like(rank))


def _ndcg_of_rows(scores: torch.Tensor, relevance: torch.Tensor, rows: torch.Tensor, size: int) -> torch.Tensor:
    """[size] float64: NDCG of `rows` (scores, relevance [M, O] of those rows), NaN elsewhere and
    where a row has no relevant option (ndcg_per_row leaves those out)."""
    out = torch.full((size,), math.nan, dtype=torch.float64)
    relevant = (relevance != 0).any(-1)  # [M]
    out[rows[relevant]] = ndcg_per_row(scores[relevant], relevance[relevant])
    return out


def _observe_val(scorer: _Scorer, name: str, scores: torch.Tensor, batch: dict) -> None:
    ranks = scores_to_ranks(scores)  # [B, R, O]
    gt = torch.where(batch["round_mask"], batch["gt_index"], torch.full_like(batch["gt_index"], -1))
    scorer.keep_ranks(name, ranks)
    ndcg = torch.full((scores.shape[0],), math.nan, dtype=torch.float64)  # [B]
    annotated = batch["dense_round"] > 0 if "dense_round" in batch else torch.zeros(scores.shape[0], dtype=torch.bool)
    if annotated.any():
        rows = torch.arange(scores.shape[0])[annotated]
        dense_scores = scores[rows, batch["dense_round"][annotated] - 1]  # [M, O]
        ndcg = _ndcg_of_rows(dense_scores, batch["gt_relevance"][annotated], rows, scores.shape[0])
    scorer.observe(name, ranks, gt, ndcg, dense=bool(annotated.any()))


def _observe_test(scorer, name, scores, batch, answers, submission) -> None:
    last = _last_round(scores, batch["num_rounds"])  # [B, O]
    ranks = scores_to_ranks(last)  # [B, O]
    scorer.keep_ranks(name, ranks)
    image_ids = [int(i) for i in batch["image_id"]]
    if submission is not None:
        for b, image_id in enumerate(image_ids):
            submission.append({"image_id": image_id, "round_id": int(batch["num_rounds"][b]),
                               "ranks": ranks[b].tolist()})
    if answers is None:
        scorer.keep_per_dialog(name, torch.zeros(len(image_ids), dtype=torch.long),
                               torch.full((len(image_ids),), math.nan, dtype=torch.float64))
        return
    for b, image_id in enumerate(image_ids):
        if image_id not in answers:
            raise InputFormatError(f"the held-back test answers have no entry for image id {image_id}")
        if answers[image_id]["round_id"] != int(batch["num_rounds"][b]):
            raise InputFormatError(f"held-back test answer of image {image_id} is for round "
                                   f"{answers[image_id]['round_id']}, the dialog's last round is {int(batch['num_rounds'][b])}")
    gt = torch.tensor([int(answers[i]["gt_index"]) for i in image_ids])  # [B]
    relevance = torch.tensor([answers[i]["gt_relevance"] for i in image_ids], dtype=torch.float32)  # [B, O]
    scorer.observe(name, ranks, gt, _ndcg_of_rows(last, relevance, torch.arange(len(image_ids)), len(image_ids)),
                   dense=True)


def _write_json(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(_finite_or_null(obj), indent=1, allow_nan=False))


def _finite_or_null(obj):
    """NaN metrics (nothing to score) become null: the file stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_null(v) for v in obj]
    return obj
