"""Generated answers: greedy is beam search of width 1, beam search never scores below
greedy, a planted model's best answer is found, and a generated answer's log-likelihood is
the one the decoder's option scoring gives it."""

from __future__ import annotations

import math

import pytest
import torch

from visdial_lg.models.decoders import GenerativeDecoder
from visdial_lg.models.generation import EOS, PAD, SOS, DecoderStepper, beam_search, greedy

A, B, C = 3, 4, 5  # words of the planted model (0-2: <PAD> <S> </S>)


class PlantedModel:
    """Next-word probabilities by prefix. Greedy takes `a` (0.5) and then can only go on
    flatly (a a </S>: 0.5 * 0.34 = 0.17); the best answer is `b </S>` (0.4 * 0.95 = 0.38)."""

    TABLE = {(): {A: 0.5, B: 0.4, C: 0.1}, (A,): {A: 0.34, B: 0.33, C: 0.33}, (B,): {EOS: 0.95, A: 0.05}}
    VOCAB = 6

    def start(self):
        return None  # the state: each row's prefix, from the first step on

    def step(self, tokens, state):
        prefixes = [() if t == SOS else p + (t,) for p, t in zip(state or [()] * len(tokens), tokens.tolist())]
        rows = torch.full((len(prefixes), self.VOCAB), -math.inf)
        for i, prefix in enumerate(prefixes):
            for word, p in self.TABLE.get(prefix, {EOS: 1.0}).items():
                rows[i, word] = math.log(p)
        return rows, prefixes

    def select(self, state, rows):
        return [state[i] for i in rows.tolist()]


def test_a_planted_model_gives_its_best_answer_to_beam_search_not_to_greedy():
    first = greedy(PlantedModel(), 1, max_len=5)
    assert first.tokens[0].tolist() == [A, A, EOS] and first.log_prob.item() == pytest.approx(math.log(0.5 * 0.34))
    best = beam_search(PlantedModel(), 1, width=2, max_len=5)
    assert best.tokens[0, :2].tolist() == [B, EOS] and set(best.tokens[0, 2:].tolist()) <= {PAD}
    assert best.log_prob.item() == pytest.approx(math.log(0.4 * 0.95)) and best.length.item() == 2


def _decoder(seed: int, vocab: int = 30) -> tuple[GenerativeDecoder, torch.nn.Embedding, torch.Tensor]:
    torch.manual_seed(seed)
    decoder = GenerativeDecoder(embed=8, hidden=16, layers=2, vocab_size=vocab, dropout=0.0).eval()
    embedding = torch.nn.Embedding(vocab, 8, padding_idx=0)
    with torch.no_grad():
        decoder.output.weight.mul_(6.0)  # peaked enough that answers end before max_len
    return decoder, embedding, torch.randn(12, 16)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_equals_beam_search_of_width_one(seed):
    decoder, embedding, context = _decoder(seed)
    stepper = DecoderStepper(decoder, context, embedding)
    first, one = greedy(stepper, 12, 10), beam_search(stepper, 12, 1, 10)
    assert torch.equal(first.tokens, one.tokens) and torch.equal(first.log_prob, one.log_prob)
    # greedy's words are each step's most likely word (never <PAD> or <S>)
    assert not ((first.tokens == SOS) | ((first.tokens == PAD) & (torch.arange(first.tokens.shape[1]) <
                                                                  first.length.unsqueeze(1)))).any()


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_never_scores_below_greedy(seed):
    decoder, embedding, context = _decoder(seed)
    stepper = DecoderStepper(decoder, context, embedding)
    first = greedy(stepper, 12, 10)
    for width in (2, 5):
        found = beam_search(stepper, 12, width, 10)
        assert (found.score >= first.score - 1e-6).all(), width


def test_a_generated_answer_scores_as_the_decoder_scores_it_as_an_option():
    """The search's summed log-likelihood = GenerativeDecoder.score of the same words + </S>."""
    decoder, embedding, context = _decoder(0)
    found = beam_search(DecoderStepper(decoder, context, embedding), 12, 3, 10)
    words = found.tokens  # [N, L]: the answer, </S> included where it ended
    opts_out = torch.where(torch.arange(words.shape[1]) < found.length.unsqueeze(1), words, PAD)
    opts_in = torch.cat([torch.full((12, 1), SOS), opts_out[:, :-1]], dim=1)
    opts_in = torch.where(torch.arange(words.shape[1]) < found.length.unsqueeze(1), opts_in, PAD)
    with torch.no_grad():
        scored = decoder.score(context, opts_in.unsqueeze(1), opts_out.unsqueeze(1), embedding)[:, 0]
    assert torch.allclose(scored, found.log_prob, atol=1e-4)


def test_the_model_generates_an_answer_for_every_round_from_its_scoring_context():
    from helpers.model_batches import make_batch, tiny_model
    from visdial_lg.core.errors import VisdialLGError

    vocab = 30
    batch = make_batch(B=2, R=3, O=5, K=4, vocab=vocab, seed=1)
    model = tiny_model("v1.0-lg_attn_kl-multi", vocab).eval()
    found = model.generate(batch, width=3, max_len=8)
    assert found.tokens.shape[0] == 2 * 3 and found.tokens.shape[1] <= 8
    assert ((found.length >= 1) & (found.length <= 8)).all() and torch.isfinite(found.log_prob).all()
    assert torch.equal(model.generate(batch, width=3, max_len=8).tokens, found.tokens)  # deterministic
    with pytest.raises(VisdialLGError, match="no generative decoder: only retrieval"):
        tiny_model("v1.0-ltmi-disc", vocab).eval().generate(batch)
