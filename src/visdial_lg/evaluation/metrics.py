"""The official VisDial metrics (visdial-challenge-starter `metrics.py`, docs/upstream.md#visdial-metrics).

* ranks: rank 1 = highest score; ties go to the lower option index (stable sort);
* sparse metrics over the rank r of the ground-truth option: R@1, R@5, R@10
  = mean(1[r <= k]), Mean = mean(r), MRR = mean(1/r);
* NDCG over the dense relevance of one round per image, with k = number of
  options of non-zero relevance: DCG@k of the model's ranking over the ideal DCG@k.

Every metric is accumulated and reduced in float64. `docs/metrics.md` states the
definitions and how the tie rule relates to the official code.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SPARSE_KEYS = ("r1", "r5", "r10", "mrr", "mean")


def scores_to_ranks(scores: Tensor) -> Tensor:
    """Scores [..., O] -> ranks [..., O] (long, 1..O): ranks[..., i] = rank of option i.

    Ties are broken by option index (the lower index ranks higher), so the result
    does not depend on the sort implementation or the device.
    """
    if scores.dim() == 0 or scores.shape[-1] == 0:
        raise ValueError(f"scores_to_ranks needs scores of shape [..., O] with O > 0, got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores_to_ranks: the scores contain NaN; ranks would be undefined")
    # a stable descending sort keeps equal scores in index order
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices  # [..., O] option at each position
    positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device).expand_as(order)  # [..., O]
    return torch.empty_like(order).scatter_(-1, order, positions)  # [..., O] rank of each option


def gt_ranks(ranks: Tensor, gt_index: Tensor) -> Tensor:
    """Ranks [..., O] + gt_index [...] -> the ranks of the ground-truth options [M] (long),
    for the M entries with gt_index >= 0 (−1 = unknown, e.g. test rounds or padding)."""
    if ranks.shape[:-1] != gt_index.shape:
        raise ValueError(
            f"ranks {tuple(ranks.shape)} and gt_index {tuple(gt_index.shape)} must agree on all but the last dimension"
        )
    ranks = ranks.reshape(-1, ranks.shape[-1])  # [N, O]
    gt_index = gt_index.reshape(-1).long()  # [N]
    if (gt_index >= ranks.shape[-1]).any():
        bad = int(gt_index.max())
        raise ValueError(f"gt_index {bad} is out of range for {ranks.shape[-1]} options")
    known = gt_index >= 0  # [N]
    return ranks[known].gather(1, gt_index[known].unsqueeze(1)).squeeze(1)  # [M]


def _sparse_from_gt_ranks(r: Tensor) -> dict:
    """The sparse metrics of a vector of ground-truth ranks [M]; NaN when M = 0."""
    count = int(r.numel())
    if count == 0:
        return {**{k: math.nan for k in SPARSE_KEYS}, "count": 0}
    r = r.to(torch.float64)
    return {
        "r1": float((r <= 1).double().mean()),
        "r5": float((r <= 5).double().mean()),
        "r10": float((r <= 10).double().mean()),
        "mrr": float(r.reciprocal().mean()),
        "mean": float(r.mean()),
        "count": count,
    }


def sparse_metrics(ranks: Tensor, gt_index: Tensor) -> dict:
    """R@1/5/10, MRR and mean rank of the ground-truth option.

    ranks [N, O] (or [..., O]) as from `scores_to_ranks`; gt_index [N] (or [...]),
    0-based, rows with gt_index < 0 are left out. Returns
    `{r1, r5, r10, mrr, mean, count}` (metric values NaN when count = 0).
    """
    return _sparse_from_gt_ranks(gt_ranks(ranks, gt_index))


def _dcg(relevance_in_order: Tensor, k: Tensor) -> Tensor:
    """Σ_{j<k} rel_j / log2(j + 2) per row. relevance_in_order [N, O] float64; k [N]."""
    num_options = relevance_in_order.shape[-1]
    position = torch.arange(num_options, dtype=torch.float64, device=relevance_in_order.device)  # [O] 0-based
    discount = torch.log2(position + 2.0)  # [O] log2(rank + 1)
    in_top_k = position.unsqueeze(0) < k.unsqueeze(1)  # [N, O]
    return (relevance_in_order / discount * in_top_k).sum(-1)  # [N]


def ndcg_per_row(scores: Tensor, relevance: Tensor) -> Tensor:
    """NDCG@k of each row: scores [N, O], relevance [N, O] -> [M] float64, for the M rows
    with at least one option of non-zero relevance (k = their number; other rows have no
    defined NDCG and are left out)."""
    if scores.dim() != 2 or scores.shape != relevance.shape:
        raise ValueError(
            f"ndcg needs scores and relevance of the same shape [N, O], got {tuple(scores.shape)} "
            f"and {tuple(relevance.shape)}"
        )
    relevance = relevance.to(torch.float64)  # [N, O]
    k = (relevance != 0).sum(-1)  # [N]
    rows = k > 0
    relevance, k = relevance[rows], k[rows]
    # the model's order: options by ascending rank (ties broken as in scores_to_ranks)
    model_order = torch.argsort(scores_to_ranks(scores[rows]), dim=-1)  # [M, O]
    ideal_relevance = torch.sort(relevance, dim=-1, descending=True).values  # [M, O]
    dcg = _dcg(relevance.gather(1, model_order), k)  # [M]
    ideal_dcg = _dcg(ideal_relevance, k)  # [M]
    return dcg / ideal_dcg


def _ndcg_from_rows(values: Tensor) -> dict:
    count = int(values.numel())
    return {"ndcg": float(values.mean()) if count else math.nan, "count": count}


def ndcg(scores: Tensor, relevance: Tensor) -> dict:
    """NDCG averaged over rows: scores [N, O], relevance [N, O] -> `{ndcg, count}`.

    Rows without any relevant option are not counted (NDCG is 0/0 there); ndcg is
    NaN when no row counts.
    """
    return _ndcg_from_rows(ndcg_per_row(scores, relevance))


class SparseGTMetrics:
    """Streaming R@k / MRR / Mean over batches: `observe(scores, gt_index)` per batch,
    then `retrieve()`; equals `sparse_metrics` over the concatenated batches."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._gt_ranks: list[Tensor] = []

    def observe(self, scores: Tensor, gt_index: Tensor) -> None:
        """scores [..., O] (e.g. [B, R, O]); gt_index [...] (−1 = not scored)."""
        self.observe_ranks(scores_to_ranks(scores.detach()), gt_index)

    def observe_ranks(self, ranks: Tensor, gt_index: Tensor) -> None:
        """As `observe`, with ranks already computed by `scores_to_ranks`."""
        self._gt_ranks.append(gt_ranks(ranks.detach(), gt_index.detach()).cpu())

    def retrieve(self, reset: bool = False) -> dict:
        r = torch.cat(self._gt_ranks) if self._gt_ranks else torch.zeros(0, dtype=torch.long)
        metrics = _sparse_from_gt_ranks(r)
        if reset:
            self.reset()
        return metrics


class NDCG:
    """Streaming NDCG over batches: `observe(scores, relevance)` with the scores [B, O] and
    relevance [B, O] of the annotated round of each dialog, then `retrieve()`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._values: list[Tensor] = []  # per-row NDCG, float64

    def observe(self, scores: Tensor, relevance: Tensor) -> None:
        self._values.append(ndcg_per_row(scores.detach(), relevance.detach()).cpu())

    def retrieve(self, reset: bool = False) -> dict:
        values = torch.cat(self._values) if self._values else torch.zeros(0, dtype=torch.float64)
        metrics = _ndcg_from_rows(values)
        if reset:
            self.reset()
        return metrics
