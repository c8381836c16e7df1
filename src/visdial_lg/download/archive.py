"""Safe zip extraction: every entry is checked before anything is written.

`safe_extract_zip(zip, out_dir, manifest)` rejects absolute paths, `..`
components, drive letters, backslashes, symlinks and other special entries,
encrypted entries and duplicates; it extracts into the sibling `<out_dir>.partial`
(CRC-checked while reading), renames that onto `out_dir`, and then writes the
manifest (the Snakemake output) listing every file. A killed extraction leaves
only `<out_dir>.partial`, which the next run removes and redoes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..core.errors import InputFormatError
from ..core.files import write_text_atomic
from ..core.files import sha256_of
from .fetch import CHUNK_BYTES

_DRIVE = re.compile(r"^[A-Za-z]:")
_ALLOWED_TYPES = (0, stat.S_IFREG, stat.S_IFDIR)  # 0 = no Unix mode recorded (e.g. DOS-made zips)


class UnsafeArchiveError(InputFormatError):
    """A zip entry would write outside the target folder or is not a plain file/folder."""


def _say(message: str) -> None:
    tqdm.write(f"visdial-lg unzip: {message}", file=sys.stderr)


def member_path(zip_path: Path, info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's safe relative path (None for the archive root), or UnsafeArchiveError."""
    name = info.filename

    def reject(why: str):
        return UnsafeArchiveError(f"{zip_path}: entry {name!r} {why}; nothing was extracted")

    if "\\" in name:
        raise reject("contains a backslash")
    if name.startswith("/"):
        raise reject("is an absolute path")
    if _DRIVE.match(name):
        raise reject("starts with a drive letter")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise reject("has a '..' component")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise reject("is a symbolic link")
    if kind not in _ALLOWED_TYPES:
        raise reject(f"is a special file (mode {oct(info.external_attr >> 16)})")
    if info.flag_bits & 0x1:
        raise reject("is encrypted")
    return PurePosixPath(*parts) if parts else None


def plan_extraction(zip_path: Path, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """All entries with their checked paths; also rejects duplicates and file/folder clashes."""
    plan, files, folders = [], set(), set()
    for info in zf.infolist():
        path = member_path(zip_path, info)
        if path is None:
            continue
        plan.append((info, path))
        if info.is_dir():
            folders.add(path)
            continue
        if path in files:
            raise UnsafeArchiveError(f"{zip_path}: entry {info.filename!r} appears twice; nothing was extracted")
        files.add(path)
        folders.update(path.parents)
    clash = files & folders
    if clash:
        raise UnsafeArchiveError(
            f"{zip_path}: {str(sorted(clash)[0])!r} is both a file and a folder; nothing was extracted"
        )
    return plan


def _adopt_existing(zip_path: Path, out_dir: Path, expected: dict[str, int]) -> None:
    """Accept an `out_dir` left complete by a run killed before its manifest was written."""
    found = {
        p.relative_to(out_dir).as_posix(): p.stat().st_size for p in out_dir.rglob("*") if p.is_file()
    }
    if found != expected:
        diff = sorted(set(found) ^ set(expected)) or sorted(k for k in expected if found[k] != expected[k])
        raise InputFormatError(
            f"{out_dir} already exists and does not hold the content of {zip_path} "
            f"(first difference: {diff[0]!r}); remove it to extract again"
        )
    _say(f"{out_dir} already holds every file of {zip_path}; writing the manifest only")


def _extract_into(zip_path: Path, zf: zipfile.ZipFile, plan, target: Path, progress: bool) -> None:
    # `target` is a fresh folder and no links are ever created in it, so a checked
    # relative path cannot leave it; the string check below is defence in depth
    root = os.path.normpath(target) + os.sep
    made: set[Path] = set()
    total = sum(info.file_size for info, _ in plan)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=zip_path.name,
              disable=not progress, mininterval=1.0, file=sys.stderr) as bar:
        for info, path in sorted(plan, key=lambda entry: entry[0].header_offset):  # sequential reads
            dest = target.joinpath(*path.parts)
            if not os.path.normpath(dest).startswith(root):
                raise UnsafeArchiveError(f"{zip_path}: entry {info.filename!r} resolves outside {target}")
            folder = dest if info.is_dir() else dest.parent
            if folder not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if info.is_dir():
                continue
            written = 0
            try:
                with zf.open(info) as src, open(dest, "xb") as dst:
                    while block := src.read(CHUNK_BYTES):  # the CRC is checked when the entry ends
                        dst.write(block)
                        written += len(block)
                        bar.update(len(block))
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                raise InputFormatError(f"{zip_path}: entry {info.filename!r} is corrupt ({e})") from None
            if written != info.file_size:
                raise InputFormatError(
                    f"{zip_path}: entry {info.filename!r} gave {written} bytes, the archive says {info.file_size}"
                )


def safe_extract_zip(zip_path, out_dir, manifest_path, *, progress: bool = True) -> dict:
    """Extract `zip_path` into `out_dir` (which must not hold anything else) and write the
    manifest JSON `{zip, zip_sha256, zip_size, out, num_files, total_bytes, files: [{path, size}]}`."""
    zip_path, out_dir, manifest_path = Path(zip_path), Path(out_dir), Path(manifest_path)
    if not zip_path.is_file():
        raise InputFormatError(f"{zip_path}: no such zip file")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputFormatError(f"{zip_path}: not a readable zip archive ({e})") from None
    with zf:
        plan = plan_extraction(zip_path, zf)
        sizes = {path.as_posix(): info.file_size for info, path in plan if not info.is_dir()}
        partial = out_dir.with_name(out_dir.name + ".partial")
        if partial.exists():
            _say(f"removing {partial} left by an interrupted extraction")
            shutil.rmtree(partial)
        if out_dir.exists():
            _adopt_existing(zip_path, out_dir, sizes)
        else:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(out_dir.parent).free
            if sum(sizes.values()) > free:
                raise InputFormatError(
                    f"{zip_path}: needs {sum(sizes.values())} bytes in {out_dir.parent}, only {free} are free"
                )
            partial.mkdir()
            try:
                _extract_into(zip_path, zf, plan, partial, progress)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            os.rename(partial, out_dir)

    manifest = {
        "zip": zip_path.name,
        "zip_sha256": sha256_of(zip_path),
        "zip_size": zip_path.stat().st_size,
        "out": str(out_dir),
        "num_files": len(sizes),
        "total_bytes": sum(sizes.values()),
        "files": [{"path": p, "size": s} for p, s in sorted(sizes.items())],
    }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return manifest
