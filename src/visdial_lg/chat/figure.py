"""`chat --figure`: the regions of each round, one row per round, drawn as Figure 4 draws
them (report/figures.py: the image with its top-3 boxes, the question and answer above)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from ..report.figures import draw_attention
from .regions import ImageRegions


def draw_rounds(regions: ImageRegions, rounds: list[dict], model: str, run: str, out: str | Path) -> Path:
    """`rounds`: DialogSession.ask's results. Each row is one Figure 4 panel, titled by the run's
    model ("ltmi": LTMI, an LG model: LTMI-LG); the rows are stacked into the PNG `out`."""
    if not rounds:
        raise ValueError("draw_rounds needs at least one round")
    out = Path(out)
    name = "ltmi" if model == "ltmi" else "lg"
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for r in rounds:
            answer = r["generated"] if r["generated"] is not None else r["retrieved"][0]["answer"]
            panel = Path(tmp) / f"round_{r['round']}.png"
            draw_attention(regions.path, regions.boxes, (float(regions.width), float(regions.height)),
                            {name: [(g["region"], g["weight"]) for g in r["regions"]]},
                            f"Q{r['round']}: {r['question']}   A: {answer}", f"{run}, {regions.path.name}", panel)
            with Image.open(panel) as png:
                rows.append(png.convert("RGB"))
    figure = Image.new("RGB", (max(row.width for row in rows), sum(row.height for row in rows)), "white")
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    figure.save(tmp)
    tmp.replace(out)
    return out
