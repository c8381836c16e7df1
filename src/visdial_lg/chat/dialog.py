"""A dialog about one image with a trained run, round by round as in VisDial.

The history of a question is the caption, then each earlier question with the answer it got:
here the run's generated answer (beam search), or, for a run without a generative decoder, its
first retrieved answer. A round is scored as a batch of one dialog with one round, the
question, that sees the T = rounds-so-far + 1 history entries; the entries are built with the
dataset's own row functions (training/dataset.py) from token rows of the widths the train
tokens file has, so the model reads what it would read in that round of a VisDial dialog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..core.errors import InputFormatError, VisdialLGError
from ..report.figures import TOP
from ..text.tokenizer import tokenize
from ..text.visdial import NUM_ROUNDS
from ..text.vocab import Vocabulary
from ..training.dataset import OPTION_WORDS, SEQ_LEN, history_entries, truncate
from .answers import TOP_ANSWERS, AnswerPool, PoolScorer
from .regions import ImageRegions

# The model's history takes at most VisDial's rounds (the caption and 9 question-answer pairs).
MAX_ROUNDS = NUM_ROUNDS


@dataclass(frozen=True)
class Widths:
    """Token rows of the tokens file (text.max_*_len of the config it was made with)."""

    question: int
    answer: int
    caption: int

    @classmethod
    def of_tokens(cls, path: str | Path) -> "Widths":
        with h5py.File(path, "r") as f:
            return cls(*(f[name].shape[1] for name in ("question_tokens", "answer_tokens", "caption_tokens")))


def words(text: str) -> list[str]:
    """The tokens of `text` by the project's tokenizer, lower-cased as VisDial's text is."""
    return tokenize(text.lower())


def question_words(text: str) -> list[str]:
    """A question's tokens as the tokens file holds them: VisDial's questions come without "?"
    and tokenization appends one (LTMI's), so a typed "?" is not doubled."""
    return words(text.strip().rstrip("?").rstrip() + "?")


def _rows(sequences: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Id lists as a tokens file's rows: [n, width] cut and zero-padded, and their lengths [n]."""
    tokens = np.zeros((len(sequences), width), np.int64)
    lengths = np.zeros(len(sequences), np.int64)
    for i, ids in enumerate(sequences):
        ids = ids[:width]
        tokens[i, :len(ids)], lengths[i] = ids, len(ids)
    return tokens, lengths


def round_batch(image: dict, caption: list[int], turns: list[tuple[list[int], list[int]]], question: list[int],
                widths: Widths) -> dict:
    """The batch of the next round: image keys (`ImageRegions.batch`), the caption's ids, the
    (question, answer) ids of the rounds so far and the new question's. History entry 0 is the
    caption + </S>, entry j the question and answer of round j + </S> (VisDialDataset's)."""
    questions, question_len = truncate(*_rows([q for q, _ in turns] + [question], widths.question),
                                       SEQ_LEN, SEQ_LEN)  # [T, 20], [T]
    # The new round's answer is unknown: an empty row in the place history_entries never reads.
    answers, answer_len = truncate(*_rows([a for _, a in turns] + [[]], widths.answer), SEQ_LEN, SEQ_LEN)  # [T, 20]
    entries = len(turns) + 1
    hist, hist_len = history_entries(*_rows([caption], widths.caption), questions, question_len, answers, answer_len,
                                     np.ones(entries, bool))
    device = image["img_feat"].device
    rows = {"ques_tokens": questions[-1:], "ques_len": question_len[-1:],  # [1, 20], [1]: one round
            "ans": np.zeros((1, SEQ_LEN), np.int64), "ans_len": np.zeros(1, np.int64)}  # its answer: unknown
    batch = {k: torch.from_numpy(v)[None].to(device) for k, v in rows.items()}
    batch.update(hist_tokens=torch.from_numpy(hist)[None].to(device),  # [1, T, 40]
                 hist_len=torch.from_numpy(hist_len)[None].to(device),  # [1, T]
                 hist_mask=torch.ones(1, 1, entries, dtype=torch.bool, device=device),  # the round sees all T
                 round_mask=torch.ones(1, 1, dtype=torch.bool, device=device),
                 num_rounds=torch.ones(1, dtype=torch.long, device=device), **image)
    return batch


@dataclass
class DialogSession:
    """Answers question after question about `regions`' image; `turns` is the dialog so far."""

    model: torch.nn.Module
    run: str
    vocab: Vocabulary
    regions: ImageRegions
    pool: AnswerPool
    scorer: PoolScorer
    widths: Widths
    beam_width: int
    caption: str = ""
    turns: list[tuple[list[int], list[int]]] = field(default_factory=list)
    generation_error: str | None = None  # why the run generates nothing (no generative decoder)

    def __post_init__(self):
        self.caption_ids = self.vocab.to_ids(words(self.caption))
        self.image = self.regions.batch(next(self.model.parameters()).device)

    @property
    def done(self) -> bool:
        return len(self.turns) >= MAX_ROUNDS

    def ask(self, question: str) -> dict:
        """Answer `question` and add it, with its answer, to the dialog. Returns the round:
        question, the words the model read, the history it saw, the generated answer (None with
        `generation_unavailable` where the run has no generative decoder), the top retrieved
        answers with their scores, and the top regions of its distribution with boxes and weights."""
        if not question.strip():
            raise InputFormatError("a question must not be empty")
        if self.done:
            raise VisdialLGError(f"a dialog has at most {MAX_ROUNDS} rounds (VisDial's; the model's history "
                                 f"takes no more)")
        tokens = question_words(question)
        ids = self.vocab.to_ids(tokens)  # unknown words: <UNK>
        batch = round_batch(self.image, self.caption_ids, self.turns, ids, self.widths)
        scores = self.scorer.scores(self.model.inference_context(batch))  # [M]
        best = scores.topk(min(TOP_ANSWERS, len(self.pool)))
        retrieved = [{"answer": self.pool.texts[i], "score": round(float(s), 4)}
                     for s, i in zip(best.values.tolist(), best.indices.tolist())]
        generated = self._generate(batch)
        first = int(best.indices[0])
        answer = generated if generated is not None else self.pool.tokens[first, :self.pool.lengths[first]].tolist()
        read = batch["ques_tokens"][0, 0, :int(batch["ques_len"][0, 0])]  # what the model reads of it
        result = {"round": len(self.turns) + 1, "question": question,
                  "question_words": " ".join(self.vocab.to_words(read.tolist())),
                  "unknown_words": [t for t in tokens if t not in self.vocab],
                  "history": self._history(batch),
                  "generated": None if generated is None else self.vocab.sentence(generated),
                  "retrieved": retrieved, "regions": self._regions(batch)}
        if generated is None:
            result["generation_unavailable"] = self.generation_error
        self.turns.append((ids, answer))
        return result

    def _generate(self, batch: dict) -> list[int] | None:
        """The generated answer's ids (</S> dropped), or None where the run cannot generate."""
        if self.generation_error is not None:
            return None
        try:
            found = self.model.generate(batch, width=self.beam_width, max_len=OPTION_WORDS + 1)  # words + </S>
        except VisdialLGError as e:  # the run has no generative decoder: retrieval only
            self.generation_error = str(e)
            return None
        ids = found.tokens[0, :int(found.length[0])].tolist()
        return ids[:-1] if ids and ids[-1] == Vocabulary.EOS else ids

    def _history(self, batch: dict) -> list[str]:
        """The history entries the round saw, as words (each entry's closing </S> dropped)."""
        return [self.vocab.sentence(row[:int(n)].tolist())
                for row, n in zip(batch["hist_tokens"][0].cpu(), batch["hist_len"][0].cpu())]

    def _regions(self, batch: dict) -> list[dict]:
        """The top regions of the model's distribution (LTMI's pooling weights, LG's prior g)."""
        k = self.regions.num_boxes
        prior = self.model.region_distributions(batch)["prior"][0, 0, :k].float().cpu()  # [k]
        weights, indices = prior.topk(min(TOP, k))
        return [{"region": i, "box": [round(float(v), 1) for v in self.regions.boxes[i]], "weight": round(w, 4)}
                for w, i in zip(weights.tolist(), indices.tolist())]
