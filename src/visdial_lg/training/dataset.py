"""The torch Dataset of VisDial dialogs and its collate function (LTMI's per-dialog items).

One item is one dialog with all its rounds (docs/upstream.md#ltmi-release-data); its keys are
the batch keys of docs/formats.md ("A batch") without the B dimension. Items are
built from the tokens HDF5 (pools of unique questions/answers + per-dialog index
arrays) and one row of the features HDF5, with vectorised numpy gathers: nothing
loops over rounds or options in Python. Choices that differ from LTMI's release
are documented in docs/dataset.md.

Both HDF5 files are opened lazily, once per process (h5py handles must not cross
a fork), so the dataset is picklable and safe with DataLoader workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import InputFormatError
from ..features.reader import FeatureReader
from ..features.store import skipped_manifest_path
from ..text.vocab import Vocabulary

PAD, SOS, EOS = Vocabulary.PAD, Vocabulary.SOS, Vocabulary.EOS

SEQ_LEN = 20  # LTMI max_seq_len: question, answer and option rows
HIST_LEN = 2 * SEQ_LEN  # one history entry = question + answer + </S>
CAPTION_WORDS = 20  # LTMI quirk 4: the caption is cut to 20, not 40 (docs/dataset.md)
OPTION_WORDS = SEQ_LEN - 2  # room for <S> / </S>; also applied to ans_in/ans_out (quirk 5)

_TOKEN_KEYS = ("question_tokens", "question_len", "answer_tokens", "answer_len",
               "caption_tokens", "caption_len", "image_id", "num_rounds",
               "question", "answer", "answer_options", "gt_index")
_DENSE_KEYS = ("dense_round", "gt_relevance")


# ---------------------------------------------------------------- token rows

def truncate(tokens: np.ndarray, lens: np.ndarray, keep: int, width: int):
    """Keep the first min(len, keep) tokens of each row, zero-padded to `width`."""
    lens = np.minimum(lens, min(keep, tokens.shape[-1])).astype(np.int64)
    out = np.zeros(tokens.shape[:-1] + (width,), np.int64)  # [..., width]
    n = min(tokens.shape[-1], width)
    out[..., :n] = tokens[..., :n]
    out[np.arange(width) >= lens[..., None]] = PAD
    return out, lens


def gather(pool: np.ndarray, pool_len: np.ndarray, index: np.ndarray, keep: int, width: int):
    """Rows of a token pool by index (−1 = none → empty row), truncated to `keep` tokens."""
    exists = index >= 0
    safe = np.where(exists, index, 0)
    return truncate(pool[safe], np.where(exists, pool_len[safe], 0), keep, width)


def with_boundaries(words: np.ndarray, lens: np.ndarray, exists: np.ndarray):
    """(`<S>`+words, words+`</S>`) of rows holding < width words; rows not `exists` stay empty."""
    seq_in = np.zeros_like(words)
    seq_in[..., 0] = SOS
    seq_in[..., 1:] = words[..., :-1]
    seq_out = words.copy()
    np.put_along_axis(seq_out, lens[..., None], EOS, axis=-1)
    keep = exists[..., None]
    return np.where(keep, seq_in, PAD), np.where(keep, seq_out, PAD)


def concat_with_eos(first, first_len, second, second_len, width: int, exists: np.ndarray):
    """Rows first[:first_len] + second[:second_len] + `</S>`, cut to `width` (LTMI's history entry)."""
    pos = np.arange(width)  # [W]
    fl, sl = first_len[..., None], second_len[..., None]
    lead = first.shape[:-1] + (width,)
    from_first = np.take_along_axis(first, np.broadcast_to(np.minimum(pos, first.shape[-1] - 1), lead), -1)
    from_second = np.take_along_axis(second, np.clip(pos - fl, 0, second.shape[-1] - 1), -1)
    out = np.where(pos < fl, from_first,
                   np.where(pos < fl + sl, from_second, np.where(pos == fl + sl, EOS, PAD)))
    keep = exists[..., None]
    return np.where(keep, out, PAD).astype(np.int64), np.where(exists, np.minimum(first_len + second_len + 1, width), 0)


def history_entries(caption: np.ndarray, caption_len: np.ndarray, ques: np.ndarray, ques_len: np.ndarray,
                    ans: np.ndarray, ans_len: np.ndarray, exists: np.ndarray):
    """A dialog's history entries [R, 40], [R] (LTMI's): entry 0 is the caption (its first
    CAPTION_WORDS tokens) + </S>, entry j question j-1 + answer j-1 + </S>. caption: its token
    row [1, W] and length [1]; ques, ans [R, 20] the dialog's rounds (the last round's own
    question and answer are in no entry); exists [R]: entries past the dialog stay empty."""
    caption, caption_len = truncate(caption, caption_len, CAPTION_WORDS, SEQ_LEN)  # [1, 20], [1]
    first = np.concatenate([caption, ques[:-1]])  # [R, 20]
    first_len = np.concatenate([caption_len, ques_len[:-1]])  # [R]
    second = np.concatenate([np.zeros_like(caption), ans[:-1]])  # [R, 20]
    second_len = np.concatenate([[0], ans_len[:-1]])  # [R]
    return concat_with_eos(first, first_len, second, second_len, HIST_LEN, exists)


# ---------------------------------------------------------------- files

def open_h5(path: Path, what: str) -> h5py.File:
    if not path.is_file():
        raise InputFormatError(f"{what} file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputFormatError(f"{what} file {path} is not a readable HDF5 file ({e})") from None


def require_datasets(f: h5py.File, path: Path, keys, what: str) -> None:
    missing = [k for k in keys if k not in f]
    if missing:
        raise InputFormatError(f"{what} file {path} lacks dataset '{missing[0]}' (docs/formats.md)")


def skipped_reason(features_path: Path, image_id: int) -> str | None:
    """Why the extraction's `<features>.skipped.json` (features/merge.py) skipped `image_id`, or None."""
    manifest = skipped_manifest_path(features_path)
    try:
        entries = json.loads(manifest.read_text())["skipped"]
    except (OSError, ValueError, KeyError, TypeError):  # no (readable) manifest: nothing to add
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("image_id")) == str(image_id):
            return f"{manifest.name}: {entry.get('reason', 'no reason recorded')}"
    return None


def missing_features_error(image_id: int, dialog: int, tokens_path: Path, features_path: Path):
    message = (f"image id {image_id} (dialog {dialog} of {tokens_path}) is not in the feature file "
               f"{features_path}")
    skipped = skipped_reason(features_path, image_id)
    if skipped is not None:
        message += (f"; it was skipped there as a bad image ({skipped}) and training refuses "
                    f"dialogs without features: remove the dialog or fix the image and re-extract")
    return InputFormatError(message)


def check_features_exist(image_ids: np.ndarray, features: FeatureReader, tokens_path: Path) -> None:
    """Every dialog's image has a row in the features file (whose order differs from the dialogs')."""
    found = np.isin(image_ids, np.asarray(features.image_ids, dtype=np.int64))  # [D]
    if not found.all():
        dialog = int(np.flatnonzero(~found)[0])
        raise missing_features_error(int(image_ids[dialog]), dialog, tokens_path, features.path)


def load_token_arrays(f: h5py.File, path: Path, R: int, O: int) -> dict:
    """All token arrays except `answer_options` (pools ~20 MB for real VisDial), checked once."""
    require_datasets(f, path, _TOKEN_KEYS, "tokens")
    keys = [k for k in _TOKEN_KEYS if k != "answer_options"]
    if "dense_round" in f:
        require_datasets(f, path, _DENSE_KEYS, "tokens")
        keys += list(_DENSE_KEYS)
    a = {k: f[k][()] for k in keys}
    D, Nq, Na = len(a["image_id"]), len(a["question_tokens"]), len(a["answer_tokens"])
    shapes = {k: v.shape for k, v in a.items()} | {"answer_options": f["answer_options"].shape}
    expected = {"answer_options": (D, R, O), "question": (D, R), "answer": (D, R), "gt_index": (D, R),
                "num_rounds": (D,), "question_len": (Nq,), "answer_len": (Na,), "caption_len": (D,),
                "caption_tokens": (D, shapes["caption_tokens"][-1]), "dense_round": (D,),
                "gt_relevance": (D, O)}
    for key, shape in expected.items():
        if key in shapes and shapes[key] != shape:
            raise InputFormatError(f"tokens file {path}: dataset '{key}' has shape {shapes[key]}, "
                                   f"expected {shape} (max_rounds={R}, num_options={O})")
    bad = np.flatnonzero((a["num_rounds"] < 1) | (a["num_rounds"] > R))
    if len(bad):
        raise InputFormatError(f"tokens file {path}: dialog {bad[0]} has num_rounds "
                               f"{a['num_rounds'][bad[0]]}, expected 1..{R}")
    bad = np.argwhere(a["gt_index"] >= O)
    if len(bad):
        raise InputFormatError(f"tokens file {path}: dialog {bad[0][0]} round {bad[0][1] + 1} has gt_index "
                               f"{a['gt_index'][tuple(bad[0])]}, expected < {O}")
    for key, pool in (("question", "question_tokens"), ("answer", "answer_tokens")):
        bad = np.argwhere(a[key] >= len(a[pool]))
        if len(bad):
            raise InputFormatError(f"tokens file {path}: dialog {bad[0][0]} round {bad[0][1] + 1} "
                                   f"'{key}' index {a[key][tuple(bad[0])]} is outside the "
                                   f"{len(a[pool])}-entry pool '{pool}'")
    return a


# ---------------------------------------------------------------- dataset

class VisDialDataset(Dataset):
    """Dialogs of one tokens HDF5 joined with their image's region features."""

    def __init__(self, tokens_path, features_path, *, max_rounds: int = 10, num_options: int = 100,
                 feature_dim: int | None = None):
        self.tokens_path = Path(tokens_path)
        self.features_path = Path(features_path)
        self.max_rounds = max_rounds
        self.num_options = num_options
        # Everything small is read and checked now (files closed again before any
        # fork), so that bad input or a dialog without features fails at once, not
        # hours into training. Forked workers share these arrays copy-on-write.
        with open_h5(self.tokens_path, "tokens") as f:
            self._arrays = load_token_arrays(f, self.tokens_path, max_rounds, num_options)
        self.image_ids = self._arrays["image_id"].astype(np.int64)  # [D]
        # Opens lazily, once per process; checked once: the model's feature size, boxes, sizes.
        self.features = FeatureReader(self.features_path, feature_dim)
        check_features_exist(self.image_ids, self.features, self.tokens_path)
        self.features.close()
        self.has_dense = "dense_round" in self._arrays
        self._pid = self._tokens = self._options_ds = None

    def __getstate__(self):
        # h5py handles never travel; a spawned worker re-reads the small arrays.
        state = self.__dict__.copy()
        state.update(_pid=None, _tokens=None, _options_ds=None, _arrays=None)
        return state

    def __len__(self) -> int:
        return len(self.image_ids)

    def _ensure_open(self) -> None:
        """Open the tokens file once in this process (again after a fork: handles must not be
        shared); the FeatureReader does the same for the features file."""
        if self._pid == os.getpid():
            return
        self._tokens = open_h5(self.tokens_path, "tokens")
        if self._arrays is None:  # unpickled in a spawned worker
            self._arrays = load_token_arrays(self._tokens, self.tokens_path, self.max_rounds, self.num_options)
        self._options_ds = self._tokens["answer_options"]  # cached: a by-name lookup costs a read
        self._pid = os.getpid()

    def _read_options(self, index: int) -> np.ndarray:
        options = self._options_ds[index].astype(np.int64)  # [R, O]
        if options.max(initial=-1) >= len(self._arrays["answer_tokens"]):
            raise InputFormatError(f"tokens file {self.tokens_path}: dialog {index} has an answer option "
                                   f"index outside the answer pool")
        return options

    def _read_image(self, index: int) -> dict:
        image = self.features.read(int(self.image_ids[index]))
        return {
            "img_feat": torch.from_numpy(image["features"]),  # [K, 2048] float32
            "boxes": torch.from_numpy(image["boxes"]),  # [K, 4]
            "num_boxes": torch.tensor(image["num_boxes"]),
            "img_w": torch.tensor(float(image["image_w"])),
            "img_h": torch.tensor(float(image["image_h"])),
        }

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"dialog index {index} out of range for {len(self)} dialogs")
        self._ensure_open()
        a, R = self._arrays, self.max_rounds
        num_rounds = int(a["num_rounds"][index])
        rounds = np.arange(R)  # [R]
        q_idx = a["question"][index].astype(np.int64)  # [R]
        a_idx = a["answer"][index].astype(np.int64)  # [R]
        opt_idx = self._read_options(index)  # [R, O]
        qpool, qlen = a["question_tokens"], a["question_len"]
        apool, alen = a["answer_tokens"], a["answer_len"]

        ques, ques_len = gather(qpool, qlen, q_idx, SEQ_LEN, SEQ_LEN)  # [R, 20], [R]
        ans, ans_len = gather(apool, alen, a_idx, SEQ_LEN, SEQ_LEN)  # [R, 20], [R]
        ans_words, ans_words_len = truncate(ans, ans_len, OPTION_WORDS, SEQ_LEN)
        ans_in, ans_out = with_boundaries(ans_words, ans_words_len, a_idx >= 0)  # [R, 20] each
        opts, opts_len = gather(apool, alen, opt_idx, OPTION_WORDS, SEQ_LEN)  # [R, O, 20], [R, O]
        opts_in, opts_out = with_boundaries(opts, opts_len, opt_idx >= 0)  # [R, O, 20] each

        hist, hist_len = history_entries(a["caption_tokens"][index][None], a["caption_len"][index][None],
                                         ques, ques_len, ans, ans_len, rounds < num_rounds)  # [R, 40], [R]

        # Round i sees history entries 0..i (caption + QA pairs before it) that exist.
        hist_mask = (rounds[None, :] <= rounds[:, None]) & (rounds[None, :] < num_rounds)  # [R, R]
        # Scored rounds: those with options (all rounds on train/val, the last on test).
        round_mask = (rounds < num_rounds) & (opt_idx >= 0).any(-1)  # [R]

        item = {
            "image_id": torch.tensor(int(self.image_ids[index])),
            "num_rounds": torch.tensor(num_rounds),
            "ques_tokens": ques, "ques_len": ques_len,
            "hist_tokens": hist, "hist_len": hist_len,
            "hist_mask": hist_mask, "round_mask": round_mask,
            "opts": opts, "opts_len": opts_len, "opts_in": opts_in, "opts_out": opts_out,
            "ans": ans, "ans_len": ans_len, "ans_in": ans_in, "ans_out": ans_out,
            "gt_index": a["gt_index"][index].astype(np.int64),  # a copy: never a view of shared arrays
        }
        item = {k: torch.as_tensor(v, dtype=torch.bool if v.dtype == bool else torch.int64)
                if isinstance(v, np.ndarray) else v for k, v in item.items()}
        if "dense_round" in a:
            item["dense_round"] = torch.tensor(int(a["dense_round"][index]))
            item["gt_relevance"] = torch.from_numpy(a["gt_relevance"][index].astype(np.float32))  # [O]
        item.update(self._read_image(index))
        return item


def collate(items: list[dict]) -> dict:
    """Stack items into a batch (docs/formats.md "A batch"); all items must have the same keys."""
    if not items:
        raise ValueError("collate needs at least one item")
    keys = items[0].keys()
    for item in items[1:]:
        if item.keys() != keys:
            odd = sorted(set(keys) ^ set(item.keys()))
            raise InputFormatError(f"cannot batch dialogs with different keys (differing: {', '.join(odd)}); "
                                   f"mix of dense and non-dense tokens files?")
    return {k: torch.stack([item[k] for item in items]) for k in keys}


def batch_to(batch: dict, device, non_blocking: bool = False) -> dict:
    """A collated batch with every tensor moved to `device` (other values kept)."""
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}
