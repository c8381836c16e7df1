"""The chat's round batch is a VisDial round: the model reads from it what it reads from the
same round of a dataset dialog (context, regions, generated answer), at every round; questions
are tokenized as the tokens file's; the history carries the dialog."""

from __future__ import annotations

import h5py
import pytest
import torch

from helpers.tiny_runs import LG, LTMI, tiny_runs
from visdial_lg.chat.dialog import MAX_ROUNDS, Widths, question_words, round_batch
from visdial_lg.chat.regions import ImageRegions
from visdial_lg.chat.terminal import open_session
from visdial_lg.core.errors import VisdialLGError
from visdial_lg.text.vocab import Vocabulary
from visdial_lg.training.checkpoint import load_trained_model
from visdial_lg.training.dataset import VisDialDataset, collate

pytestmark = pytest.mark.usefixtures("one_thread")


def _ids(f, pool: str, index: int) -> list[int]:
    return f[f"{pool}_tokens"][index, :f[f"{pool}_len"][index]].tolist()


@pytest.mark.parametrize("run", [LTMI, LG])
def test_each_round_reads_as_the_datasets_round(runs_base, run):
    runs = tiny_runs(runs_base)
    model = load_trained_model(runs["checkpoints"][run])[0]
    dataset = VisDialDataset(runs["tokens"], runs["features"])
    d = 1
    batch = collate([dataset[d]])
    context = model.inference_context(batch)  # [R, D]
    prior = model.region_distributions(batch)["prior"][0]  # [R, K]
    generated = model.generate(batch, width=3, max_len=19).tokens
    row = dataset.features.read(int(dataset.image_ids[d]))
    image = ImageRegions(runs["features"], row["features"], row["boxes"], row["num_boxes"], row["image_w"],
                         row["image_h"]).batch("cpu")
    with h5py.File(runs["tokens"]) as f:
        caption = f["caption_tokens"][d, :f["caption_len"][d]].tolist()
        questions = [_ids(f, "question", q) for q in f["question"][d]]
        answers = [_ids(f, "answer", a) for a in f["answer"][d]]
    widths = Widths.of_tokens(runs["tokens"])
    for r in (0, 1, 5, 9):
        mine = round_batch(image, caption, list(zip(questions[:r], answers[:r])), questions[r], widths)
        torch.testing.assert_close(model.inference_context(mine)[0], context[r])
        torch.testing.assert_close(model.region_distributions(mine)["prior"][0, 0], prior[r])
        assert torch.equal(model.generate(mine, width=3, max_len=19).tokens[0], generated[r])


def test_questions_are_tokenized_as_the_tokens_file_holds_them():
    assert question_words("What colour is it?") == question_words("what colour is it") == \
        ["what", "colour", "is", "it", "?"]
    vocab = Vocabulary(list(Vocabulary.SPECIALS) + ["what", "?"])
    assert vocab.to_ids(question_words("what colour")) == [4, Vocabulary.UNK, 5]


def test_the_history_carries_the_dialog(pipeline, demo_image):
    session = open_session(LTMI, demo_image, directory=pipeline, caption="w4 w5 w6", beam_width=2)
    first = session.ask("w7 w8")
    second = session.ask("w9 w10 banana?")
    assert first["history"] == ["w4 w5 w6"]
    assert first["question_words"] == "w7 w8 <UNK>"  # the synthetic vocabulary has no "?"
    assert second["history"] == ["w4 w5 w6", f"w7 w8 <UNK> {first['generated']}".rstrip()]
    assert second["question_words"] == "w9 w10 <UNK> <UNK>" and second["unknown_words"] == ["banana", "?"]
    for result in (first, second):
        assert isinstance(result["generated"], str) and "generation_unavailable" not in result
        scores = [a["score"] for a in result["retrieved"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert all(a["answer"] in session.pool.texts for a in result["retrieved"])
        weights = [g["weight"] for g in result["regions"]]
        assert len(weights) == 3 and weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1


def test_a_run_without_generative_decoder_answers_by_retrieval(pipeline, demo_image, disc_run):
    session = open_session(disc_run, demo_image, directory=pipeline, beam_width=2)
    first = session.ask("w7 w8")
    assert first["generated"] is None and "only retrieval" in first["generation_unavailable"]
    assert session.scorer.decoder == "disc"
    second = session.ask("w9")
    assert second["history"][1] == f"w7 w8 <UNK> {first['retrieved'][0]['answer']}"  # its first retrieved answer


def test_a_dialog_ends_after_visdials_rounds(pipeline, demo_image):
    session = open_session(LTMI, demo_image, directory=pipeline, beam_width=1, pool_size=3)
    for _ in range(MAX_ROUNDS):
        session.ask("w4")
    assert session.done and len(session.turns) == MAX_ROUNDS
    with pytest.raises(VisdialLGError, match="at most 10 rounds"):
        session.ask("w4")
