"""Checks of a rendered paper table shared by the table tests and the micro pipeline's tests."""

from __future__ import annotations

import math

from visdial_lg.report.tables import ROWS, paper_tables

# The reproduced rows of each table, in order.
LABELS = {n: [label for label, _ in rows] for n, rows in ROWS.items()}
LABELS[3] = ["LTMI", "Random"]
LABELS[7] = ["Method 1 (M1)", "Method 2 (M2)"]


def _number(text: str) -> float | None:
    return float(text) if text else None


def assert_table_matches_paper(rows: list[list[str]], n: int, dataset: str) -> None:
    """A rendered table: the paper's columns, its cited rows with their numbers, then the
    reproduced rows of ROWS, marked with `dataset`, every value finite and in its range
    (percent in [0, 100], Mean in [1, 100]). Also used on the micro pipeline's CSVs."""
    table = paper_tables()[f"table{n}"]
    assert rows[0] == ["model", "source", *table["columns"], "note"], n
    cited = [r for r in rows[1:] if r[1] == "paper"]
    assert [r[0] for r in cited] == [r[0] for r in table["rows"]], n
    for row, paper in zip(cited, table["rows"]):
        assert [_number(v) for v in row[2:-1]] == paper[1:], row[0]
    reproduced = rows[1 + len(cited):]
    assert [r[0] for r in reproduced] == LABELS[n] and all(r[1] == dataset for r in reproduced), n
    for row in reproduced:
        for column, text in zip(rows[0][2:-1], row[2:-1]):
            if not text:
                continue
            value = float(text)
            assert math.isfinite(value), (n, row[0], column)
            low = 1.0 if column.endswith("Mean") else 0.0
            assert low <= value <= 100.0, (n, row[0], column, value)
