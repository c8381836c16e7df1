"""The VisDial metrics against hand-computed values (docs/upstream.md#visdial-metrics)."""

import math

import pytest
import torch

from visdial_lg.evaluation.metrics import NDCG, SparseGTMetrics, ndcg, scores_to_ranks, sparse_metrics


def ranks_by_counting(scores: torch.Tensor) -> torch.Tensor:
    """Independent definition for one row: rank_i = 1 + #{j: s_j > s_i} + #{j < i: s_j == s_i}."""
    s = scores.tolist()
    return torch.tensor(
        [1 + sum(sj > si for sj in s) + sum(s[j] == si for j in range(i)) for i, si in enumerate(s)]
    )


# ------------------------------------------------------------------------ ranks


def test_ranks_highest_score_is_rank_one():
    assert scores_to_ranks(torch.tensor([0.1, 3.0, -2.0, 0.5])).tolist() == [3, 1, 4, 2]


def test_ranks_ties_go_to_the_lower_option_index():
    assert scores_to_ranks(torch.tensor([1.0, 2.0, 2.0, 0.0])).tolist() == [3, 1, 2, 4]
    assert scores_to_ranks(torch.zeros(5)).tolist() == [1, 2, 3, 4, 5]


def test_ranks_keep_leading_dimensions_and_are_a_permutation():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (2, 3, 100), generator=g).float()  # many ties
    ranks = scores_to_ranks(scores)
    assert ranks.shape == (2, 3, 100) and ranks.dtype == torch.long
    assert torch.equal(ranks.sort(-1).values, torch.arange(1, 101).expand(2, 3, 100))
    for row_scores, row_ranks in zip(scores.view(-1, 100), ranks.view(-1, 100)):
        assert torch.equal(row_ranks, ranks_by_counting(row_scores))


def test_ranks_reject_nan():
    with pytest.raises(ValueError, match="NaN"):
        scores_to_ranks(torch.tensor([0.0, float("nan")]))


# ----------------------------------------------------------------- sparse metrics


def test_sparse_metrics_by_hand():
    # gt ranks 1, 5 and 100; the fourth row is unknown (gt_index −1) and left out
    ranks = torch.stack([torch.arange(1, 101)] * 4)  # option i has rank i + 1
    gt_index = torch.tensor([0, 4, 99, -1])
    m = sparse_metrics(ranks, gt_index)
    assert m["count"] == 3
    assert m["r1"] == pytest.approx(1 / 3)
    assert m["r5"] == pytest.approx(2 / 3)
    assert m["r10"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 5 + 1 / 100) / 3)
    assert m["mean"] == pytest.approx((1 + 5 + 100) / 3)


def test_sparse_metrics_gt_at_rank_one_and_rank_hundred():
    best = torch.zeros(1, 100)
    best[0, 7] = 1.0
    m = sparse_metrics(scores_to_ranks(best), torch.tensor([7]))
    assert (m["r1"], m["r5"], m["r10"], m["mrr"], m["mean"], m["count"]) == (1.0, 1.0, 1.0, 1.0, 1.0, 1)
    worst = torch.zeros(1, 100)
    worst[0, 7] = -1.0
    m = sparse_metrics(scores_to_ranks(worst), torch.tensor([7]))
    assert (m["r1"], m["r5"], m["r10"], m["mean"], m["count"]) == (0.0, 0.0, 0.0, 100.0, 1)
    assert m["mrr"] == pytest.approx(0.01)


def test_sparse_metrics_with_tied_scores():
    # all scores equal: the gt's rank is its index + 1
    m = sparse_metrics(scores_to_ranks(torch.zeros(2, 10)), torch.tensor([0, 9]))
    assert m["mean"] == pytest.approx(5.5) and m["r1"] == pytest.approx(0.5) and m["r5"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 10) / 2)


def test_sparse_metrics_batch_of_one_with_rounds():
    scores = torch.tensor([[[0.2, 0.9, 0.1]]])  # [B=1, R=1, O=3]
    m = sparse_metrics(scores_to_ranks(scores), torch.tensor([[0]]))
    assert m["mean"] == 2.0 and m["mrr"] == 0.5 and m["count"] == 1


def test_sparse_metrics_without_known_gt_are_nan():
    m = sparse_metrics(torch.tensor([[1, 2]]), torch.tensor([-1]))
    assert m["count"] == 0 and math.isnan(m["mrr"]) and math.isnan(m["r1"])


def test_sparse_metrics_reject_out_of_range_gt():
    with pytest.raises(ValueError, match="gt_index 3"):
        sparse_metrics(torch.tensor([[1, 2, 3]]), torch.tensor([3]))


# ------------------------------------------------------------------------ NDCG


def test_ndcg_perfect_ranking_is_one():
    relevance = torch.tensor([[0.0, 1.0, 0.5, 0.0, 0.5]])
    assert ndcg(relevance.clone(), relevance) == {"ndcg": pytest.approx(1.0), "count": 1}


