"""Synthetic batches with exactly the keys, shapes and dtypes of docs/formats.md
("A batch"), and a tiny model configuration, for model and training tests."""

from __future__ import annotations

import contextlib

import torch

from visdial_lg.core.config import LGConfig, ModelConfig
from visdial_lg.models.ltmi import VisualDialogModel, build_model
from visdial_lg.core.runs import parse_run_id

PAD, START, END = 0, 1, 2
FIRST_WORD = 4  # <PAD> <S> </S> <UNK> come first in the vocabulary
Q_LEN, A_LEN, H_LEN = 20, 20, 40


def tiny_model_config(**overrides) -> ModelConfig:
    values = {"hidden": 16, "embed": 8, "blocks": 1, "heads": 2, "pad_slots": 2, "dropout": 0.0,
              "lstm_layers": 1, "box_bins": 16}
    values.update(overrides)
    return ModelConfig.from_dict(values, "model")


def lg_config(lambda_: float = 1.0) -> LGConfig:
    return LGConfig.from_dict({"lambda": lambda_})


def tiny_model(run: str, vocab: int, seed: int = 0, lambda_: float = 1.0, **cfg) -> VisualDialogModel:
    """The model of a run id at tiny sizes (`cfg` overrides tiny_model_config), seeded."""
    torch.manual_seed(seed)
    return build_model(parse_run_id(run), vocab, tiny_model_config(**cfg), lg_config(lambda_))


def _words(gen: torch.Generator, vocab: int, low: int, high: int) -> list[int]:
    n = int(torch.randint(low, high + 1, (1,), generator=gen))
    return torch.randint(FIRST_WORD, vocab, (n,), generator=gen).tolist()


def _put(row: torch.Tensor, tokens: list[int]) -> None:
    tokens = tokens[: row.shape[0]]
    row[: len(tokens)] = torch.tensor(tokens, dtype=torch.long)


def make_batch(B: int = 2, R: int = 10, O: int = 100, K: int = 8, vocab: int = 40, seed: int = 0,
               num_rounds: list[int] | None = None, num_boxes: list[int] | None = None,
               feature_dim: int = 2048) -> dict[str, torch.Tensor]:
    """A batch of B random dialogs. Dialog b has `num_rounds[b]` real rounds (default R;
    later rounds are all-zero padding as on test) and `num_boxes[b]` real boxes (default K;
    padded boxes have zero features). Every real round has a GT answer among its options."""
    gen = torch.Generator().manual_seed(seed)
    num_rounds = num_rounds or [R] * B
    num_boxes = num_boxes or [K] * B
    batch = {
        "image_id": torch.arange(1, B + 1, dtype=torch.int64) * 1000 + seed,
        "num_rounds": torch.tensor(num_rounds, dtype=torch.int64),
        "ques_tokens": torch.zeros(B, R, Q_LEN, dtype=torch.long), "ques_len": torch.zeros(B, R, dtype=torch.long),
        "hist_tokens": torch.zeros(B, R, H_LEN, dtype=torch.long), "hist_len": torch.zeros(B, R, dtype=torch.long),
        "hist_mask": torch.zeros(B, R, R, dtype=torch.bool), "round_mask": torch.zeros(B, R, dtype=torch.bool),
        "opts": torch.zeros(B, R, O, A_LEN, dtype=torch.long), "opts_len": torch.zeros(B, R, O, dtype=torch.long),
        "opts_in": torch.zeros(B, R, O, A_LEN, dtype=torch.long), "opts_out": torch.zeros(B, R, O, A_LEN, dtype=torch.long),
        "ans": torch.zeros(B, R, A_LEN, dtype=torch.long), "ans_len": torch.zeros(B, R, dtype=torch.long),
        "ans_in": torch.zeros(B, R, A_LEN, dtype=torch.long), "ans_out": torch.zeros(B, R, A_LEN, dtype=torch.long),
        "gt_index": torch.full((B, R), -1, dtype=torch.long),
        "img_feat": torch.zeros(B, K, feature_dim), "boxes": torch.zeros(B, K, 4),
        "num_boxes": torch.tensor(num_boxes, dtype=torch.int64),
        "img_w": torch.full((B,), 640.0), "img_h": torch.full((B,), 480.0),
    }
    for b in range(B):
        _put(batch["hist_tokens"][b, 0], _words(gen, vocab, 3, 8)[:20] + [END])
        for r in range(num_rounds[b]):
            question = _words(gen, vocab, 2, 8) + [FIRST_WORD]  # FIRST_WORD plays "?"
            answer = _words(gen, vocab, 1, 5)
            _put(batch["ques_tokens"][b, r], question)
            batch["ques_len"][b, r] = len(question)
            _put(batch["ans"][b, r], answer)
            batch["ans_len"][b, r] = len(answer)
            _put(batch["ans_in"][b, r], [START] + answer)
            _put(batch["ans_out"][b, r], answer + [END])
            gt = int(torch.randint(0, O, (1,), generator=gen))
            batch["gt_index"][b, r] = gt
            for o in range(O):
                option = answer if o == gt else _words(gen, vocab, 1, 5)
                _put(batch["opts"][b, r, o], option)
                batch["opts_len"][b, r, o] = len(option)
                _put(batch["opts_in"][b, r, o], [START] + option)
                _put(batch["opts_out"][b, r, o], option + [END])
            if r + 1 < R:  # history entry r+1 = q_r + a_r + </S>
                entry = question + answer + [END]
                _put(batch["hist_tokens"][b, r + 1], entry)
        for j in range(R):
            batch["hist_len"][b, j] = int((batch["hist_tokens"][b, j] != PAD).sum())
        batch["round_mask"][b, : num_rounds[b]] = True
        for i in range(R):
            batch["hist_mask"][b, i, : min(i + 1, num_rounds[b])] = True
        n = num_boxes[b]
        batch["img_feat"][b, :n] = torch.rand(n, feature_dim, generator=gen)
        corner = torch.rand(n, 2, generator=gen) * torch.tensor([600.0, 440.0])
        size = 1 + torch.rand(n, 2, generator=gen) * 39
        batch["boxes"][b, :n] = torch.cat([corner, corner + size], dim=1)
    # History entries exist only for the real rounds (entry j feeds round j+1).
    for b in range(B):
        for j in range(num_rounds[b], R):
            batch["hist_tokens"][b, j] = 0
            batch["hist_len"][b, j] = 0
    return batch


