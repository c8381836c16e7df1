"""How many demo dialogs does learning *where to look* need, with perfect region features?

A control for goals 3-4 of docs/demo.md ("Training and the image", the dataset-size floor).
Scenes and dialogs come from the demo generator itself (`demo.scenes.sample_scene`,
`demo.dialogs.make_dialog`: the same templates, referring expressions and answer balance as
`make-demo`), but each object's region feature is its attributes one-hot (shape, colour,
size, position: 16 numbers), the best features any extractor could give, with no distractor
regions. A small question-guided attention classifier (not the paper's model: a 1-layer LSTM
over the question, one softmax attention over the objects, an MLP over [question; attended
object]) learns each round's answer meaning (e.g. ("colour", "red")) from N training images'
dialogs, and is scored on 300 other images' rounds with their own objects, with another
image's objects (the image no longer matches), and with no image at all (a second model
trained on the question alone). The gap between "own" and "other image" is what the image
gives.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_dataset_size.py [--images 180 400 700 1060] [--steps 4000]

Prints one JSON object. About 45 s per size and model on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from visdial_lg.demo.dialogs import make_dialog  # noqa: E402
from visdial_lg.demo.regenerate import ATTRIBUTES, ONE_HOT_DIM, one_hot_attributes  # noqa: E402
from visdial_lg.demo.scenes import MAX_OBJECTS, sample_scene  # noqa: E402

VAL_IMAGES, VAL_SEED_OFFSET = 300, 10**6  # held-out images: seeds no training image uses


def perfect_features(scene) -> tuple[torch.Tensor, torch.Tensor]:
    """[MAX_OBJECTS, 16] one-hot attributes per object (zero rows pad), mask [MAX_OBJECTS]."""
    features = torch.zeros(MAX_OBJECTS, ONE_HOT_DIM)
    for k in range(len(scene.objects)):
        for index, value in one_hot_attributes({a: scene.attribute(k, a) for a in ATTRIBUTES}):
            features[k, index] = value
    mask = torch.arange(MAX_OBJECTS) < len(scene.objects)
    return features, mask


def rounds_of(images: int, seed_offset: int, width: int, height: int) -> list[tuple]:
    """(question, meaning, features, mask) of every round of `images` generated images."""
    rows = []
    for i in range(images):
        rng = random.Random(seed_offset + i)
        scene = sample_scene(rng, width, height)
        features, mask = perfect_features(scene)
        rows.extend((r.question, r.meaning, features, mask) for r in make_dialog(scene, rng).rounds)
    return rows


class AttentionClassifier(nn.Module):
    """answer meaning = MLP([q ; sum_k softmax_k(<W r_k, q>) r_k]), r_k = LN(ReLU(U f_k))."""

    def __init__(self, words: int, meanings: int, use_image: bool, hidden: int = 64, embed: int = 32):
        super().__init__()
        self.use_image = use_image
        self.embedding = nn.Embedding(words, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.region = nn.Sequential(nn.Linear(ONE_HOT_DIM, hidden), nn.ReLU(), nn.LayerNorm(hidden))
        self.key = nn.Linear(hidden, hidden)
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, meanings))

    def forward(self, tokens, lengths, features, mask):
        states, _ = self.lstm(self.embedding(tokens))
        q = states[torch.arange(len(tokens)), lengths - 1]  # [N, H]
        regions = self.region(features)  # [N, K, H]
        logits = (self.key(regions) @ q.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
        v = (torch.softmax(logits, -1).unsqueeze(-1) * regions).sum(1) * float(self.use_image)
        return self.out(torch.cat([q, v], -1))


def tensors(rows, words: dict, meanings: dict):
    width = max(len(q.split()) for q, *_ in rows)
    tokens = torch.tensor([[words[w] for w in q.split()] + [0] * (width - len(q.split())) for q, *_ in rows])
    lengths = torch.tensor([len(q.split()) for q, *_ in rows])
    return (tokens, lengths, torch.stack([r[2] for r in rows]), torch.stack([r[3] for r in rows]),
            torch.tensor([meanings[r[1]] for r in rows]))


def accuracy(model, data, shift_images: int = 0) -> float:
    tokens, lengths, features, mask, target = data
    order = torch.roll(torch.arange(len(target)), shift_images)  # another image's objects
    with torch.no_grad():
        return (model(tokens, lengths, features[order], mask[order]).argmax(-1) == target).float().mean().item()


def run(images: int, steps: int, batch: int, seed: int, width: int, height: int) -> dict:
    train, val = rounds_of(images, 0, width, height), rounds_of(VAL_IMAGES, VAL_SEED_OFFSET, width, height)
    words = {w: i + 1 for i, w in enumerate(sorted({w for q, *_ in train + val for w in q.split()}))}
    meanings = {m: i for i, m in enumerate(sorted({r[1] for r in train + val}, key=str))}
    train_t, val_t = tensors(train, words, meanings), tensors(val, words, meanings)
    result = {"images": images, "train_rounds": len(train)}
    for use_image in (True, False):
        torch.manual_seed(seed)
        model = AttentionClassifier(len(words) + 1, len(meanings), use_image)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.process_time()
        for _ in range(steps):
            pick = torch.randint(0, len(train), (batch,))
            loss = nn.functional.cross_entropy(model(*[t[pick] for t in train_t[:4]]), train_t[4][pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if use_image:
            result["own_image"] = round(accuracy(model, val_t), 4)
            result["other_image"] = round(accuracy(model, val_t, shift_images=10), 4)  # 10 rounds = one dialog
            result["train_loss"] = round(loss.item(), 4)
        else:
            result["question_only"] = round(accuracy(model, val_t), 4)
        result["cpu_seconds" if use_image else "cpu_seconds_question_only"] = round(time.process_time() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[180, 400, 700, 1060],
                        help="training images (one dialog of 10 rounds each); the demo trains v1.0 on 180")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=128, help="rounds per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [run(n, args.steps, args.batch, args.seed, args.width, args.height) for n in args.images]
    print(json.dumps({"val_images": VAL_IMAGES, "steps": args.steps, "batch_rounds": args.batch,
                      "metric": "accuracy of the answer meaning on the val rounds", "sizes": sizes}, indent=1))


if __name__ == "__main__":
    main()
