"""Reading and validating VisDial dialog JSON (v0.9 / v1.0; train, val, test) and dense annotations.

Layout: docs/formats.md "VisDial JSON", docs/upstream.md#visdial-json-and-dense-annotations. The file is read
with plain `json.load`; the per-round fields are gathered in one pass and checked
with numpy (indices in range, 100 options, gt_index, GT answer among the options).
Every error is one line naming the file, the dialog index, the image id and what is
wrong. The option arrays take a numpy fast path (data/options_json.py); whenever it
sees anything unusual the file is read again with plain `json.load`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..core.errors import InputFormatError
from ..core.files import read_json
from ..core.runs import VERSIONS
from .options_json import PLACEHOLDER, read_with_options

NUM_ROUNDS = 10
NUM_OPTIONS = 100
SPLITS = ("train", "val", "test")


class VisDialFormatError(InputFormatError):
    """A VisDial dialog or dense-annotation file does not have the VisDial layout."""


class _FastPathMismatch(Exception):
    """The numpy-parsed option arrays do not line up with the rounds: read with plain json."""


@dataclass
class Dialogs:
    """All dialogs of a split, column-wise; index arrays use -1 for "none"."""

    image_id: np.ndarray  # [D] int64
    caption: list[str]  # [D]
    num_rounds: np.ndarray  # [D] int32: 10, or 1..10 on test
    question: np.ndarray  # [D, 10] int32 into the question pool
    answer: np.ndarray  # [D, 10] int32 into the answer pool
    answer_options: np.ndarray  # [D, 10, 100] int32 into the answer pool
    gt_index: np.ndarray  # [D, 10] int16, 0-based

    def __len__(self) -> int:
        return len(self.image_id)


@dataclass
class VisDialSplit:
    questions: list[str]  # pool, no trailing "?"
    answers: list[str]  # pool
    dialogs: Dialogs
    split: str
    version: str
    path: str


def _int(x: Any) -> bool:
    return type(x) is int  # bool is not an index


class _Reporter:
    """Builds the one-line messages: `<file>: dialog i (image_id n): round r: what`."""

    def __init__(self, path: str | Path, dialogs: list):
        self.path, self.dialogs = path, dialogs

    def dialog(self, i: int, what: str, round_: int | None = None) -> VisDialFormatError:
        d = self.dialogs[i]
        image_id = d.get("image_id", "?") if isinstance(d, dict) else "?"
        where = f" round {round_}:" if round_ is not None else ""
        return VisDialFormatError(f"{self.path}: dialog {i} (image_id {image_id}):{where} {what}")

    def round(self, i: int, round_: int | None, what: str) -> VisDialFormatError:
        return self.dialog(i, what, round_)

    def file(self, what: str) -> VisDialFormatError:
        return VisDialFormatError(f"{self.path}: {what}")


def _check_header(data: Any, report: _Reporter, version: str, split: str) -> tuple[list, list, list]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise report.file('top level must be an object with a "data" object')
    if "split" in data and data["split"] != split:
        raise report.file(f'the file says "split": {data["split"]!r} but was given as split {split!r}')
    if "version" in data and str(data["version"]).removeprefix("v") != version.removeprefix("v"):
        raise report.file(f'the file says "version": {data["version"]!r} but was given as version {version!r}')
    body = data["data"]
    for key in ("questions", "answers", "dialogs"):
        if not isinstance(body.get(key), list):
            raise report.file(f'data.{key} is missing or not a list')
    for key in ("questions", "answers"):
        bad = next((j for j, s in enumerate(body[key]) if type(s) is not str), None)
        if bad is not None:
            raise report.file(f"data.{key}[{bad}] is not a string")
    return body["questions"], body["answers"], body["dialogs"]


def _dialog_fields(d: Any, i: int, report: _Reporter) -> tuple[int, str, list]:
    if not isinstance(d, dict):
        raise report.dialog(i, "is not an object")
    for key in ("image_id", "caption", "dialog"):
        if key not in d:
            raise report.dialog(i, f'missing key "{key}"')
    if not _int(d["image_id"]):
        raise report.dialog(i, f"image_id {d['image_id']!r} is not an integer")
    if type(d["caption"]) is not str:
        raise report.dialog(i, "caption is not a string")
    if not isinstance(d["dialog"], list):
        raise report.dialog(i, '"dialog" is not a list of rounds')
    return d["image_id"], d["caption"], d["dialog"]


def _round(rd: Any, i: int, r: int, keys: tuple[str, ...], report: _Reporter) -> list:
    if not isinstance(rd, dict):
        raise report.dialog(i, "is not an object", r)
    missing = [k for k in keys if k not in rd]
    if missing:
        raise report.dialog(i, f'missing key "{missing[0]}"', r)
    return [rd[k] for k in keys]


def _index_array(values: list, name: str, shape: tuple, locate, report: _Reporter) -> np.ndarray:
    """np.array of Python ints with the given shape; else name the first bad value.

    The types are checked in Python: numpy would silently take booleans, floats and
    digit strings as integers."""
    if name == "answer_options":
        for k, v in enumerate(values):
            if type(v) is list and len(v) == shape[1] and all(type(x) is int for x in v):
                continue
            if not isinstance(v, list) or len(v) != shape[1]:
                n = len(v) if isinstance(v, list) else "no list of"
                raise report.round(*locate(k), f"answer_options has {n} entries, expected {shape[1]}")
            bad = next(o for o, x in enumerate(v) if not _int(x))
            raise report.round(*locate(k), f"answer_options[{bad}] = {v[bad]!r} is not an integer")
    else:
        bad = next((k for k, v in enumerate(values) if not _int(v)), None)
        if bad is not None:
            raise report.round(*locate(bad), f"{name} {values[bad]!r} is not an integer")
    return np.array(values, dtype=np.int64).reshape(shape)


def _check_range(arr: np.ndarray, name: str, low: int, high: int, locate, report: _Reporter, valid=None) -> None:
    """Name the first value outside [low, high); `locate(pos)` -> (dialog, round, label suffix)."""
    bad = (arr < low) | (arr >= high)
    if valid is not None:
        bad &= valid
    if bad.any():
        pos = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape)
        dialog, round_, suffix = locate(tuple(int(p) for p in pos))
        raise report.round(dialog, round_, f"{name}{suffix} = {int(arr[pos])} out of range [{low}, {high})")


def _read_full_rounds(dialogs: list, report: _Reporter, n_q: int, n_a: int, split: str, options) -> Dialogs:
    """train / val: exactly 10 complete rounds per dialog."""
    D = len(dialogs)
    image_id, caption, q, a, g, opts = [], [], [], [], [], []
    keys = ("question", "answer", "answer_options", "gt_index")
    for i, d in enumerate(tqdm(dialogs, desc=f"check {split} dialogs", unit="dlg")):
        iid, cap, rounds = _dialog_fields(d, i, report)
        if len(rounds) != NUM_ROUNDS:
            raise report.dialog(i, f"a {split} dialog has {len(rounds)} rounds, expected {NUM_ROUNDS}")
        image_id.append(iid)
        caption.append(cap)
        for r, rd in enumerate(rounds, 1):
            try:
                q.append(rd["question"]), a.append(rd["answer"])
                opts.append(rd["answer_options"]), g.append(rd["gt_index"])
            except (KeyError, TypeError):
                _round(rd, i, r, keys, report)  # raises the precise error
                raise

    def locate(k):  # flat round index -> (dialog, 1-based round)
        return k // NUM_ROUNDS, k % NUM_ROUNDS + 1

    def locate_pos(pos):  # (flat round[, option]) -> (dialog, round, label suffix)
        return (*locate(pos[0]), f"[{pos[1]}]" if len(pos) > 1 else "")

    n = D * NUM_ROUNDS
    q_arr = _index_array(q, "question", (n,), locate, report)
    a_arr = _index_array(a, "answer", (n,), locate, report)
    g_arr = _index_array(g, "gt_index", (n,), locate, report)
    o_arr = _fast_options(opts, options) if options is not None else \
        _index_array(opts, "answer_options", (n, NUM_OPTIONS), locate, report)
    del opts
    _check_range(q_arr, "question", 0, n_q, locate_pos, report)
    _check_range(a_arr, "answer", 0, n_a, locate_pos, report)
    _check_range(g_arr, "gt_index", 0, NUM_OPTIONS, locate_pos, report)
    _check_range(o_arr, "answer_options", 0, n_a, locate_pos, report)
    gt_option = o_arr[np.arange(n), g_arr]
    if (gt_option != a_arr).any():
        k = int(np.flatnonzero(gt_option != a_arr)[0])
        raise report.round(
            *locate(k), f"answer_options[gt_index={g_arr[k]}] = {gt_option[k]} is not the answer {a_arr[k]}"
        )
    return Dialogs(
        image_id=_image_ids(image_id),
        caption=caption,
        num_rounds=np.full(D, NUM_ROUNDS, np.int32),
        question=q_arr.astype(np.int32).reshape(D, NUM_ROUNDS),
        answer=a_arr.astype(np.int32).reshape(D, NUM_ROUNDS),
        answer_options=o_arr.astype(np.int32).reshape(D, NUM_ROUNDS, NUM_OPTIONS),
        gt_index=g_arr.astype(np.int16).reshape(D, NUM_ROUNDS),
    )


def _read_test_rounds(dialogs: list, report: _Reporter, n_q: int, n_a: int, options) -> Dialogs:
    """test: 1..10 rounds; earlier rounds question + answer, the last question + options only."""
    D = len(dialogs)
    image_id, caption = [], []
    num_rounds = np.zeros(D, np.int32)
    question = np.full((D, NUM_ROUNDS), -1, np.int64)
    answer = np.full((D, NUM_ROUNDS), -1, np.int64)
    last_opts = []
    for i, d in enumerate(tqdm(dialogs, desc="check test dialogs", unit="dlg")):
        iid, cap, rounds = _dialog_fields(d, i, report)
        if not 1 <= len(rounds) <= NUM_ROUNDS:
            raise report.dialog(i, f"a test dialog has {len(rounds)} rounds, expected 1..{NUM_ROUNDS}")
        image_id.append(iid)
        caption.append(cap)
        num_rounds[i] = len(rounds)
        for r, rd in enumerate(rounds[:-1], 1):
            question[i, r - 1], answer[i, r - 1] = _check_ints(_round(rd, i, r, ("question", "answer"), report),
                                                              ("question", "answer"), i, r, report)
        r = len(rounds)
        (question[i, r - 1],) = _check_ints(_round(rounds[-1], i, r, ("question",), report), ("question",), i, r,
                                            report)
        for key in ("answer", "gt_index"):
            if key in rounds[-1]:
                raise report.dialog(i, f'the last round of a test dialog must not have "{key}"', r)
        last_opts.append(_round(rounds[-1], i, r, ("answer_options",), report)[0])

    def locate_last(k):  # dialog index -> (dialog, its last round)
        return k, int(num_rounds[k])

    for name, arr, high in (("question", question, n_q), ("answer", answer, n_a)):
        _check_range(arr, name, 0, high, lambda pos: (pos[0], pos[1] + 1, ""), report, valid=arr >= 0)
    opts = _fast_options(last_opts, options) if options is not None else \
        _index_array(last_opts, "answer_options", (D, NUM_OPTIONS), locate_last, report)
    _check_range(opts, "answer_options", 0, n_a, lambda pos: (*locate_last(pos[0]), f"[{pos[1]}]"), report)
    answer_options = np.full((D, NUM_ROUNDS, NUM_OPTIONS), -1, np.int32)
    answer_options[np.arange(D), num_rounds - 1] = opts
    return Dialogs(
        image_id=_image_ids(image_id),
        caption=caption,
        num_rounds=num_rounds,
        question=question.astype(np.int32),
        answer=answer.astype(np.int32),
        answer_options=answer_options,
        gt_index=np.full((D, NUM_ROUNDS), -1, np.int16),
    )


def _fast_options(placeholders: list, options: np.ndarray) -> np.ndarray:
    """The fast path's [N, 100] options, if each round's `answer_options` held one placeholder."""
    if len(placeholders) != len(options) or any(type(p) is not int or p != PLACEHOLDER for p in placeholders):
        raise _FastPathMismatch
    return options


def _check_ints(values: list, keys: tuple[str, ...], i: int, r: int, report: _Reporter) -> list:
    for key, v in zip(keys, values):
        if not _int(v) or v < 0:
            raise report.dialog(i, f"{key} {v!r} is not a non-negative integer", r)
    return values


def _image_ids(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64).reshape(len(values))


def _check_unique_images(image_id: np.ndarray, report: _Reporter) -> None:
    order = np.argsort(image_id, kind="stable")
    dup = np.flatnonzero(image_id[order][1:] == image_id[order][:-1])
    if len(dup):
        first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise report.dialog(second, f"duplicate image_id, already used by dialog {first}")


def load_visdial(path: str | Path, version: str, split: str) -> VisDialSplit:
    """Read and validate one VisDial dialogs JSON (`version` v0.9|v1.0, `split` train|val|test)."""
    if version not in VERSIONS:
        raise VisDialFormatError(f"{path}: unknown VisDial version {version!r} (expected one of {VERSIONS})")
    if split not in SPLITS or (version == "v0.9" and split == "test"):
        raise VisDialFormatError(f"{path}: VisDial {version} has no split {split!r}")
    fast = read_with_options(path)
    if fast is not None:
        try:
            return _parse(path, *fast, version, split)
        except _FastPathMismatch:
            pass
    return _parse(path, read_json(path, "VisDial JSON", error=VisDialFormatError), None, version, split)


def _parse(path, data: Any, options: np.ndarray | None, version: str, split: str) -> VisDialSplit:
    """Validate parsed JSON; `options` [N, 100] replaces the placeholders of the fast path."""
    report = _Reporter(path, [])
    questions, answers, dialogs = _check_header(data, report, version, split)
    report.dialogs = dialogs
    if not dialogs:
        raise report.file("data.dialogs is empty")
    if split == "test":
        parsed = _read_test_rounds(dialogs, report, len(questions), len(answers), options)
    else:
        parsed = _read_full_rounds(dialogs, report, len(questions), len(answers), split, options)
    _check_unique_images(parsed.image_id, report)
    return VisDialSplit(questions, answers, parsed, split, version, str(path))


def load_dense(path: str | Path, split_data: VisDialSplit) -> dict[int, tuple[int, np.ndarray]]:
    """Dense annotations: image_id -> (1-based round_id, relevance [100] float32).

    Accepts `gt_relevance` (v1.0 val) and `relevance` (v1.0 train sample)."""
    entries = read_json(path, "dense annotations", error=VisDialFormatError)
    if not isinstance(entries, list):
        raise VisDialFormatError(f"{path}: dense annotations must be a list of objects")
    dialogs = split_data.dialogs
    row_of = {int(iid): k for k, iid in enumerate(dialogs.image_id)}
    out: dict[int, tuple[int, np.ndarray]] = {}
    for i, e in enumerate(entries):
        iid = e.get("image_id", "?") if isinstance(e, dict) else "?"

        def fail(what: str) -> VisDialFormatError:
            return VisDialFormatError(f"{path}: entry {i} (image_id {iid}): {what}")

        if not isinstance(e, dict):
            raise fail("is not an object")
        for key in ("image_id", "round_id"):
            if not _int(e.get(key)):
                raise fail(f'"{key}" is missing or not an integer')
        key = "gt_relevance" if "gt_relevance" in e else "relevance"
        if key not in e:
            raise fail('missing key "gt_relevance" (or "relevance")')
        if iid not in row_of:
            raise fail(f"image_id is not in the {split_data.version} {split_data.split} dialogs ({split_data.path})")
        if iid in out:
            raise fail("image_id is annotated twice")
        num_rounds = int(dialogs.num_rounds[row_of[iid]])
        if not 1 <= e["round_id"] <= num_rounds:
            raise fail(f"round_id {e['round_id']} out of range 1..{num_rounds}")
        rel = e[key]
        if not isinstance(rel, list) or len(rel) != NUM_OPTIONS:
            raise fail(f"{key} has {len(rel) if isinstance(rel, list) else 'no list of'} values, expected {NUM_OPTIONS}")
        if not all(type(x) in (int, float) for x in rel):
            raise fail(f"{key} holds a non-number")
        rel_arr = np.asarray(rel, dtype=np.float32)  # [100]
        if not np.isfinite(rel_arr).all() or (rel_arr < 0).any():
            raise fail(f"{key} holds a negative or non-finite value")
        out[iid] = (int(e["round_id"]), rel_arr)
    return out
