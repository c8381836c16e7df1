"""Human evaluation (paper Table 7): a blinded sheet, then M1/M2 from judgments.

As the paper (after Wu et al. 2018): for sampled val dialogs, the last round's
human answer and the top-ranked answers of LTMI and LTMI-LG (generative decoder)
are shown, in random order per item, with the dialog so far. Three people judge
each response:
  * `human_generated` (0/1): do they think a human wrote it (judged blind, with
    the sheet's last column, the human answer, hidden);
  * `better_or_equal` (0/1): is it at least as good as the human answer (judged
    afterwards, with that column shown).
M1 = % of a model's responses that at least 2 of 3 judges call human-generated;
M2 = % that at least 2 of 3 judge better than or equal to the human answer.

Judgments file (CSV): `item,response,annotator,human_generated,better_or_equal`,
one line per judge and response (A/B/C) of the sheet.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from ..text.vocab import Vocabulary
from ..core.errors import InputFormatError
from ..core.files import read_json

SYSTEMS = {"ltmi": "LTMI", "lg": "LTMI-LG"}
LETTERS = "ABC"
SHEET_HEADER = ["item", "image_id", "dialog so far", "question", "response A", "response B", "response C",
                "human answer (hide while judging human_generated)"]
JUDGMENT_FIELDS = ["item", "response", "annotator", "human_generated", "better_or_equal"]


def answer_text(vocab: Vocabulary, pool, lengths, index) -> str:
    """The words of row `index` of a token pool ("" for -1 = none)."""
    return " ".join(vocab.to_words(pool[index, : lengths[index]])) if index >= 0 else ""


def top_answers(metrics_json: Path, decoder: str = "gen") -> tuple[np.ndarray, np.ndarray]:
    """From an evaluation's saved ranks: (image ids [D], the option ranked first [D, R])."""
    image_ids, ranks = saved_ranks(metrics_json, decoder)
    return image_ids, ranks.argmin(-1)


def saved_ranks(metrics_json: Path, decoder: str = "gen") -> tuple[np.ndarray, np.ndarray]:
    """An evaluation's saved ranks: (image ids [D], each option's rank [D, R, O], 1 = first)."""
    data = read_json(metrics_json, "evaluation metrics")
    ranks_name = data.get("ranks") if isinstance(data, dict) else None
    if not isinstance(ranks_name, str):
        raise InputFormatError(f"{metrics_json}: not an evaluation with saved ranks (no 'ranks' entry)")
    path = Path(metrics_json).parent / Path(ranks_name).name  # the ranks lie next to the JSON
    try:
        with np.load(path) as data:
            if decoder not in data or data[decoder].ndim != 3:
                raise InputFormatError(f"{path}: no per-round '{decoder}' ranks (a val evaluation is needed)")
            return data["image_id"], data[decoder]
    except OSError as e:
        raise InputFormatError(f"cannot read the ranks {path}: {e}") from e


def write_sheet(evaluations: dict[str, Path], tokens: Path, vocab_path: Path, sheet: Path, key: Path,
                samples: int, seed: int = 0) -> None:
    """evaluations: {"ltmi": metrics JSON, "lg": metrics JSON} of val with saved ranks."""
    vocab = Vocabulary.load(vocab_path)
    top = {system: top_answers(path) for system, path in evaluations.items()}
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
            f"Q: {answer_text(vocab, q_pool, q_len, questions[d, j])} A: {answer_text(vocab, a_pool, a_len, answers[d, j])}"
            for j in range(r)
        ]
        responses = {"human": answer_text(vocab, a_pool, a_len, answers[d, r])}
        for system, (_, best) in top.items():
            responses[system] = answer_text(vocab, a_pool, a_len, options[d, r, best[d, r]])
        order = list(responses)
        rng.shuffle(order)
        keys[str(item)] = dict(zip(LETTERS, order))
        rows.append([item, int(image_ids[d]), " | ".join(history), answer_text(vocab, q_pool, q_len, questions[d, r]),
                     *(responses[name] for name in order), responses["human"]])
    sheet.parent.mkdir(parents=True, exist_ok=True)
    with open(sheet, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SHEET_HEADER)
        writer.writerows(rows)
    key.write_text(json.dumps(keys, indent=1))


def _binary(row: dict, field: str, where: str) -> int:
    value = (row.get(field) or "").strip()
    if value not in ("0", "1"):
        raise InputFormatError(f"{where}: {field} must be 0 or 1, got {value!r}")
    return int(value)


def read_judgments(path: Path, keys: dict) -> dict[tuple[str, str], list[int]]:
    """(item, letter) -> [judges, human-generated votes, better-or-equal votes]."""
    votes: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    seen = set()
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in JUDGMENT_FIELDS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputFormatError(f"{path}: header lacks {', '.join(missing)} (expected {','.join(JUDGMENT_FIELDS)})")
            for line, row in enumerate(reader, start=2):
                where = f"{path}, line {line}"
                item, letter = (row["item"] or "").strip(), (row["response"] or "").strip().upper()
                if item not in keys:
                    raise InputFormatError(f"{where}: item {item!r} is not on the sheet")
                if letter not in LETTERS:
                    raise InputFormatError(f"{where}: response must be A, B or C, got {row['response']!r}")
                judge = (item, letter, (row["annotator"] or "").strip())
                if judge in seen:
                    raise InputFormatError(f"{where}: annotator {judge[2]!r} judged item {item} response {letter} twice")
                seen.add(judge)
                vote = votes[(item, letter)]
                vote[0] += 1
                vote[1] += _binary(row, "human_generated", where)
                vote[2] += _binary(row, "better_or_equal", where)
    except FileNotFoundError as e:
        raise InputFormatError(f"human judgments not found: {path}") from e
    return votes


def score_judgments(key_path: Path, judgments_path: Path) -> dict[str, dict[str, float]]:
    """{system: {"M1": %, "M2": %, "items": n}} over the items whose response was judged;
    a response counts when a majority of its judges (2 of 3) say so."""
    keys = read_json(key_path, "the human-evaluation key")
    votes = read_judgments(judgments_path, keys)
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
    """Table 7's reproduced rows: M1/M2 of LTMI and LTMI-LG, or empty cells and where
    the sheet waits for judges."""
    if not judgments_path:
        note = f"awaiting judgments: fill in {sheet} and set evaluate.human_judgments"
        return [("Method 1 (M1)", [None, None], note), ("Method 2 (M2)", [None, None], note)]
    scores = score_judgments(key_path, judgments_path)
    note = f"{scores['ltmi']['items']} judged items"
    return [(f"Method {i} (M{i})", [scores["ltmi"][f"M{i}"], scores["lg"][f"M{i}"]], note) for i in (1, 2)]