def test_ndcg_reversed_ranking_by_hand():
    relevance = torch.tensor([[1.0, 0.5, 0.5, 0.0]])  # k = 3
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # model order: 3, 2, 1, 0
    dcg = 0.0 / math.log2(2) + 0.5 / math.log2(3) + 0.5 / math.log2(4)
    ideal = 1.0 / math.log2(2) + 0.5 / math.log2(3) + 0.5 / math.log2(4)
    assert ndcg(scores, relevance)["ndcg"] == pytest.approx(dcg / ideal)


def test_ndcg_only_the_top_k_counts():
    # k = 2: the model puts one relevant option first and the other at position 3 (outside top-k)
    relevance = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    expected = (1.0 / math.log2(2)) / (1.0 / math.log2(2) + 1.0 / math.log2(3))
    assert ndcg(scores, relevance)["ndcg"] == pytest.approx(expected)


def test_ndcg_all_options_relevant():
    ones = torch.ones(1, 6)
    assert ndcg(torch.randn(1, 6, generator=torch.Generator().manual_seed(1)), ones)["ndcg"] == pytest.approx(1.0)
    relevance = torch.tensor([[0.25, 0.5, 0.75, 1.0]])  # k = 4 = all; model order 0, 1, 2, 3 (reversed)
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    dcg = sum(r / math.log2(j + 2) for j, r in enumerate([0.25, 0.5, 0.75, 1.0]))
    ideal = sum(r / math.log2(j + 2) for j, r in enumerate([1.0, 0.75, 0.5, 0.25]))
    assert ndcg(scores, relevance)["ndcg"] == pytest.approx(dcg / ideal)


def test_ndcg_single_relevant_option():
    relevance = torch.zeros(2, 100)
    relevance[:, 42] = 0.8
    scores = torch.zeros(2, 100)
    scores[0, 42] = 5.0  # row 0: top-1 is the relevant option
    scores[1, 41] = 5.0  # row 1: it is not
    m = ndcg(scores, relevance)
    assert m["count"] == 2 and m["ndcg"] == pytest.approx(0.5)


def test_ndcg_ties_follow_the_rank_tie_rule():
    scores = torch.zeros(2, 4)  # all tied: the model's order is 0, 1, 2, 3
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert ndcg(scores[:1], relevance[:1])["ndcg"] == pytest.approx(1.0)
    assert ndcg(scores[1:], relevance[1:])["ndcg"] == pytest.approx(0.0)


def test_ndcg_batch_of_one_and_rows_without_relevance():
    relevance = torch.tensor([[0.0, 1.0, 0.0]])
    assert ndcg(torch.tensor([[0.0, 1.0, 0.0]]), relevance) == {"ndcg": pytest.approx(1.0), "count": 1}
    both = ndcg(torch.zeros(2, 3), torch.cat([relevance, torch.zeros(1, 3)]))
    assert both["count"] == 1 and both["ndcg"] == pytest.approx(0.0)  # the all-zero row is not counted
    none = ndcg(torch.zeros(1, 3), torch.zeros(1, 3))
    assert none["count"] == 0 and math.isnan(none["ndcg"])


def test_ndcg_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        ndcg(torch.zeros(2, 4), torch.zeros(2, 5))


# ---------------------------------------------------------------- accumulators


def test_accumulators_equal_the_one_shot_computation():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 20, (7, 10, 100), generator=g).float()  # [D, R, O] with ties
    gt_index = torch.randint(0, 100, (7, 10), generator=g)
    gt_index[6, 5:] = -1  # unknown rounds are skipped
    relevance = torch.randint(0, 3, (7, 100), generator=g).float() / 2  # [D, O]
    dense_round = torch.randint(0, 10, (7,), generator=g)
    dense_scores = scores[torch.arange(7), dense_round]  # [D, O]

    sparse, dense = SparseGTMetrics(), NDCG()
    for start in range(0, 7, 3):  # batches of 3, 3, 1
        sparse.observe(scores[start : start + 3], gt_index[start : start + 3])
        dense.observe(dense_scores[start : start + 3], relevance[start : start + 3])

    one_shot = sparse_metrics(scores_to_ranks(scores), gt_index)
    assert sparse.retrieve() == one_shot and one_shot["count"] == 65
    assert dense.retrieve(reset=True) == ndcg(dense_scores, relevance)
    assert dense.retrieve()["count"] == 0


def test_sparse_accumulator_from_precomputed_ranks():
    scores = torch.tensor([[[0.3, 0.1, 0.2]], [[0.0, 0.5, 0.4]]])  # [2, 1, 3]
    acc = SparseGTMetrics()
    acc.observe_ranks(scores_to_ranks(scores), torch.tensor([[2], [1]]))
    assert acc.retrieve(reset=True) == sparse_metrics(scores_to_ranks(scores), torch.tensor([[2], [1]]))
    assert acc.retrieve()["count"] == 0
