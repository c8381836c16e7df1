"""Human evaluation (paper Table 7): a blinded sheet, then M1/M2 from judgments.

For sampled val dialogs, the last round's human answer and the top-ranked
answers of LTMI and LTMI-LG (generative decoder) are shown in random order with
the dialog so far. Three people judge each response:
  * `human_generated` (0/1): do they think a human wrote it;
  * `better_or_equal` (0/1): is it at least as good as the human answer.
M1 = % of a model's responses that at least 2 of 3 judges call human-generated;
M2 = % that at least 2 of 3 judge better than or equal to the human answer.

Judgments file (CSV): `item,response,annotator,human_generated,better_or_equal`,
one line per judge and response (A/B/C), as filled in from the sheet.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from .data.vocab import Vocabulary
from .errors import InputFormatError

SYSTEMS = {"ltmi": "LTMI", "lg": "LTMI-LG"}


def _text(vocab: Vocabulary, pool, lengths, index) -> str:
    return " ".join(vocab.to_words(pool[index, : lengths[index]])) if index >= 0 else ""


def _top_answer(ranks_path: Path, key: str = "gen") -> tuple[np.ndarray, np.ndarray]:
    with np.load(ranks_path) as data:
        if key not in data:
            raise InputFormatError(f"{ranks_path}: no '{key}' ranks")
        return data["image_id"], data[key].argmin(-1)  # [D], [D, R] option ranked first


def write_sheet(evaluations: dict[str, Path], tokens: Path, vocab_path: Path, sheet: Path, key: Path,
                samples: int, seed: int = 0) -> None:
    """evaluations: {"ltmi": metrics JSON, "lg": metrics JSON} of val with saved ranks."""
    vocab = Vocabulary.load(vocab_path)
    top = {}
    for system, path in evaluations.items():
        ranks_path = Path(json.loads(Path(path).read_text())["ranks"])
        top[system] = _top_answer(ranks_path)
    with h5py.File(tokens, "r") as f:
        q_pool, q_len = f["question_tokens"][:], f["question_len"][:]
        a_pool, a_len = f["answer_tokens"][:], f["answer_len"][:]
        c_tok, c_len = f["caption_tokens"][:], f["caption_len"][:]
        image_ids, questions, answers = f["image_id"][:], f["question"][:], f["answer"][:]
        options, num_rounds = f["answer_options"][:], f["num_rounds"][:]
    for system, (ids, _) in top.items():
        if not np.array_equal(ids, image_ids):
            raise InputFormatError(f"the {SYSTEMS[system]} ranks do not follow the dialogs of {tokens}")
    rng = random.Random(seed)
    dialogs = sorted(rng.sample(range(len(image_ids)), min(samples, len(image_ids))))
    rows, keys = [], {}
    for item, d in enumerate(dialogs, start=1):
        r = int(num_rounds[d]) - 1
        history = [" ".join(vocab.to_words(c_tok[d, : c_len[d]]))] + [
            f"Q: {_text(vocab, q_pool, q_len, questions[d, j])} A: {_text(vocab, a_pool, a_len, answers[d, j])}"
            for j in range(r)
        ]
        responses = {"human": _text(vocab, a_pool, a_len, answers[d, r])}
        for system, (_, best) in top.items():
            responses[system] = _text(vocab, a_pool, a_len, options[d, r, best[d, r]])
        order = list(responses)
        rng.shuffle(order)
        keys[str(item)] = dict(zip("ABC", order))
        rows.append([item, int(image_ids[d]), " | ".join(history), _text(vocab, q_pool, q_len, questions[d, r]),
                     *(responses[name] for name in order)])
    sheet.parent.mkdir(parents=True, exist_ok=True)
    with open(sheet, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item", "image_id", "dialog so far", "question", "response A", "response B", "response C"])
        writer.writerows(rows)
    key.write_text(json.dumps(keys, indent=1))


def score_judgments(key_path: Path, judgments_path: Path) -> dict[str, dict[str, float]]:
    """{system: {"M1": %, "M2": %}} from the filled-in judgments."""
    keys = json.loads(Path(key_path).read_text())
    votes = defaultdict(lambda: [0, 0, 0])  # (item, response) -> [judges, human, better]
    try:
        with open(judgments_path, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    vote = votes[(str(int(row["item"])), row["response"].strip().upper())]
                    vote[0] += 1
                    vote[1] += int(row["human_generated"])
                    vote[2] += int(row["better_or_equal"])
                except (KeyError, ValueError, TypeError) as e:
                    raise InputFormatError(f"{judgments_path}, line {line}: {e!r}") from e
    except FileNotFoundError as e:
        raise InputFormatError(f"human judgments not found: {judgments_path}") from e
    result = {}
    for system in SYSTEMS:
        m1 = m2 = n = 0
        for item, letters in keys.items():
            letter = next(k for k, v in letters.items() if v == system)
            judges, human, better = votes.get((item, letter), (0, 0, 0))
            if judges == 0:
                continue
            n += 1
            majority = judges // 2 + 1
            m1 += human >= majority
            m2 += better >= majority
        if n == 0:
            raise InputFormatError(f"{judgments_path}: no judgment of a {SYSTEMS[system]} response")
        result[system] = {"M1": 100.0 * m1 / n, "M2": 100.0 * m2 / n, "items": n}
    return result


def table7_rows(key_path: Path, judgments_path: Path | None, sheet: Path) -> list[tuple]:
    if not judgments_path:
        note = f"awaiting judgments: fill in {sheet} and set evaluate.human_judgments"
        return [("Method 1 (M1)", [None, None], note), ("Method 2 (M2)", [None, None], note)]
    scores = score_judgments(key_path, judgments_path)
    note = f"{scores['ltmi']['items']} judged items"
    return [(f"Method {i} (M{i})", [scores["ltmi"][f"M{i}"], scores["lg"][f"M{i}"]], note) for i in (1, 2)]
