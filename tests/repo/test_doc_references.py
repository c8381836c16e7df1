"""The repository stands on its own: every document it cites is one of its files.

Every text file git knows of (tracked, or untracked and not ignored; binaries
skipped) is scanned for

* citations of documents that are not in the repository: design-note sections
  (`DESIGN` with a section sign or `.md`), files under a `reference/` folder,
  `ref`/`reference` followed by a section sign, a `shared` folder beside or above
  the checkout, the paper's text file (cite the paper by name and section instead);
* paths of documentation files that name no file of the repository: `docs/….md`,
  `README.md`, any `dir/….md` whose first folder is one of the repository's
  (outputs such as `results/tables.md` are not: `results/` holds no tracked file),
  and the target of every Markdown link `[text](target)` in a `.md` file, resolved
  from that file's folder;
* `#anchors` of such references to a Markdown file that none of its headings gives
  (GitHub's slugs: lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`, …
  for repeats).

Bare names without a folder (`tables.md`) are not checked, except `README.md`: in
prose and code they are mostly output files. A line containing
`doc-references: ignore` is skipped (code that names these strings to look for
them); this file, the checker itself, is not scanned.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SELF = "tests/repo/test_doc_references.py"
IGNORE_MARK = "doc-references: ignore"

OUTSIDE = [  # (pattern, why)
    (re.compile(r"\bDESIGN(?:\.md\b|\s*§|\s+section)"), "cites the design notes, which are not in the repository"),
    (re.compile(r"\b(?:ref|reference)\.?\s*§"), "cites a reference section, which is not in the repository"),
    (re.compile(r"(?<![\w./-])reference/[\w.-]+"), "cites a reference file, which is not in the repository"),
    (re.compile(r"(?<![\w.])\.\./shared\b|/work/shared\b"), "points outside the checkout"),
    (re.compile(r"(?<![\w./-])(?:\.\./)?paper/[\w.-]+\.(?:txt|pdf)\b"), "cites the paper's text file; cite the paper by name"),
]
DOC_PATH = re.compile(r"(?<![\w./:@{-])((?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]*)?(?![\w/-])")
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def slug(text: str) -> str:
    """GitHub's anchor for a heading's text (as github-slugger computes it)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor the headings of a Markdown text give (code fences skipped)."""
    seen: dict[str, int] = {}
    fence = None
    for line in markdown.splitlines():
        m = FENCE.match(line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        h = None if fence else HEADING.match(line)
        if h:
            base = slug(h.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            if n:
                seen.setdefault(f"{base}-{n}", 1)
    return set(seen)


def problems(files: dict[str, str], binaries: frozenset[str] = frozenset()) -> list[str]:
    """'path:line: reference: why' for every bad reference in `files` (repo path -> text);
    `binaries`: the other files of the repository (pictures), which references may name too."""
    top_dirs = {p.split("/", 1)[0] for p in files if "/" in p}
    known = set(files) | set(binaries) | {d for p in files for d in _parents(p)}
    cache: dict[str, set[str]] = {}

    def anchor_problem(target: str, anchor: str) -> str | None:
        if not anchor or not target.endswith(".md") or target not in files:
            return None
        if target not in cache:
            cache[target] = anchors(files[target])
        return None if anchor in cache[target] else f"no heading of {target} has the anchor #{anchor}"

    found = []
    for path in sorted(files):
        here = posixpath.dirname(path)
        for number, line in enumerate(files[path].splitlines(), 1):
            if IGNORE_MARK in line:
                continue
            where = f"{path}:{number}"
            for pattern, why in OUTSIDE:
                found += [f"{where}: {m.group(0)!r}: {why}" for m in pattern.finditer(line)]
            for m in DOC_PATH.finditer(line):
                ref, anchor = m.group(1), (m.group(2) or "#")[1:]
                first = ref.split("/", 1)[0]
                if "/" not in ref and ref != "README.md":
                    continue  # a bare name: mostly output files
                if "/" in ref and first not in top_dirs and first not in (".", ".."):
                    continue  # not a folder of the repository (results/, resources/, reference/ above)
                target = _resolve(ref, here, known)
                if target is None:
                    found.append(f"{where}: {m.group(0)!r}: no such file in the repository")
                elif why := anchor_problem(target, anchor):
                    found.append(f"{where}: {m.group(0)!r}: {why}")
            if not path.endswith(".md"):
                continue
            for m in MD_LINK.finditer(line):
                link = m.group(1)
                if re.match(r"[a-zA-Z][\w+.-]*:", link):
                    continue  # a URL (https:, mailto:, ...)
                ref, _, anchor = link.partition("#")
                target = path if not ref else _resolve(ref, here, known, root_too=False)
                if target is None:
                    found.append(f"{where}: link {link!r}: no such file in the repository")
                elif why := anchor_problem(target, anchor):
                    found.append(f"{where}: link {link!r}: {why}")
    return found


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _resolve(ref: str, here: str, known: set[str], root_too: bool = True) -> str | None:
    """The repository path `ref` names, read from the citing file's folder or (prose
    paths such as `docs/formats.md`) from the repository root; None if neither exists."""
    candidates = [posixpath.normpath(posixpath.join(here, ref))]
    if root_too:
        candidates.append(posixpath.normpath(ref))
    return next((c for c in candidates if c.rstrip("/") in known), None)


def _repo_text_files() -> tuple[dict[str, str], frozenset[str]]:
    """The repository's text files (path -> text) and its other files' paths."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files, binaries = {}, set()
    for name in sorted(set(filter(None, listed)) - {SELF}):
        path = REPO / name
        if not path.is_file() or path.is_symlink():
            continue  # deleted in the working tree, or a link
        data = path.read_bytes()
        try:
            if b"\0" in data[:8192]:
                raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "binary")
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            binaries.add(name)
    return files, frozenset(binaries)


