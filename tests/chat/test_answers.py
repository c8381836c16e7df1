"""The answer pool: distinct non-empty train answers, most frequent first, capped on request;
scored in chunks exactly as the decoders score a round's options."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from helpers.tiny_runs import LG, LTMI, tiny_runs
from visdial_lg.chat.answers import AnswerPool, PoolScorer
from visdial_lg.core.errors import InputFormatError
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.training.checkpoint import load_trained_model
from visdial_lg.training.dataset import VisDialDataset, collate

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = Vocabulary(list(Vocabulary.SPECIALS) + ["yes", "no", "red", "blue", "two"])


def _tokens_file(path, answers: list[list[int]], ground_truth: list[int]):
    width = 20
    tokens = np.zeros((len(answers), width), np.int32)
    for i, ids in enumerate(answers):
        tokens[i, :len(ids)] = ids
    with h5py.File(path, "w") as f:
        f["answer_tokens"], f["answer_len"] = tokens, np.array([len(a) for a in answers], np.int32)
        f["answer"] = np.array(ground_truth, np.int32).reshape(1, -1)
    return path


def test_the_pool_holds_distinct_answers_most_frequent_first(tmp_path):
    yes, no, red, blue, two = 4, 5, 6, 7, 8
    long_a, long_b = [two] * 18 + [red], [two] * 18 + [blue]  # the same first 18 words: one option
    answers = [[yes], [no], [], [red, blue], [no], long_a, long_b, [blue]]
    # ground truth: "no" (rows 1 and 4) 3 times, the long answer twice, "red blue" once, "" twice, -1: none
    path = _tokens_file(tmp_path / "train.h5", answers, [1, 4, 4, 5, 6, 3, 2, 2, -1])
    pool = AnswerPool.from_tokens(path, VOCAB)
    assert pool.texts == ["no", " ".join(["two"] * 18 + ["red"]), "red blue", "yes", "blue"]
    assert pool.counts.tolist() == [3, 2, 1, 0, 0] and pool.distinct == 5
    assert pool.lengths.tolist() == [1, 19, 2, 1, 1]  # the history gets the whole answer
    assert pool.option_lengths.tolist() == [1, 18, 2, 1, 1]  # the decoders score 18 words, as options
    capped = AnswerPool.from_tokens(path, VOCAB, size=2)
    assert capped.texts == pool.texts[:2] and capped.distinct == 5
    with pytest.raises(InputFormatError, match="at least 1"):
        AnswerPool.from_tokens(path, VOCAB, size=0)


def test_a_pool_without_answers_is_refused(tmp_path):
    with pytest.raises(InputFormatError, match="no non-empty answer"):
        AnswerPool.from_tokens(_tokens_file(tmp_path / "t.h5", [[]], [0]), VOCAB)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["answer_tokens"] = np.zeros((1, 20), np.int32)
    with pytest.raises(InputFormatError, match="lacks dataset 'answer_len'"):
        AnswerPool.from_tokens(tmp_path / "bad.h5", VOCAB)


@pytest.mark.parametrize("run,decoder", [(LTMI, "gen"), (LG, "gen"), (LG, "disc")])
def test_pool_scores_are_the_decoders_option_scores(runs_base, run, decoder):
    """A pool of round r's options, scored 7 at a time from inference_context, gives model.score's scores."""
    runs = tiny_runs(runs_base)
    model = load_trained_model(runs["checkpoints"][run])[0]
    batch = collate([VisDialDataset(runs["tokens"], runs["features"])[0]])
    expected = model.score(batch)[decoder][0]  # [R, O]
    context = model.inference_context(batch)  # [R, D]
    for r in (0, 6):
        options, lengths = batch["opts"][0, r].numpy(), batch["opts_len"][0, r].numpy()
        pool = AnswerPool([str(i) for i in range(len(options))], np.zeros(len(options)), options, lengths, options,
                          lengths, len(options))
        scores = PoolScorer(model, pool, decoder, "cpu", chunk=7).scores(context[r:r + 1])
        torch.testing.assert_close(scores, expected[r])
