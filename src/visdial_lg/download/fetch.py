"""Verified, resumable downloads over HTTP(S) with the standard library only.

`download(url, out, ...)` streams into `<out>.part`, resumes it with an HTTP Range
request, restarts from zero when the server ignores Range, retries connection
errors and 5xx with exponential backoff, and renames `.part` onto `out` only after
the size and sha256 match. Sources without a published hash are pinned on first
use in a JSON lock file (`{name: {sha256, size, url, recorded}}`) that later
downloads are verified against. See `docs/data.md`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from ..core.errors import VisdialLGError
from ..core.files import sha256_of
from .checksum_lock import read_lock, record_in_lock

CHUNK_BYTES = 1 << 20
MAX_BACKOFF_S = 60.0
USER_AGENT = "visdial-lg-downloader/1 (+python urllib)"
_HTML_SUFFIXES = (".html", ".htm")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(VisdialLGError):
    """A download cannot succeed (404, an HTML page instead of the file, retries exhausted...)."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the expected ones (size or sha256)."""


class _Retry(Exception):
    """A transient failure: the attempt may be repeated (resuming the .part file)."""


@dataclass(frozen=True)
class Expected:
    sha256: str | None
    size: int | None
    origin: str  # where the expectation comes from, for error messages


def _say(message: str) -> None:
    tqdm.write(f"visdial-lg download: {message}", file=sys.stderr)


def _sha256_of(path: Path, start: int = 0, stop: int | None = None, h=None):
    """sha256 object updated with bytes [start, stop) of `path`."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        remaining = None if stop is None else stop - start
        while remaining is None or remaining > 0:
            block = f.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
            if not block:
                break
            h.update(block)
            if remaining is not None:
                remaining -= len(block)
    return h


class _PartHash:
    """Running sha256 of the .part file's first `n` bytes, so a resume hashes only new bytes."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.h, self.n = hashlib.sha256(), 0

    def sync(self, part: Path, size: int) -> None:
        if size < self.n:
            self.reset()
        if size > self.n:
            _sha256_of(part, self.n, size, self.h)
            self.n = size

    def update(self, block: bytes) -> None:
        self.h.update(block)
        self.n += len(block)


def _part_size(part: Path) -> int:
    return part.stat().st_size if part.exists() else 0


def _looks_like_html(head: bytes) -> bool:
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith(b"<!doctype html") or start.startswith(b"<html")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 10-99/100' -> (10, 100); 'bytes */100' -> (None, 100)."""
    if not value:
        return None, None
    m = _CONTENT_RANGE.match(value.strip())
    if m:
        return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))
    m = re.match(r"bytes\s+\*/(\d+)", value.strip())
    return (None, int(m.group(1))) if m else (None, None)


def _read_origin(part: Path) -> dict:
    try:
        return json.loads(_origin_path(part).read_text())
    except (OSError, ValueError):
        return {}


def _origin_path(part: Path) -> Path:
    """Sidecar of the .part file: the URL and HTTP validator its bytes came from."""
    return part.with_name(part.name + ".json")


def _discard(part: Path, hashed: _PartHash) -> None:
    part.unlink(missing_ok=True)
    _origin_path(part).unlink(missing_ok=True)
    hashed.reset()


