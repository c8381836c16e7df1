"""Checks of a rendered paper table shared by the table tests and the micro pipeline's tests."""

from __future__ import annotations

import math

from visdial_lg.report.tables import HI, LO, ROWS, STD, paper_tables

STATISTICS = (STD, LO, HI)  # suffixes of a metric's statistics columns

# The reproduced rows of each table, in order.
LABELS = {n: [label for label, _ in rows] for n, rows in ROWS.items()}
LABELS[3] = ["LTMI", "Random"]
LABELS[7] = ["Method 1 (M1)", "Method 2 (M2)"]


def _number(text: str) -> float | None:
    return float(text) if text else None


def assert_table_matches_paper(rows: list[list[str]], n: int, dataset: str) -> None:
    """A rendered table: the paper's columns (each maybe followed by its statistics columns
    `_std`, `_lo`, `_hi`), its cited rows with their numbers, then the reproduced rows of ROWS,
    marked with `dataset`, every value finite and in its range (percent in [0, 100], Mean in
    [1, 100]) and inside its interval. Also used on the micro pipeline's CSVs."""
    table = paper_tables()[f"table{n}"]
    header = rows[0]
    base = [i for i, c in enumerate(header) if not c.endswith(STATISTICS)]
    assert [header[i] for i in base] == ["model", "source", *table["columns"], "note"], n
    for i, column in enumerate(header):
        if column.endswith(STATISTICS):
            assert column.rsplit("_", 1)[0] in table["columns"], (n, column)
    rows = [rows[0]] + [[row[i] for i in base] + [dict(zip(header, row))] for row in rows[1:]]
    cited = [r for r in rows[1:] if r[1] == "paper"]
    assert [r[0] for r in cited] == [r[0] for r in table["rows"]], n
    for row, paper in zip(cited, table["rows"]):
        assert [_number(v) for v in row[2:-2]] == paper[1:], row[0]
        assert not any(v for k, v in row[-1].items() if k.endswith(STATISTICS)), row[0]  # no interval
    reproduced = rows[1 + len(cited):]
    assert [r[0] for r in reproduced] == LABELS[n] and all(r[1] == dataset for r in reproduced), n
    for row in reproduced:
        cells = row[-1]
        for column in table["columns"]:
            text = cells[column]
            if not text:
                continue
            value = float(text)
            assert math.isfinite(value), (n, row[0], column)
            low = 1.0 if column.endswith("Mean") else 0.0
            assert low <= value <= 100.0, (n, row[0], column, value)
            if cells.get(column + "_lo"):  # two decimals each: a rounding's slack
                assert float(cells[column + "_lo"]) - 0.01 <= value <= float(cells[column + "_hi"]) + 0.01, \
                    (n, row[0], column)