def test_every_cited_document_is_in_the_repository():
    files, binaries = _repo_text_files()
    assert "README.md" in files and any(p.startswith("docs/") for p in files), sorted(files)[:10]
    found = problems(files, binaries)
    assert not found, f"{len(found)} reference(s) to documents outside the repository or missing:\n" + "\n".join(found)


# The bad references of the checker's own test, assembled from parts so that no line of this
# file reads as a citation to a grep for them.
_NOTES, _REF_FILE, _SHARED = "DES" + "IGN §", "refer" + "ence/ltmi.md", "../" + "shared"


def test_the_checker_finds_each_kind_of_bad_reference():
    files = {
        "README.md": "# Read first\n\nSee `docs/model.md` and `docs/gone.md`, [here](docs/model.md#grounding).\n",
        "docs/model.md": (
            "# The models\n\n## Grounding\n\n## Grounding\n\n```\n# not a heading\n```\n"
            "[up](../README.md#read-first) [twice](#grounding-1) [nope](#not-a-heading) [web](https://x.org/a.md)\n"
        ),
        "src/pkg/mod.py": (
            f'"""See {_NOTES}4 and {_REF_FILE} §1.2 (ref §1.8), {_SHARED}/x."""\n'
            "# docs/model.md#grounding docs/model.md#missing results/tables.md tables.md\n"
            'CHECKED = ("DESIGN", "reference/")  # doc-references: ignore\n'
        ),
    }
    found = problems(files)
    expected = [
        "README.md:3: 'docs/gone.md': no such file",
        "docs/model.md:10: link '#not-a-heading': no heading of docs/model.md",
        f"src/pkg/mod.py:1: '{_NOTES}'",
        "src/pkg/mod.py:1: 'ref §'",
        f"src/pkg/mod.py:1: '{_REF_FILE}'",
        f"src/pkg/mod.py:1: '{_SHARED}'",
        "src/pkg/mod.py:2: 'docs/model.md#missing': no heading of docs/model.md has the anchor #missing",
    ]
    for start in expected:
        assert sum(f.startswith(start) for f in found) == 1, (start, found)
    assert len(found) == len(expected), found


def test_github_slugs():
    assert slug("LTMI release: training") == "ltmi-release-training"
    assert slug("VisDial JSON (input; upstream facts in `docs/upstream.md`)") == "visdial-json-input-upstream-facts-in-docsupstreammd"
    assert slug("The released code's quirks, decided") == "the-released-codes-quirks-decided"
    assert slug("Parameter counts (V = 11,322, d = 512, 2 blocks)") == "parameter-counts-v--11322-d--512-2-blocks"
    assert anchors("# A\n## A\n### A\n") == {"a", "a-1", "a-2"}
