"""Fast reading of VisDial JSON: the `answer_options` arrays parsed by numpy, the rest by `json`.

The option arrays are ~80% of a VisDial file (123M integers in v1.0 train); `json.load`
turns each into a Python int (~27 s CPU, ~7 GB). Here they are cut out of the raw
bytes with one regular expression, parsed by `np.fromstring` into one [N, 100]
array in document order, and replaced by a placeholder before `json.loads` reads
the remaining ~15%. (~10 s, ~3.5 GB for v1.0 train.)

This is only a fast path: anything unusual (a non-integer, a wrong count, JSON
that does not parse) makes it return None, and the caller reads the file with
plain `json.load`, which gives the exact error (with line and column). One
leniency: integers with leading zeros (`007`, invalid JSON) are read as numbers.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

PLACEHOLDER = 0  # what `answer_options` holds in the parsed JSON on the fast path
NUM_OPTIONS = 100
_OPTIONS = re.compile(rb'"answer_options"\s*:\s*\[([^\]]*)\]')
_INTEGER_TEXT = b"0123456789-, \t\r\n"  # all an array of JSON integers may hold (JSON whitespace)


def read_with_options(path: str | Path) -> tuple[Any, np.ndarray] | None:
    """(parsed JSON with placeholders, options [N, 100] int64 in document order), or None."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    commas: list[int] = []

    def groups():
        for match in _OPTIONS.finditer(raw):
            group = match.group(1)
            commas.append(group.count(b","))
            yield group

    joined = b",".join(groups())
    if not commas or any(c != NUM_OPTIONS - 1 for c in commas) or joined.translate(None, _INTEGER_TEXT):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (not raises) on text it cannot read to the end
            options = np.fromstring(joined, dtype=np.int64, sep=",")  # [N * 100]
    except (ValueError, Warning):
        return None
    del joined
    if options.size != NUM_OPTIONS * len(commas):
        return None
    rest = _OPTIONS.sub(b'"answer_options": %d' % PLACEHOLDER, raw)
    del raw
    try:
        data = json.loads(rest)
    except (ValueError, UnicodeDecodeError):
        return None
    return data, options.reshape(len(commas), NUM_OPTIONS)