def select(batch: dict, index: list[int], K: int | None = None) -> dict:
    """Dialogs `index` of `batch` (optionally keeping only the first K boxes)."""
    out = {key: value[index] for key, value in batch.items()}
    if K is not None:
        for key in ("img_feat", "boxes"):
            out[key] = out[key][:, :K]
    return out


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Tiny models run fastest single-threaded (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def grounding_task_batch(B: int, seed: int, R: int = 4, K: int = 5, shapes: int = 8, colours: int = 8,
                         feature_dim: int = 32, shape_strength: float = 1.0, noise: float = 0.1) -> dict:
    """A synthetic task whose answer depends on one region. Each image has K regions with
    distinct shapes and colours (one-hot in the features, the shape scaled by
    `shape_strength`, plus Gaussian noise); round r asks "what <shape s> ?" and the answer,
    one word among the `colours` options, is the colour of the region with shape s.
    `batch["target"]` [B, R] is that region. Vocabulary: 10 + shapes + colours words."""
    gen = torch.Generator().manual_seed(seed)
    vocab = 10 + shapes + colours
    shape_word, colour_word = 10, 10 + shapes
    batch = make_batch(B=B, R=R, O=colours, K=K, vocab=vocab, seed=seed, feature_dim=feature_dim)
    region_shape = torch.stack([torch.randperm(shapes, generator=gen)[:K] for _ in range(B)])  # [B, K]
    region_colour = torch.stack([torch.randperm(colours, generator=gen)[:K] for _ in range(B)])  # [B, K]
    features = noise * torch.randn(B, K, feature_dim, generator=gen)
    features.scatter_add_(2, region_shape.unsqueeze(-1), torch.full((B, K, 1), shape_strength))
    features.scatter_add_(2, (shapes + region_colour).unsqueeze(-1), torch.ones(B, K, 1))
    target = torch.stack([torch.randperm(K, generator=gen)[:R] for _ in range(B)])  # [B, R]
    asked, answer = region_shape.gather(1, target), colour_word + region_colour.gather(1, target)  # [B, R]
    for key in ("ques_tokens", "ans", "ans_in", "ans_out", "opts", "opts_in", "opts_out"):
        batch[key].zero_()
    batch["ques_tokens"][..., 0], batch["ques_tokens"][..., 1], batch["ques_tokens"][..., 2] = 5, shape_word + asked, FIRST_WORD
    batch["ques_len"][:] = 3
    batch["ans"][..., 0], batch["ans_len"][:] = answer, 1
    batch["ans_in"][..., 0], batch["ans_in"][..., 1] = START, answer
    batch["ans_out"][..., 0], batch["ans_out"][..., 1] = answer, END
    options = colour_word + torch.arange(colours)  # option o = colour o
    batch["opts"][..., 0], batch["opts_len"][:] = options, 1
    batch["opts_in"][..., 0], batch["opts_in"][..., 1] = START, options
    batch["opts_out"][..., 0], batch["opts_out"][..., 1] = options, END
    batch["gt_index"] = answer - colour_word
    batch["img_feat"], batch["target"] = features, target
    return batch
