"""Benchmark: vocabulary + tokenization of a VisDial-v1.0-sized train JSON.

Writes a synthetic train JSON with the real sizes (123,287 dialogs, ~376k unique
questions, ~337k unique answers, 10 rounds, 100 options per round; questions ~6,
answers ~3, captions ~11 words, Zipf-distributed words with some punctuation and
contractions), then runs the `vocab` and `tokenize` stages each in a fresh process
and prints JSON: wall and CPU seconds (the stage's process plus its workers), peak
RSS (the stage's process; the largest worker), output sizes, and the 1-minute load
average (wall times on a shared machine are only comparable at a low load). Usage: `python bench/tokenization.py [--dialogs N] [--workers W] [--keep DIR]`.
"""

from __future__ import annotations

import os
import sys

# This file's name shadows the standard library's `tokenize` (used by linecache,
# inspect, torch): take its folder off the import path before anything imports it.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

REAL = {"dialogs": 123_287, "questions": 376_082, "answers": 337_527}
COMMON = ("is it the a are there any what color of in on you can see does he she how many people "
          "man woman dog cat sky table white black red blue green yes no i tell can't it's don't "
          "there's wearing sitting standing picture photo sunny day outside inside visible").split()
PUNCT_WORDS = ["yes,", "no,", "it's", "can't", "don't", "i'm", "isn't", "that's", "1,000", "t-shirt", "no.", "yes."]


def _word_table(rng: np.random.Generator, size: int = 30_000) -> np.ndarray:
    words = COMMON + PUNCT_WORDS + [f"w{k}" for k in range(size - len(COMMON) - len(PUNCT_WORDS))]
    return np.array(words, dtype=object)


def _strings(rng, table, count: int, mean_len: float, unique: bool) -> list[str]:
    """`count` strings of ~mean_len Zipf-drawn words (distinct ones when `unique`)."""
    out: dict[str, None] = {}
    result: list[str] = []
    while len(out if unique else result) < count:
        n = count * 2 if unique else count
        lengths = np.clip(rng.poisson(mean_len - 1, n) + 1, 1, 60)  # [n]
        ids = np.minimum(rng.zipf(1.3, int(lengths.sum())) - 1, len(table) - 1)  # [sum(lengths)]
        words = table[ids]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for k in range(n):
            s = " ".join(words[starts[k] : starts[k + 1]])
            if unique:
                out[s] = None
                if len(out) == count:
                    break
            else:
                result.append(s)
    return list(out) if unique else result


def write_synthetic_train(path: Path, dialogs: int, seed: int = 0) -> dict:
    """Stream a VisDial train JSON of the given size to `path`; returns its sizes."""
    rng = np.random.default_rng(seed)
    table = _word_table(rng)
    scale = dialogs / REAL["dialogs"]
    n_q, n_a = max(10, int(REAL["questions"] * scale)), max(100, int(REAL["answers"] * scale))
    questions = _strings(rng, table, n_q, 6, unique=True)
    answers = _strings(rng, table, n_a, 3, unique=True)
    captions = _strings(rng, table, dialogs, 11, unique=False)
    with open(path, "w") as f:
        f.write('{"version": "1.0", "split": "train", "data": {"questions": ')
        json.dump(questions, f)
        f.write(', "answers": ')
        json.dump(answers, f)
        f.write(', "dialogs": [')
        block = 2000
        for start in range(0, dialogs, block):
            n = min(block, dialogs - start)
            q = rng.integers(0, n_q, (n, 10))  # [n, 10]
            gt = rng.integers(0, 100, (n, 10))  # [n, 10]
            opts = rng.integers(0, n_a, (n, 10, 100))  # [n, 10, 100]
            ans = opts[np.arange(n)[:, None], np.arange(10)[None], gt]  # the GT answer sits at gt_index
            opt_text = [",".join(row) for row in opts.reshape(-1, 100).astype(str)]
            parts = []
            for i in range(n):
                rounds = ",".join(
                    f'{{"question": {q[i, r]}, "answer": {ans[i, r]}, "answer_options": [{opt_text[i * 10 + r]}], '
                    f'"gt_index": {gt[i, r]}}}' for r in range(10))
                parts.append(f'{{"image_id": {start + i}, "caption": {json.dumps(captions[start + i])}, '
                             f'"dialog": [{rounds}]}}')
            f.write(("," if start else "") + ",".join(parts))
        f.write("]}}")
    return {"dialogs": dialogs, "questions": n_q, "answers": n_a, "json_mb": round(path.stat().st_size / 2**20, 1)}


def _stage(name: str, args: argparse.Namespace, workdir: Path) -> None:
    """Run one stage in this process and print its timing JSON (called in a child process)."""
    from visdial_lg.core.config import TextConfig
    from visdial_lg.text.tokens import tokenize_split
    from visdial_lg.text.vocab import build_vocabulary_file

    text_cfg = TextConfig.from_dict({"workers": args.workers}, "text")
    train, vocab, out = workdir / "train.json", workdir / "vocab.json", workdir / "train.h5"
    start = time.perf_counter()
    if name == "vocab":
        size = len(build_vocabulary_file(train, vocab, text_cfg))
    else:
        tokenize_split(train, vocab, out, text_cfg, version="v1.0", split="train")
        size = round(out.stat().st_size / 2**20, 1)
    seconds = time.perf_counter() - start
    me, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "seconds": round(seconds, 2),
        "cpu_seconds": round(me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime, 2),
        "peak_rss_mb": round(me.ru_maxrss / 1024), "worker_peak_rss_mb": round(workers.ru_maxrss / 1024),
        "output": size,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogs", type=int, default=REAL["dialogs"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", help="work in this folder and keep the files, reusing its train.json "
                        "(default: a temp folder)")
    parser.add_argument("--stage", choices=["vocab", "tokenize"], help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.stage:
        return _stage(args.stage, args, Path(args.keep))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        train = workdir / "train.json"
        if args.keep and train.exists():  # reuse the JSON of an earlier run with --keep
            sizes = {"dialogs": "reused", "json_mb": round(train.stat().st_size / 2**20, 1)}
        else:
            sizes = write_synthetic_train(train, args.dialogs)
        report = {"machine": f"{os.cpu_count()}-core CPU", "load_average_1min": os.getloadavg()[0],
                  "workers": args.workers, **sizes, "generate_seconds": round(time.perf_counter() - start, 1)}
        for stage in ("vocab", "tokenize"):
            child = subprocess.run([sys.executable, __file__, "--stage", stage, "--workers", str(args.workers),
                                    "--keep", str(workdir)], check=True, capture_output=True, text=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            report[stage] = result
        report["vocab"]["vocab_size"] = report["vocab"].pop("output")
        report["tokenize"]["h5_mb"] = report["tokenize"].pop("output")
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
