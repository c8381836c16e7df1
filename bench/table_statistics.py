"""What the statistics add to the tables stage (issue goal: under 10 s on the demo).

Renders the seven tables and `significance.csv` of a finished pipeline folder from its
evaluation files, once without intervals (`bootstrap_samples` 0) and once with them, and
prints one JSON object: seconds per table and for the significance tests (wall and CPU),
in this process (the Snakemake jobs add their interpreter start, the same either way).

    .venv/bin/python bench/table_statistics.py --dir demo --seeds 0,1,2 [--samples 1000] > stats.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from visdial_lg.evaluation.human import table7_rows  # noqa: E402
from visdial_lg.report.significance import significance_frame, significance_inputs  # noqa: E402
from visdial_lg.report.tables import TABLES, Statistics, render_table, table_inputs, write_csv  # noqa: E402


def timed(work) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}


def render_all(versions: tuple[str, ...], seeds: tuple[int, ...], stats: Statistics, out: Path) -> dict:
    times = {}
    for n in TABLES:
        inputs = [Path(p) for p in table_inputs(n, versions, seeds)]
        human = table7_rows(inputs[1], None, inputs[0]) if n == 7 else None
        times[f"table{n}"] = timed(lambda: write_csv(render_table(n, inputs, "demo", human_rows=human,
                                                                  versions=versions, stats=stats),
                                                     out / f"table{n}.csv"))
    inputs = [Path(p) for p in significance_inputs(versions, seeds)]
    times["significance"] = timed(lambda: write_csv(significance_frame(inputs, versions, stats),
                                                    out / "significance.csv"))
    times["total_wall_s"] = round(sum(t["wall_s"] for t in times.values()), 3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="demo", type=Path, help="a finished pipeline folder (holds results/)")
    parser.add_argument("--versions", default="v0.9,v1.0")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--samples", type=int, default=1000, help="statistics.bootstrap_samples")
    args = parser.parse_args()
    versions = tuple(args.versions.split(","))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    os.chdir(args.dir)  # the result paths are relative to the pipeline's folder
    with tempfile.TemporaryDirectory() as tmp:
        without = render_all(versions, seeds, Statistics(0), Path(tmp))
        with_statistics = render_all(versions, seeds, Statistics(args.samples), Path(tmp))
    print(json.dumps({"dir": str(args.dir), "versions": versions, "seeds": seeds, "bootstrap_samples": args.samples,
                      "cpus": os.cpu_count(), "without_statistics": without, "with_statistics": with_statistics,
                      "added_wall_s": round(with_statistics["total_wall_s"] - without["total_wall_s"], 3)},
                     indent=1))


if __name__ == "__main__":
    main()
