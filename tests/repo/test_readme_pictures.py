"""The README shows what `make screenshots` saved (docs/images/): the chat transcript in the
README is the one the chat test wrote, so a retaken transcript cannot silently leave an old one."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readmes_chat_transcript_is_the_saved_one():
    saved = (REPO / "docs/images/chat.txt").read_text().rstrip("\n")
    readme = (REPO / "README.md").read_text()
    assert f"```\n{saved}\n```" in readme, \
        "README.md's chat transcript differs from docs/images/chat.txt (make screenshots wrote it): paste it"
