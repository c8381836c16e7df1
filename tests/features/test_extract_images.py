"""Finding and decoding images: ids, folders, dialogs, shards, and every kind of bad or odd file."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers.images import BAD_KINDS, bad_image_bytes, coco_name, pixels
from visdial_lg.core.errors import InputFormatError
from visdial_lg.features.images import (BadImageError, ImageEntry, images_of_dialogs, list_image_folders,
                                        parse_shard, read_image_bgr, shard_slice)


def test_folder_listing_sorts_by_id_and_ignores_other_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for image_id, folder in [(42, "a"), (7, "b"), (1000, "a")]:
        cv2.imwrite(str(tmp_path / folder / coco_name(image_id)), pixels())
    (tmp_path / "a" / "README.txt").write_text("not an image")
    (tmp_path / "a" / ".hidden.jpg").write_bytes(b"")
    entries = list_image_folders([tmp_path / "a", tmp_path / "b"])
    assert [(e.image_id, e.path.parent.name) for e in entries] == [(7, "b"), (42, "a"), (1000, "a")]


def test_folder_listing_errors_name_the_culprit(tmp_path):
    with pytest.raises(InputFormatError, match=rf"image folder {tmp_path / 'nope'} does not exist"):
        list_image_folders([tmp_path / "nope"])
    cv2.imwrite(str(tmp_path / "cat.jpg"), pixels())
    with pytest.raises(InputFormatError, match=r"cannot read an image id from the file name .*cat\.jpg"):
        list_image_folders([tmp_path])
    (tmp_path / "cat.jpg").unlink()
    (tmp_path / "x").mkdir()
    cv2.imwrite(str(tmp_path / coco_name(5, "train2014")), pixels())
    cv2.imwrite(str(tmp_path / "x" / coco_name(5, "val2014")), pixels())
    with pytest.raises(InputFormatError, match=r"image id 5 appears twice: .*COCO_train2014_000000000005\.jpg"):
        list_image_folders([tmp_path, tmp_path / "x"])


def test_dialog_images_are_found_by_id_and_missing_ones_are_named(tmp_path):
    for image_id in (3, 4, 9):
        cv2.imwrite(str(tmp_path / coco_name(image_id)), pixels())
    dialogs = tmp_path / "visdial.json"
    dialogs.write_text(json.dumps({"data": {"dialogs": [{"image_id": 9}, {"image_id": 3}, {"image_id": 9}]}}))
    assert [e.image_id for e in images_of_dialogs(dialogs, [tmp_path])] == [3, 9]
    dialogs.write_text(json.dumps({"data": {"dialogs": [{"image_id": 3}, {"image_id": 11}]}}))
    with pytest.raises(InputFormatError, match=rf"image id 11 of {dialogs} is in none of the image folders"):
        images_of_dialogs(dialogs, [tmp_path])
    dialogs.write_text(json.dumps({"data": {"dialogs": [{"image_id": 3}, {"image_id": "x"}]}}))
    with pytest.raises(InputFormatError, match=rf"dialogs file {dialogs}, dialog 1: image_id must be an integer"):
        images_of_dialogs(dialogs, [tmp_path])


def test_shards_are_contiguous_blocks_that_concatenate_to_the_whole():
    entries = [ImageEntry(i, f"{i}.jpg") for i in (50, 3, 8, 21, 13, 34, 1, 2, 5, 89)]
    shards = [shard_slice(entries, i, 3) for i in range(3)]
    assert [len(s) for s in shards] == [3, 3, 4]
    assert [e.image_id for s in shards for e in s] == sorted(e.image_id for e in entries)
    assert [len(shard_slice(entries[:2], i, 3)) for i in range(3)] == [0, 1, 1]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1-3", "-1/2"):
        with pytest.raises(InputFormatError, match="--shard must be i/n"):
            parse_shard(bad)


# ------------------------------------------------------------------------ odd but fine


def test_grayscale_comes_out_as_three_equal_channels(tmp_path):
    path = tmp_path / coco_name(1)
    cv2.imwrite(str(path), pixels()[:, :, 0])
    image = read_image_bgr(path)
    assert image.shape == (24, 32, 3) and (image[..., 0] == image[..., 2]).all()


def test_cmyk_jpeg_decodes_to_bgr_like_pillow(tmp_path):
    path = tmp_path / coco_name(1)
    Image.fromarray(pixels()[:, :, ::-1]).convert("CMYK").save(path)
    image = read_image_bgr(path)
    via_pillow = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1]
    assert image.shape == (24, 32, 3)
    assert np.abs(image.astype(int) - via_pillow).mean() < 2


def test_png_behind_a_jpg_name_is_read_by_content(tmp_path):
    path = tmp_path / coco_name(1)
    ok, png = cv2.imencode(".png", pixels())
    path.write_bytes(png.tobytes())
    np.testing.assert_array_equal(read_image_bgr(path), pixels())  # lossless: exactly the pixels


def test_exif_orientation_is_applied_as_cv2_imread_does(tmp_path):
    path = tmp_path / coco_name(1)
    image = Image.fromarray(pixels(24, 32)[:, :, ::-1])
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(path, exif=exif, quality=95)
    decoded = read_image_bgr(path)
    assert decoded.shape == (32, 24, 3)
    assert decoded.shape == cv2.imread(str(path)).shape
    np.testing.assert_array_equal(decoded, cv2.imread(str(path)))


def with_embedded_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with an APP1 segment holding a whole small JPEG (its own end-of-image marker)."""
    thumb = cv2.imencode(".jpg", pixels(8, 8))[1].tobytes()
    payload = b"Exif\x00\x00" + thumb
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def test_complete_jpegs_pass_the_truncation_check(tmp_path):
    path = tmp_path / coco_name(1)
    Image.fromarray(pixels()[:, :, ::-1]).save(path, quality=90, progressive=True)
    path.write_bytes(with_embedded_thumbnail(path.read_bytes()) + b"\x00trailing bytes")
    assert read_image_bgr(path).shape == (24, 32, 3)


def test_truncated_jpeg_is_caught_despite_the_thumbnails_end_marker(tmp_path):
    path = tmp_path / coco_name(1)
    jpeg = with_embedded_thumbnail(cv2.imencode(".jpg", pixels(64, 64))[1].tobytes())
    path.write_bytes(jpeg[:-200])
    with pytest.raises(BadImageError, match="truncated JPEG"):
        read_image_bgr(path)


# -------------------------------------------------------------------------------- bad


# Only a JPEG whose segments are JPEG's and lack the end marker is "truncated"; noise is "cannot be decoded".
BAD_MESSAGES = {"empty": "empty file", "truncated-jpeg": "truncated JPEG", "jpeg-missing-eoi": "truncated JPEG",
                "jpeg-cut-in-header": "truncated JPEG",
                "truncated-png": "truncated PNG", "corrupt": "cannot be decoded",
                "garbage-between-jpeg-markers": "cannot be decoded", "not-an-image": "cannot be decoded"}


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_images_raise_one_line_naming_the_file(tmp_path, kind):
    path = tmp_path / coco_name(1)
    path.write_bytes(bad_image_bytes(kind))
    with pytest.raises(BadImageError, match=rf"^image {path} (is an? )?({BAD_MESSAGES[kind]})") as info:
        read_image_bgr(path)
    assert "\n" not in str(info.value)


def test_unreadable_file_is_a_bad_image(tmp_path):
    with pytest.raises(BadImageError, match=rf"image {tmp_path} cannot be read"):
        read_image_bgr(tmp_path)  # a folder
