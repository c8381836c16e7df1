"""The answers a chat retrieves from: every distinct answer of the version's train tokens file,
scored for a round by the run's decoder (its primary one, as evaluation reports it: a `multi`
run by its generative decoder).

* discriminative: the score <e_o, c> of `DiscriminativeDecoder`; an answer's encoding e_o does
  not depend on the question, so the pool is encoded once per chat and a round costs one
  matrix-vector product;
* generative: the summed log-likelihood of the answer's words and </S>
  (`GenerativeDecoder.score`), for every answer under each round's context, `chunk` answers
  at a time (memory stays bounded for VisDial's ~340k answers; docs/chat.md gives the cost).

Answers are compared as the decoders see them (options: at most 18 words), so two answers that
differ only beyond that, or only in words outside the vocabulary, count as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import InputFormatError
from ..evaluation.evaluate import primary_decoder
from ..evaluation.human import answer_text
from ..text.vocab import Vocabulary
from ..training.dataset import OPTION_WORDS, SEQ_LEN, open_h5, require_datasets, gather, with_boundaries

TOP_ANSWERS = 5  # retrieved answers shown per round
DECODER_NAMES = {"disc": "the discriminative decoder's score", "gen": "the generative decoder's log-likelihood"}


@dataclass(frozen=True)
class AnswerPool:
    """Distinct train answers, most often a ground-truth answer first. `tokens`/`lengths`: their
    rows of the tokens file (what a history entry holds); `options`/`option_lengths`: the rows the
    decoders score (dataset.gather of the options)."""

    texts: list[str]  # [M]
    counts: np.ndarray  # [M] times it is the ground-truth answer of a train round
    tokens: np.ndarray  # [M, W]
    lengths: np.ndarray  # [M]
    options: np.ndarray  # [M, SEQ_LEN]
    option_lengths: np.ndarray  # [M]
    distinct: int  # distinct non-empty answers before a cap

    @classmethod
    def from_tokens(cls, path: str | Path, vocab: Vocabulary, size: int | None = None) -> "AnswerPool":
        """The pool of the tokens file `path`; `size`: only the `size` most frequent answers."""
        if size is not None and size < 1:
            raise InputFormatError(f"the answer pool size must be at least 1, got {size}")
        path = Path(path)
        with open_h5(path, "tokens") as f:
            require_datasets(f, path, ("answer_tokens", "answer_len", "answer"), "tokens")
            pool, lengths, answer = f["answer_tokens"][()], f["answer_len"][()], f["answer"][()]
        rows = np.arange(len(pool))
        options, option_lengths = gather(pool, lengths, rows, OPTION_WORDS, SEQ_LEN)  # [N, 20], [N]
        key = np.concatenate([options, option_lengths[:, None]], 1)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        used = np.bincount(answer[answer >= 0], minlength=len(pool))  # [N]
        counts = np.bincount(inverse.reshape(-1), weights=used, minlength=len(first)).astype(np.int64)  # [U]
        keep = option_lengths[first] > 0  # an empty answer has nothing to say
        first, counts = first[keep], counts[keep]
        order = np.lexsort((first, -counts))[:size]  # most frequent first, then in pool order
        chosen = first[order]
        if len(chosen) == 0:
            raise InputFormatError(f"tokens file {path} holds no non-empty answer to retrieve")
        return cls([answer_text(vocab, pool, lengths, i) for i in chosen], counts[order], pool[chosen],
                   lengths[chosen], options[chosen], option_lengths[chosen], len(first))

    def __len__(self) -> int:
        return len(self.texts)


class PoolScorer:
    """Every pool answer's score for a round, by decoder `decoder` ("disc" or "gen") of `model`."""

    def __init__(self, model, pool: AnswerPool, decoder: str, device, chunk: int = 2048):
        self.model, self.decoder, self.chunk = model, decoder, chunk
        # Answers are run shortest first: a chunk's LSTM runs only as many steps as its longest
        # answer has words (most answers have a few), then the scores go back to pool order.
        self.order = torch.from_numpy(np.argsort(pool.option_lengths, kind="stable")).to(device)  # [M]
        options = torch.from_numpy(pool.options).to(device)[self.order]
        lengths = torch.from_numpy(pool.option_lengths).to(device)[self.order]
        if decoder == "disc":
            with torch.no_grad():
                self.encoded = torch.cat([model.disc.encode_options(options[s:s + chunk], lengths[s:s + chunk],
                                                                    model.embedding)
                                          for s in range(0, len(pool), chunk)])  # [M, H]
        else:
            exists = torch.ones_like(lengths, dtype=torch.bool).cpu().numpy()
            opts_in, opts_out = with_boundaries(options.cpu().numpy(), lengths.cpu().numpy(), exists)
            self.opts_in, self.opts_out = torch.from_numpy(opts_in).to(device), torch.from_numpy(opts_out).to(device)

    @classmethod
    def of_run(cls, model, spec, pool: AnswerPool, device) -> "PoolScorer":
        return cls(model, pool, primary_decoder(spec), device)

    @property
    def scored_by(self) -> str:
        return DECODER_NAMES[self.decoder]

    @torch.no_grad()
    def scores(self, context: torch.Tensor) -> torch.Tensor:
        """context [1, D] (one round's) -> float scores [M], in pool order."""
        if self.decoder == "disc":
            ordered = (self.encoded @ context[0].to(self.encoded.dtype)).float()
        else:
            model, step = self.model, self.chunk
            ordered = torch.cat([model.gen.score(context, self.opts_in[None, s:s + step],
                                                 self.opts_out[None, s:s + step], model.embedding)[0]
                                 for s in range(0, self.opts_in.shape[0], step)])
        return torch.empty_like(ordered).scatter_(0, self.order, ordered)
