"""VisDialDataset + collate on tiny tokens/features HDF5 files written here per docs/formats.md."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from visdial_lg.training.dataset import EOS, PAD, SOS, VisDialDataset, collate
from visdial_lg.core.errors import InputFormatError
from visdial_lg.features.store import write_skipped_manifest

R, O, K = 10, 100, 5


def words(n, start=4):
    """n distinct word ids starting at `start` (ids < 4 are specials)."""
    return list(range(start, start + n))


# Pools: question i has i+1 tokens (the last one of length 20); answers of chosen lengths.
QUESTIONS = [words(i + 1, 100 + 30 * i) for i in range(20)]
ANSWER_LENGTHS = [1, 3, 18, 19, 20, 2, 5, 7]
ANSWERS = [words(n, 1000 + 50 * i) for i, n in enumerate(ANSWER_LENGTHS)]
CAPTIONS = [words(25, 2000), words(6, 3000), words(3, 4000)]  # the first exceeds LTMI's 20


def write_tokens(path, dialogs, dense=None):
    """dialogs: dicts image_id, caption (index into CAPTIONS), rounds [(q, a, options|None, gt)]."""
    D = len(dialogs)

    def pool(rows, width):
        tokens = np.zeros((len(rows), width), np.int32)
        for i, row in enumerate(rows):
            tokens[i, : len(row[:width])] = row[:width]
        return tokens, np.array([min(len(r), width) for r in rows], np.int32)

    with h5py.File(path, "w") as f:
        f.attrs.update(version="1.0", split="x", vocab_size=5000, max_question_len=20,
                       max_answer_len=20, max_caption_len=40, num_options=O)
        f["question_tokens"], f["question_len"] = pool(QUESTIONS, 20)
        f["answer_tokens"], f["answer_len"] = pool(ANSWERS, 20)
        f["caption_tokens"], f["caption_len"] = pool([CAPTIONS[d["caption"]] for d in dialogs], 40)
        f["image_id"] = np.array([d["image_id"] for d in dialogs], np.int64)
        f["num_rounds"] = np.array([len(d["rounds"]) for d in dialogs], np.int32)
        question = np.full((D, R), -1, np.int32)
        answer = np.full((D, R), -1, np.int32)
        options = np.full((D, R, O), -1, np.int32)
        gt = np.full((D, R), -1, np.int16)
        for i, d in enumerate(dialogs):
            for r, (q, a, opts, g) in enumerate(d["rounds"]):
                question[i, r], answer[i, r], gt[i, r] = q, a, g
                if opts is not None:
                    options[i, r] = opts
        f["question"], f["answer"], f["answer_options"], f["gt_index"] = question, answer, options, gt
        if dense is not None:
            f["dense_round"] = np.array([r for r, _ in dense], np.int16)
            f["gt_relevance"] = np.array([rel for _, rel in dense], np.float32)


def write_features(path, image_ids, dtype=np.float32):
    """Image `id` gets features filled with `id` and box i = (i, i, i + id, i + id), file order as given."""
    N = len(image_ids)
    with h5py.File(path, "w") as f:
        f["image_id"] = np.array(image_ids, np.int64)
        f["image_w"] = np.array([640 + i for i in image_ids], np.int32)
        f["image_h"] = np.array([480 + i for i in image_ids], np.int32)
        f["num_boxes"] = np.array([K - 1] * N, np.int32)
        boxes = np.zeros((N, K, 4), np.float32)
        for n, i in enumerate(image_ids):
            boxes[n] = [[k, k, k + i, k + i] for k in range(K)]
        f.create_dataset("boxes", data=boxes, chunks=(1, K, 4))
        feats = np.stack([np.full((K, 2048), i, dtype) for i in image_ids])
        f.create_dataset("features", data=feats, chunks=(1, K, 2048))
        for key, shape, dtype_ in (("cls_indices", (N, K), np.int32), ("cls_scores", (N, K), np.float32),
                                   ("top_attrs", (N, K, 3), np.int32), ("top_attrs_scores", (N, K, 3), np.float32)):
            f[key] = np.zeros(shape, dtype_)


def option_list(seed, gt):
    """100 option indices into ANSWERS with ANSWERS index `gt` at position 7."""
    opts = list(np.random.RandomState(seed).randint(0, len(ANSWERS), O))
    opts[7] = gt
    return opts


def full_dialog(image_id, caption, seed):
    rounds = [(r, r % len(ANSWERS), option_list(seed + r, r % len(ANSWERS)), 7) for r in range(R)]
    return {"image_id": image_id, "caption": caption, "rounds": rounds}


@pytest.fixture
def train_files(tmp_path):
    dialogs = [full_dialog(11, 0, 0), full_dialog(22, 1, 100), full_dialog(33, 2, 200)]
    # Round 0: a 20-token question and a 20-word answer, so history entry 1 has no room for </S>.
    dialogs[2]["rounds"][0] = (19, 4, option_list(5, 4), 7)
    dense = [(3, np.linspace(0, 1, O)), (0, np.zeros(O)), (10, np.ones(O))]
    tokens, feats = tmp_path / "v1.0_train.h5", tmp_path / "trainval.h5"
    write_tokens(tokens, dialogs, dense)
    write_features(feats, [33, 5, 11, 22])  # file order differs from dialog order
    return tokens, feats, dialogs


@pytest.fixture
def test_split_files(tmp_path):
    # 3 rounds: two answered ones without options, the last with options and no answer.
    rounds = [(2, 1, None, -1), (5, 0, None, -1), (3, -1, option_list(9, 2), -1)]
    tokens, feats = tmp_path / "v1.0_test.h5", tmp_path / "test2018.h5"
    write_tokens(tokens, [{"image_id": 7, "caption": 1, "rounds": rounds}])
    write_features(feats, [7], dtype=np.float16)
    return tokens, feats


def seq(*parts, width):
    out = [t for p in parts for t in p][:width]
    return out + [PAD] * (width - len(out))


BATCH_SPEC = {  # key: (shape without B, dtype)
    "image_id": ((), torch.int64), "num_rounds": ((), torch.int64),
    "ques_tokens": ((R, 20), torch.int64), "ques_len": ((R,), torch.int64),
    "hist_tokens": ((R, 40), torch.int64), "hist_len": ((R,), torch.int64),
    "hist_mask": ((R, R), torch.bool), "round_mask": ((R,), torch.bool),
    "opts": ((R, O, 20), torch.int64), "opts_len": ((R, O), torch.int64),
    "opts_in": ((R, O, 20), torch.int64), "opts_out": ((R, O, 20), torch.int64),
    "ans": ((R, 20), torch.int64), "ans_len": ((R,), torch.int64),
    "ans_in": ((R, 20), torch.int64), "ans_out": ((R, 20), torch.int64),
    "gt_index": ((R,), torch.int64),
    "gt_relevance": ((O,), torch.float32), "dense_round": ((), torch.int64),
    "img_feat": ((K, 2048), torch.float32), "boxes": ((K, 4), torch.float32),
    "num_boxes": ((), torch.int64), "img_w": ((), torch.float32), "img_h": ((), torch.float32),
}


def test_collated_batch_has_every_key_shape_and_dtype(train_files):
    tokens, feats, _ = train_files
    ds = VisDialDataset(tokens, feats)
    batch = collate([ds[0], ds[2]])
    assert set(batch) == set(BATCH_SPEC)
    for key, (shape, dtype) in BATCH_SPEC.items():
        assert batch[key].shape == (2, *shape), key
        assert batch[key].dtype == dtype, key
    assert batch["image_id"].tolist() == [11, 33]
    assert batch["num_rounds"].tolist() == [10, 10]
    assert batch["round_mask"].all()
    assert batch["gt_index"].tolist() == [[7] * R] * 2


def test_questions_are_pool_rows_with_lengths(train_files):
    item = VisDialDataset(*train_files[:2])[0]
    for r in range(R):
        assert item["ques_tokens"][r].tolist() == seq(QUESTIONS[r], width=20)
        assert item["ques_len"][r] == len(QUESTIONS[r])


def test_history_mask_is_round_causal(train_files, test_split_files):
    mask = VisDialDataset(*train_files[:2])[1]["hist_mask"]
    assert torch.equal(mask, torch.tril(torch.ones(R, R, dtype=torch.bool)))
    mask = VisDialDataset(*test_split_files)[0]["hist_mask"]  # 3 rounds
    expected = [[j <= i and j < 3 for j in range(R)] for i in range(R)]
    assert mask.tolist() == expected


def test_history_is_caption_then_question_answer_pairs(train_files):
    tokens, feats, dialogs = train_files
    ds = VisDialDataset(tokens, feats)
    item = ds[0]
    # Entry 0: the caption cut to 20 tokens (LTMI quirk 4) + </S>.
    assert item["hist_tokens"][0].tolist() == seq(CAPTIONS[0][:20], [EOS], width=40)
    assert item["hist_len"][0] == 21
    # Entry j: question and answer of round j-1 + </S>; the last round's QA is never history.
    for j in range(1, R):
        q, a = dialogs[0]["rounds"][j - 1][:2]
        assert item["hist_tokens"][j].tolist() == seq(QUESTIONS[q], ANSWERS[a], [EOS], width=40)
        assert item["hist_len"][j] == len(QUESTIONS[q]) + len(ANSWERS[a]) + 1
    # A short caption; and a 20-token question + 20-word answer fills all 40 slots (no </S>, as LTMI).
    assert ds[1]["hist_tokens"][0].tolist() == seq(CAPTIONS[1], [EOS], width=40)
    long_entry = ds[2]["hist_tokens"][1].tolist()
    assert long_entry == QUESTIONS[19] + ANSWERS[4] and ds[2]["hist_len"][1] == 40


def test_options_words_and_boundaries(train_files):
    tokens, feats, dialogs = train_files
    item = VisDialDataset(tokens, feats)[1]
    for r in (0, 4, 9):
        for o in range(O):
            words_ = ANSWERS[dialogs[1]["rounds"][r][2][o]][:18]  # ≤ 18 words (room for <S>, </S>)
            assert item["opts"][r, o].tolist() == seq(words_, width=20)
            assert item["opts_len"][r, o] == len(words_)
            assert item["opts_in"][r, o].tolist() == seq([SOS], words_, width=20)
            assert item["opts_out"][r, o].tolist() == seq(words_, [EOS], width=20)
    assert item["opts_len"].max() == 18  # the 19- and 20-word answers were cut


@pytest.mark.parametrize("answer", range(len(ANSWERS)))
def test_answer_in_out_and_truncation(tmp_path, answer):
    rounds = [(0, answer, option_list(0, answer), 7)] * R
    tokens, feats = tmp_path / "t.h5", tmp_path / "f.h5"
    write_tokens(tokens, [{"image_id": 1, "caption": 1, "rounds": rounds}])
    write_features(feats, [1])
    item = VisDialDataset(tokens, feats)[0]
    full = ANSWERS[answer]
    assert item["ans"][3].tolist() == seq(full, width=20) and item["ans_len"][3] == len(full)
    # In/out sequences keep ≤ 18 words, so </S> survives even for 19- and 20-word answers,
    # exactly as the GT option is scored (docs/dataset.md, quirk 5).
    kept = full[:18]
    assert item["ans_in"][3].tolist() == seq([SOS], kept, width=20)
    assert item["ans_out"][3].tolist() == seq(kept, [EOS], width=20)
    assert torch.equal(item["ans_out"][3], item["opts_out"][3, 7])


def test_test_split_is_padded_to_ten_rounds(test_split_files):
    item = VisDialDataset(*test_split_files)[0]
    assert item["num_rounds"] == 3
    assert item["ques_len"].tolist() == [3, 6, 4] + [0] * 7
    assert item["ques_tokens"][3:].eq(0).all()
    # Answers exist for the first two rounds only.
    assert item["ans_len"].tolist() == [3, 1] + [0] * 8
    assert item["ans_in"][0].tolist() == seq([SOS], ANSWERS[1], width=20)
    assert item["ans_in"][2:].eq(0).all() and item["ans_out"][2:].eq(0).all()
    # Options only on the last round; only it is scored.
    assert item["opts_len"][2].gt(0).all() and item["opts_len"][[0, 1, *range(3, R)]].eq(0).all()
    assert item["opts_in"][:2].eq(0).all() and item["opts_out"][3:].eq(0).all()
    assert item["round_mask"].tolist() == [False, False, True] + [False] * 7
    assert item["gt_index"].tolist() == [-1] * R
    # History from the available rounds: caption, (q1, a1), (q2, a2); nothing after.
    assert item["hist_tokens"][0].tolist() == seq(CAPTIONS[1], [EOS], width=40)
    assert item["hist_tokens"][1].tolist() == seq(QUESTIONS[2], ANSWERS[1], [EOS], width=40)
    assert item["hist_tokens"][2].tolist() == seq(QUESTIONS[5], ANSWERS[0], [EOS], width=40)
    assert item["hist_len"][3:].eq(0).all() and item["hist_tokens"][3:].eq(0).all()
    assert "gt_relevance" not in item and "dense_round" not in item
    # float16 features come out as float32.
    assert item["img_feat"].dtype == torch.float32 and item["img_feat"].eq(7).all()


def test_dense_relevance_when_present(train_files):
    ds = VisDialDataset(*train_files[:2])
    assert ds.has_dense
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["dense_round"].tolist() == [3, 0, 10]
    assert torch.allclose(batch["gt_relevance"][0], torch.linspace(0, 1, O))
    assert batch["gt_relevance"][2].eq(1).all()


def test_image_features_are_looked_up_by_image_id(train_files):
    ds = VisDialDataset(*train_files[:2])
    for index, image_id in enumerate([11, 22, 33]):
        item = ds[index]
        assert item["image_id"] == image_id
        assert item["img_feat"].eq(image_id).all()
        assert item["boxes"][2].tolist() == [2, 2, 2 + image_id, 2 + image_id]
        assert item["img_w"] == 640 + image_id and item["img_h"] == 480 + image_id
        assert item["num_boxes"] == K - 1


def test_missing_image_id_names_image_and_feature_file(tmp_path, train_files):
    tokens, _, _ = train_files
    feats = tmp_path / "partial.h5"
    write_features(feats, [11, 33])
    write_skipped_manifest(feats, [{"image_id": 99, "path": "x.jpg", "reason": "unreadable"}])  # another image
    with pytest.raises(InputFormatError) as err:
        VisDialDataset(tokens, feats)
    message = str(err.value)
    assert "image id 22" in message and str(feats) in message and "dialog 1" in message
    assert "\n" not in message and "skipped" not in message


def test_missing_image_listed_as_skipped_says_training_refuses(tmp_path, train_files):
    tokens, _, _ = train_files
    feats = tmp_path / "partial.h5"
    write_features(feats, [11, 33])
    write_skipped_manifest(feats, [{"image_id": 22, "path": "COCO_train2014_000000000022.jpg",
                                    "reason": "truncated JPEG"}])
    with pytest.raises(InputFormatError, match=r"image id 22 .*partial\.h5.*skipped.*truncated JPEG.*"
                                               r"training refuses dialogs without features"):
        VisDialDataset(tokens, feats)


@pytest.mark.parametrize("damage, culprit", [
    (lambda f: f.__delitem__("answer_options"), "lacks dataset 'answer_options'"),
    (lambda f: f["num_rounds"].__setitem__(1, 11), "dialog 1 has num_rounds 11"),
    (lambda f: f["question"].__setitem__((2, 4), 99), "dialog 2 round 5 'question' index 99"),
    (lambda f: f["gt_index"].__setitem__((0, 9), 100), "dialog 0 round 10 has gt_index 100"),
])
def test_malformed_tokens_file_is_named(train_files, damage, culprit):
    tokens, feats, _ = train_files
    with h5py.File(tokens, "a") as f:
        damage(f)
    with pytest.raises(InputFormatError, match=culprit) as err:
        VisDialDataset(tokens, feats)[0]
    assert str(tokens) in str(err.value)


def test_absent_or_unreadable_files_are_named(tmp_path, train_files):
    tokens, feats, _ = train_files
    with pytest.raises(InputFormatError, match=r"tokens file .*nowhere\.h5 does not exist"):
        VisDialDataset(tmp_path / "nowhere.h5", feats)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    with pytest.raises(InputFormatError, match=r"garbage\.h5 is not a readable HDF5 file"):
        VisDialDataset(garbage, feats)
    with pytest.raises(InputFormatError, match=r"feature file .*garbage\.h5 is not a readable HDF5 file"):
        VisDialDataset(tokens, garbage)


def test_wrong_option_count_is_named(train_files):
    tokens, feats, _ = train_files
    with pytest.raises(InputFormatError, match=r"'answer_options' has shape \(3, 10, 100\), expected \(3, 10, 50\)"):
        VisDialDataset(tokens, feats, num_options=50)[0]


def test_dataloader_with_workers_opens_files_lazily_per_worker(train_files):
    fresh = VisDialDataset(*train_files[:2])
    loader = DataLoader(fresh, batch_size=2, num_workers=2, collate_fn=collate)
    assert sum(len(b["image_id"]) for b in loader) == 3
    assert fresh._tokens is None  # only the workers opened the files

    ds = VisDialDataset(*train_files[:2])
    reference = collate([ds[i] for i in range(len(ds))])  # opens the files here, before the fork
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._tokens is None and clone._arrays is None  # handles never travel
    assert all(torch.equal(clone[2][k], v[2]) for k, v in reference.items())  # re-read after unpickling
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate, persistent_workers=True)
    for _epoch in range(2):
        (batch,) = list(loader)
        for key in reference:
            assert torch.equal(batch[key], reference[key]), key



def test_tokenizer_output_feeds_the_dataset(tmp_path):
    """The real tokens writer (visdial_lg.text.tokens) on a tiny VisDial v1.0 val JSON with dense scores."""
    from types import SimpleNamespace

    tokens_module = pytest.importorskip("visdial_lg.text.tokens")
    from visdial_lg.text.vocab import Vocabulary

    words_ = ["?", "is", "it", "red", "yes", "no", "blue", "a", "ball", "on", "table"]
    vocab = Vocabulary(list(Vocabulary.SPECIALS) + words_)
    ids = {w: 4 + i for i, w in enumerate(words_)}
    vocab.save(tmp_path / "vocab.json", min_count=1, source="test")
    rounds = [{"question": r % 2, "answer": r % 3, "answer_options": [(r + o) % 3 for o in range(O)],
               "gt_index": r} for r in range(R)]
    for r in rounds:
        r["answer_options"][r["gt_index"]] = r["answer"]
    data = {"version": "1.0", "split": "val",
            "data": {"questions": ["is it red", "is it blue"], "answers": ["yes", "no", "no it is blue"],
                     "dialogs": [{"image_id": 42, "caption": "a red ball on a table", "dialog": rounds}]}}
    (tmp_path / "val.json").write_text(json.dumps(data))
    (tmp_path / "dense.json").write_text(json.dumps([{"image_id": 42, "round_id": 4, "gt_relevance": [0.5] * O}]))
    text_cfg = SimpleNamespace(max_question_len=20, max_answer_len=20, max_caption_len=40, workers=1)
    tokens_module.tokenize_split(tmp_path / "val.json", tmp_path / "vocab.json", tmp_path / "val.h5", text_cfg,
                                 "v1.0", "val", dense_path=tmp_path / "dense.json")
    write_features(tmp_path / "f.h5", [7, 42])

    item = VisDialDataset(tmp_path / "val.h5", tmp_path / "f.h5")[0]
    question = [ids[w] for w in ("is", "it", "red", "?")]
    answer = [ids[w] for w in ("no", "it", "is", "blue")]
    caption = [ids[w] for w in ("a", "red", "ball", "on", "a", "table")]
    assert item["ques_tokens"][2].tolist() == seq(question, width=20)
    assert item["hist_tokens"][0].tolist() == seq(caption, [EOS], width=40)
    assert item["hist_tokens"][3].tolist() == seq(question, answer, [EOS], width=40)  # round 3's QA
    assert item["ans_in"][2].tolist() == seq([SOS], answer, width=20)
    assert torch.equal(item["opts_out"][2, 2], item["ans_out"][2])  # the GT option
    assert item["gt_index"].tolist() == list(range(R))
    assert item["dense_round"] == 4 and item["gt_relevance"].eq(0.5).all()
    assert item["img_feat"].eq(42).all()
