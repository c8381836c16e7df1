"""Answers generated word by word by the generative decoder: greedy decoding and beam search.

The decoder scores an option by the summed log-likelihood of its words and `</S>`
(`GenerativeDecoder.score`); generation searches for the word sequence that scores best under
the same model, from the same context. Beam search keeps the `width` best prefixes by summed
log-likelihood; a hypothesis ends at `</S>` (kept, frozen, in its beam slot) or after
`max_len` words. The answer is the finished hypothesis of the best *length-normalised* score
(summed log-likelihood / number of words, `</S>` counted), as is usual: summed scores favour
short answers. Greedy decoding is beam search of width 1, and the greedy answer is one of the
candidates beam search chooses from, so its normalised score is never below greedy's.

Search works on any `Stepper` (the decoder's is `DecoderStepper`; tests plant their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ..text.vocab import Vocabulary

SOS, EOS, PAD = Vocabulary.SOS, Vocabulary.EOS, Vocabulary.PAD


class Stepper(Protocol):
    """A left-to-right model: the log-probabilities of the next word after `tokens`."""

    def start(self) -> Any:
        """The state before the first word, one row per sequence."""

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        """tokens [M] (the last word of each row) -> log-probabilities [M, V], the next state."""

    def select(self, state: Any, rows: Tensor) -> Any:
        """The state of `rows` [M'] (indices into the current rows)."""


@dataclass(frozen=True)
class Generated:
    tokens: Tensor  # [N, L] word ids, ending with </S> unless max_len cut the answer; PAD after
    log_prob: Tensor  # [N] summed log-likelihood of the words (and </S>) under the model
    length: Tensor  # [N] words counted, </S> included

    @property
    def score(self) -> Tensor:
        """The length-normalised log-likelihood beam search ranks answers by."""
        return self.log_prob / self.length.clamp(min=1)


def greedy(stepper: Stepper, batch: int, max_len: int) -> Generated:
    """The most likely word at every step."""
    return _search(stepper, batch, 1, max_len)


def beam_search(stepper: Stepper, batch: int, width: int, max_len: int) -> Generated:
    """The best length-normalised answer among the `width` beams' and the greedy one."""
    found = _search(stepper, batch, width, max_len)
    if width == 1:
        return found
    first = greedy(stepper, batch, max_len)
    better = (first.score > found.score).unsqueeze(1)  # [N, 1]
    length = max(found.tokens.shape[1], first.tokens.shape[1])
    return Generated(torch.where(better, _pad(first.tokens, length), _pad(found.tokens, length)),
                     torch.where(better.squeeze(1), first.log_prob, found.log_prob),
                     torch.where(better.squeeze(1), first.length, found.length))


def _search(stepper: Stepper, batch: int, width: int, max_len: int) -> Generated:
    """Beam search over `width` beams per sequence, ranked by summed log-likelihood."""
    state = stepper.start()
    last = torch.full((batch,), SOS, dtype=torch.long)
    log_probs, state = stepper.step(last, state)  # [N, V]
    log_probs = _words_only(log_probs.float())
    device, vocab = log_probs.device, log_probs.shape[1]
    beams = min(width, vocab)
    total, words = log_probs.topk(beams, dim=1)  # [N, W] both
    state = stepper.select(state, torch.arange(batch, device=device).repeat_interleave(beams))  # rows n*W + w
    tokens = words.unsqueeze(-1)  # [N, W, 1]
    done = words == EOS  # [N, W]
    for _ in range(1, max_len):
        if bool(done.all()):
            break
        log_probs, state = stepper.step(tokens[:, :, -1].reshape(-1), state)  # [N*W, V]
        log_probs = _words_only(log_probs.float()).view(batch, beams, vocab)
        # A finished hypothesis continues only with PAD, at no cost: it keeps its slot and score.
        frozen = torch.full_like(log_probs, -torch.inf)
        frozen[..., PAD] = 0.0
        log_probs = torch.where(done.unsqueeze(-1), frozen, log_probs)
        candidates = (total.unsqueeze(-1) + log_probs).view(batch, beams * vocab)  # [N, W*V]
        total, chosen = candidates.topk(beams, dim=1)  # [N, W]
        parent, word = chosen // vocab, chosen % vocab  # [N, W]
        tokens = torch.cat([tokens.gather(1, parent.unsqueeze(-1).expand_as(tokens)), word.unsqueeze(-1)], dim=-1)
        done = done.gather(1, parent) | (word == EOS)
        rows = (torch.arange(batch, device=device).unsqueeze(1) * beams + parent).reshape(-1)
        state = stepper.select(state, rows)
    length = _lengths(tokens)  # [N, W]
    best = (total / length.clamp(min=1)).argmax(dim=1)  # [N]
    pick = torch.arange(batch, device=device)
    return Generated(tokens[pick, best], total[pick, best], length[pick, best])


def _words_only(log_probs: Tensor) -> Tensor:
    """No answer contains <PAD> or <S> (training never targets them): they are never chosen.
    The chosen words keep the model's log-probabilities (nothing is renormalised)."""
    log_probs = log_probs.clone()
    log_probs[:, [PAD, SOS]] = -torch.inf
    return log_probs


def _lengths(tokens: Tensor) -> Tensor:
    """Words up to and including the first </S> (all of them when there is none)."""
    is_end = tokens == EOS
    first_end = torch.where(is_end.any(-1), is_end.float().argmax(-1) + 1, torch.full_like(tokens[..., 0], tokens.shape[-1]))
    return first_end.long()


def _pad(tokens: Tensor, length: int) -> Tensor:
    return torch.nn.functional.pad(tokens, (0, length - tokens.shape[1]), value=PAD)


class DecoderStepper:
    """The generative decoder as a Stepper, from one context vector per sequence: the state is
    its LSTM's (h, c), starting at h = context in every layer and c = 0, as in training; the
    log-probabilities are those `GenerativeDecoder.score` sums."""

    def __init__(self, decoder, context: Tensor, embedding: torch.nn.Embedding):
        self.decoder, self.context, self.embedding = decoder, context, embedding

    def start(self):
        return self.decoder.initial_state(self.context)

    def step(self, tokens: Tensor, state):
        outputs, state = self.decoder.lstm(self.embedding(tokens.to(self.context.device)).unsqueeze(1), state)
        return torch.log_softmax(self.decoder.word_logits(outputs[:, 0]).float(), dim=-1), state

    def select(self, state, rows: Tensor):
        h, c = state
        return h[:, rows], c[:, rows]
