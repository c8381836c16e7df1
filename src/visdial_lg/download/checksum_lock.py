"""The checksum lock file: trust on first use for sources without a published sha256.

`resources/checksums.lock` is JSON, `{name: {sha256, size, url, recorded}}`. The first
verified download of a source records its entry; every later download of that
name must match it. Entries are only ever added, under an exclusive `flock`, and
the file is replaced atomically, so parallel download jobs cannot lose an entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..core.errors import InputFormatError
from ..core.files import read_json


@contextmanager
def _exclusive(lock: Path):
    """Serialise read-modify-write of the lock file between parallel download jobs."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock.with_name(lock.name + ".flock"), "a") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard.fileno(), fcntl.LOCK_UN)


def read_lock(lock: Path) -> dict:
    """The lock file's entries {name: {sha256, size, url, recorded}}; {} when it does not exist."""
    if not lock.exists():
        return {}
    entries = read_json(lock, "checksum lock file")
    if not isinstance(entries, dict):
        raise InputFormatError(f"{lock}: expected a JSON object keyed by source name")
    for name, entry in entries.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            and isinstance(entry.get("size"), int)
        ):
            raise InputFormatError(f"{lock}: entry {name!r} needs a lower-case hex 'sha256' and an integer 'size'")
    return entries


def record_in_lock(lock: Path, name: str, *, sha256: str, size: int, url: str) -> dict:
    """Record `name` in the lock file (atomically) unless it is there already; returns the
    entry the lock file holds afterwards (the caller compares it with what it recorded)."""
    with _exclusive(lock):
        entries = read_lock(lock)
        if name in entries:  # recorded by a parallel job: never overwritten
            return entries[name]
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries[name] = {"sha256": sha256, "size": size, "url": url, "recorded": stamp}
        tmp = lock.with_name(lock.name + ".tmp")
        tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, lock)
        return entries[name]