def _open(url: str, offset: int, validator: str | None, timeout: float):
    """One request for the bytes from `offset` on; raises _Retry or DownloadError."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if validator:  # the server sends the whole (new) file if it changed since the .part began
            request.add_header("If-Range", validator)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416:
            raise  # handled by the caller: the .part may already be complete
        if e.code in (408, 429) or e.code >= 500:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if urlsplit(url).scheme == "file" or not isinstance(e.reason, OSError):
            raise DownloadError(f"{url}: {e.reason}") from None
        raise _Retry(f"connection failed: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Retry(f"connection failed: {e!r}") from None


def _read(response, position: int) -> bytes:
    """Up to CHUNK_BYTES, as soon as they arrive (read1), so a kill loses little."""
    try:
        return response.read1(CHUNK_BYTES)
    except (OSError, http.client.HTTPException) as e:
        raise _Retry(f"connection lost after {position} bytes: {e!r}") from None


def _resume_offset(url: str, part: Path, hashed: _PartHash, expected: Expected) -> int:
    """How many bytes of `part` can be kept (0 when it came from another URL or is too long)."""
    offset = _part_size(part)
    if offset and _read_origin(part).get("url") != url:
        _say(f"{part} does not come from {url}; restarting from zero")
        offset = 0
    elif expected.size is not None and offset > expected.size:
        _say(f"{part} is larger than the expected {expected.size} bytes; restarting from zero")
        offset = 0
    if offset == 0:
        _discard(part, hashed)
    hashed.sync(part, offset)
    return offset


def _response_span(response, url: str, out: Path, part: Path, offset: int, hashed: _PartHash, expected: Expected):
    """(first byte, total size or None) of what the response carries; rejects HTML and wrong sizes."""
    status = getattr(response, "status", None) or 200  # file:// responses carry no status
    headers = response.headers
    length = headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if offset and status == 206:
        start, total = _content_range(headers.get("Content-Range"))
        if start != offset:
            _discard(part, hashed)
            raise _Retry(f"server answered the resume at byte {offset} with range start {start}")
        total = total if total is not None else (None if length is None else offset + length)
    else:
        if offset:
            _say(f"server sent the whole file (HTTP {status}), not the requested range; restarting {out.name} from zero")
        offset, total = 0, length
    content_type = (headers.get("Content-Type") or "").lower()
    if content_type.startswith("text/html") and not out.name.lower().endswith(_HTML_SUFFIXES):
        raise DownloadError(f"{url}: the server sent an HTML page (Content-Type {content_type}), not the file")
    if expected.size is not None and total is not None and total != expected.size:
        _discard(part, hashed)
        raise ChecksumError(f"{url}: the server offers {total} bytes but {expected.origin} expects {expected.size}")
    return offset, total


def _stream(response, url, out: Path, part: Path, hashed: _PartHash, offset: int, total, progress: bool) -> None:
    first = _read(response, offset)
    if offset == 0:
        if not out.name.lower().endswith(_HTML_SUFFIXES) and _looks_like_html(first):
            raise DownloadError(f"{url}: the server sent an HTML page, not the file (a preview or login page?)")
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        if validator and validator.startswith("W/"):
            validator = response.headers.get("Last-Modified")  # If-Range needs a strong validator
        _origin_path(part).write_text(json.dumps({"url": url, "validator": validator}))
        hashed.reset()
    position = offset
    with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=out.name,
              disable=not progress, mininterval=1.0, file=sys.stderr) as bar:
        with open(part, "ab" if offset else "wb") as f:
            block = first
            while block:
                f.write(block)
                hashed.update(block)
                position += len(block)
                bar.update(len(block))
                block = _read(response, position)
            f.flush()
            os.fsync(f.fileno())
    if total is not None and position < total:
        raise _Retry(f"connection closed after {position} of {total} bytes")


def _attempt(url: str, out: Path, part: Path, hashed: _PartHash, expected: Expected, timeout: float, progress: bool):
    """Bring `part` to the complete file, or raise _Retry (keeping what was received)."""
    offset = _resume_offset(url, part, hashed, expected)
    if offset and offset == expected.size:
        return  # a previous run received every byte; only verification is left
    try:
        response = _open(url, offset, _read_origin(part).get("validator"), timeout)
    except urllib.error.HTTPError as e:  # 416: the range starts at or after the end
        if offset and _content_range(e.headers.get("Content-Range"))[1] == offset:
            return
        _say(f"server refused the resume of {part} (HTTP 416); restarting from zero")
        _discard(part, hashed)
        raise _Retry("range not satisfiable") from None
    with response:
        offset, total = _response_span(response, url, out, part, offset, hashed, expected)
        _stream(response, url, out, part, hashed, offset, total, progress)


def _expectation(sha256: str | None, size: int | None, lock: Path | None, name: str) -> Expected:
    if sha256 is not None:
        return Expected(sha256.lower(), size, "the config")
    if lock is not None:
        entry = read_lock(lock).get(name)
        if entry is not None:
            if size is not None and entry["size"] != size:
                raise ChecksumError(f"{lock}: {name} is recorded with size {entry['size']}, the config says {size}")
            return Expected(entry["sha256"], entry["size"], f"{lock} (entry {name!r})")
    return Expected(None, size, "the config")


def _check(path: Path, digest: str, size: int, expected: Expected, url: str) -> None:
    if expected.size is not None and size != expected.size:
        raise ChecksumError(f"{url}: got {size} bytes, {expected.origin} expects {expected.size}")
    if expected.sha256 is not None and digest != expected.sha256:
        raise ChecksumError(f"{url}: sha256 {digest} does not match {expected.sha256} from {expected.origin}")


def _verify_existing(out: Path, expected) -> str:
    """The sha256 of a file already at `out`, checked against what is expected of it."""
    digest = sha256_of(out)
    try:
        _check(out, digest, out.stat().st_size, expected, str(out))
    except ChecksumError as e:  # never deleted here: it may be the user's own file
        raise ChecksumError(f"{e}; the file was already there, not downloaded: "
                            f"remove {out} to download it again") from None
    return digest


def _fetch(url: str, out: Path, part: Path, expected, *, retries: int, backoff_s: float, timeout_s: float,
           progress: bool) -> str:
    """Fetch `url` into `part` (resuming it), retrying while attempts make progress; the
    sha256 of the verified `part`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    hashed, failures, furthest = _PartHash(), 0, _part_size(part)
    if furthest:
        _say(f"resuming {part} at byte {furthest}")
    while True:
        try:
            _attempt(url, out, part, hashed, expected, timeout_s, progress)
            break
        except _Retry as e:
            now = _part_size(part)
            if now > furthest:  # progress resets the failure count
                furthest, failures = now, 0
            else:
                failures += 1
            if failures > retries:
                raise DownloadError(f"{url}: giving up after {retries} retries without progress ({e})") from None
            delay = min(backoff_s * 2 ** max(failures - 1, 0), MAX_BACKOFF_S)
            _say(f"{e}; retrying in {delay:.1f} s")
            time.sleep(delay)
    digest = hashed.h.hexdigest()
    try:
        _check(part, digest, _part_size(part), expected, url)
    except ChecksumError:
        _discard(part, hashed)  # a bad .part must not be resumed or used
        raise
    return digest


