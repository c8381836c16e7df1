"""Safe zip extraction: traversal, symlinks and corrupt archives are rejected before writing."""

from __future__ import annotations

import hashlib
import json
import stat
import warnings
import zipfile

import pytest

from visdial_lg.cli import main as cli_main
from visdial_lg.download.archive import UnsafeArchiveError, safe_extract_zip
from visdial_lg.core.errors import InputFormatError

GOOD = {"train2014/COCO_train2014_000000000001.jpg": b"jpeg-1" * 100, "train2014/sub/notes.txt": b"hello"}


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """entries: {name or ZipInfo: bytes}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate-name case
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in entries.items() if isinstance(entries, dict) else entries:
                zf.writestr(name, data)
    return path


def tree(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_extracts_and_writes_the_manifest(tmp_path):
    z = make_zip(tmp_path / "imgs.zip", {"train2014/": b"", **GOOD})
    out, manifest = tmp_path / "x" / "coco", tmp_path / "x" / "coco.manifest.json"
    result = safe_extract_zip(z, out, manifest, progress=False)
    for name, data in GOOD.items():
        assert (out / name).read_bytes() == data
    on_disk = json.loads(manifest.read_text())
    assert on_disk == result
    assert on_disk["zip"] == "imgs.zip" and on_disk["zip_sha256"] == hashlib.sha256(z.read_bytes()).hexdigest()
    assert on_disk["files"] == [{"path": n, "size": len(d)} for n, d in sorted(GOOD.items())]
    assert on_disk["num_files"] == 2 and on_disk["total_bytes"] == sum(map(len, GOOD.values()))
    assert tree(tmp_path / "x") == ["coco", "coco.manifest.json", "coco/train2014", "coco/train2014/COCO_train2014_000000000001.jpg",
                                    "coco/train2014/sub", "coco/train2014/sub/notes.txt"]


def symlink_entry(name="train2014/link", target=b"/etc/passwd"):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def device_entry():
    info = zipfile.ZipInfo("train2014/dev")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o600) << 16
    return info, b""


@pytest.mark.parametrize(
    "entry, why",
    [
        (("../evil.txt", b"x"), "'..' component"),
        (("train2014/../../evil.txt", b"x"), "'..' component"),
        (("/tmp/evil.txt", b"x"), "absolute path"),
        (("C:/evil.txt", b"x"), "drive letter"),
        (("C:evil.txt", b"x"), "drive letter"),
        (("..\\..\\evil.txt", b"x"), "backslash"),
        (symlink_entry(), "symbolic link"),
        (device_entry(), "special file"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "drive-relative", "backslash", "symlink", "device"],
)
def test_unsafe_entries_are_rejected_before_anything_is_written(tmp_path, entry, why):
    # the unsafe entry comes after a good one: nothing at all may be written
    z = make_zip(tmp_path / "bad.zip", list(GOOD.items()) + [entry])
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(UnsafeArchiveError, match=why) as caught:
        safe_extract_zip(z, out, tmp_path / "a" / "m.json", progress=False)
    assert "bad.zip" in str(caught.value) and "\n" not in str(caught.value)
    assert tree(tmp_path) == ["bad.zip"]


def test_duplicate_entries_are_rejected(tmp_path):
    z = make_zip(tmp_path / "dup.zip", [("a.txt", b"1"), ("a.txt", b"2")])
    with pytest.raises(UnsafeArchiveError, match="appears twice"):
        safe_extract_zip(z, tmp_path / "out", tmp_path / "m.json", progress=False)
    assert tree(tmp_path) == ["dup.zip"]


def test_bad_crc_is_rejected_and_nothing_is_kept(tmp_path):
    payload = b"0123456789 a payload that will be corrupted " * 20
    z = make_zip(tmp_path / "crc.zip", {"ok.txt": b"fine", "data.bin": payload}, compression=zipfile.ZIP_STORED)
    raw = z.read_bytes()
    at = raw.index(payload) + 100
    z.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :])  # flip one stored byte
    with pytest.raises(InputFormatError, match=r"entry 'data.bin' is corrupt.*CRC"):
        safe_extract_zip(z, tmp_path / "out", tmp_path / "m.json", progress=False)
    assert tree(tmp_path) == ["crc.zip"]  # neither out/ nor out.partial/ nor the manifest


def test_not_a_zip_is_a_one_line_cli_error(tmp_path, capsys):
    bad = tmp_path / "fake.zip"
    bad.write_bytes(b"<!DOCTYPE html><html>preview</html>")
    code = cli_main(["unzip", str(bad), "--out", str(tmp_path / "out"), "--manifest", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("visdial-lg: error:") and "fake.zip" in err and "\n" not in err
    assert tree(tmp_path) == ["fake.zip"]


def test_truncated_zip_is_rejected(tmp_path):
    z = make_zip(tmp_path / "t.zip", GOOD)
    z.write_bytes(z.read_bytes()[:-30])  # the central directory is cut
    with pytest.raises(InputFormatError, match="t.zip"):
        safe_extract_zip(z, tmp_path / "out", tmp_path / "m.json", progress=False)


def test_interrupted_extraction_is_cleaned_up_and_redone(tmp_path, capsys):
    z = make_zip(tmp_path / "imgs.zip", GOOD)
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    (partial / "train2014").mkdir(parents=True)  # what a killed run leaves behind
    (partial / "train2014" / "COCO_train2014_000000000001.jpg").write_bytes(b"half")
    safe_extract_zip(z, out, tmp_path / "m.json", progress=False)
    assert not partial.exists() and tree(out) == sorted(["train2014", "train2014/sub", *GOOD])
    assert (out / "train2014/COCO_train2014_000000000001.jpg").read_bytes() == GOOD[
        "train2014/COCO_train2014_000000000001.jpg"
    ]
    assert "interrupted" in capsys.readouterr().err


def test_complete_folder_without_manifest_is_adopted_but_a_changed_one_is_not(tmp_path):
    z = make_zip(tmp_path / "imgs.zip", GOOD)
    out, manifest = tmp_path / "out", tmp_path / "m.json"
    first = safe_extract_zip(z, out, manifest, progress=False)
    manifest.unlink()  # killed between the rename and the manifest
    assert safe_extract_zip(z, out, manifest, progress=False) == first and manifest.exists()
    manifest.unlink()
    (out / "train2014/sub/notes.txt").write_bytes(b"edited by hand")
    with pytest.raises(InputFormatError, match="remove it to extract again"):
        safe_extract_zip(z, out, manifest, progress=False)
    assert (out / "train2014/sub/notes.txt").read_bytes() == b"edited by hand"  # never deleted