def download(
    url: str,
    out: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    lock: str | os.PathLike | None = None,
    name: str | None = None,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> str:
    """Download `url` to `out`, verified; returns the file's sha256.

    sha256/size: the published values (verified). Without sha256, the entry `name`
    (default: the file name) of the JSON `lock` file is verified, or recorded when
    absent (trust on first use). `retries` bounds the consecutive failed attempts
    that made no progress; each waits backoff_s·2^(n−1) seconds (at most 60 s).
    """
    out = Path(out)
    part = out.with_name(out.name + ".part")
    lock = Path(lock) if lock is not None else None
    name = name or out.name
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise VisdialLGError(f"sha256 for {name} must be 64 hex digits, got {sha256!r}")
    if urlsplit(url).scheme not in ("http", "https", "file"):
        raise DownloadError(f"{url}: only http://, https:// and file:// URLs are supported")
    expected = _expectation(sha256, size, lock, name)
    if expected.sha256 is None and lock is None:
        _say(f"no sha256 and no lock file for {name}: its content will not be verified")

    if out.exists():  # e.g. a rerun after the lock entry was lost: verify, never re-fetch over it
        digest = _verify_existing(out, expected)
    else:
        digest = _fetch(url, out, part, expected, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
                        progress=progress)

    if expected.sha256 is None and lock is not None:
        size = (out if out.exists() else part).stat().st_size
        recorded = record_in_lock(lock, name, sha256=digest, size=size, url=url)
        if (recorded["sha256"], recorded["size"]) != (digest, size):  # another job pinned it meanwhile
            _discard(part, _PartHash())
            raise ChecksumError(f"{url}: sha256 {digest} does not match {recorded['sha256']} recorded in {lock}")
        _say(f"recorded sha256 {digest} of {name} in {lock} (trust on first use; later downloads must match it)")
    if not out.exists():
        os.replace(part, out)
        _origin_path(part).unlink(missing_ok=True)
    return digest
