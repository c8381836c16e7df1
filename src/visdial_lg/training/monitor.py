"""Loss bookkeeping without per-step host syncs, non-finite detection, log.csv + TensorBoard."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..core.errors import VisdialLGError
from .distributed import DistContext, all_reduce_

# Losses a model may return (VisualDialogModel.forward); absent ones stay empty in log.csv.
LOSS_KEYS = ("loss", "disc_loss", "gen_loss", "ground_loss")
CSV_COLUMNS = ("epoch", "step", "global_step", "lr", *LOSS_KEYS, "dialogs_per_s")
_NO_STEP = 2**62


class NonFiniteLossError(VisdialLGError):
    """The training loss became NaN/inf; the run stops, the last good checkpoint is kept."""


class LossTracker:
    """Sums losses on the device between log points; `flush` is the only host sync."""

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()
        self._clock = time.perf_counter()

    def restart_clock(self) -> None:
        """Exclude pauses (checkpoint writes, loader start-up) from the next dialogs/s."""
        self._clock = time.perf_counter()

    def _reset(self) -> None:
        self.sums = torch.zeros(len(LOSS_KEYS), dtype=torch.float64, device=self.device)  # [L]
        self.present = [False] * len(LOSS_KEYS)
        self.first_bad = torch.full((), _NO_STEP, dtype=torch.int64, device=self.device)
        self.steps = 0
        self.dialogs = 0

    def add(self, out: dict, global_step: int, dialogs: int) -> None:
        for i, key in enumerate(LOSS_KEYS):
            if key in out:
                self.sums[i] += out[key].detach().double()
                self.present[i] = True
        bad = ~torch.isfinite(out["loss"].detach())
        self.first_bad = torch.minimum(self.first_bad, torch.where(bad, global_step, _NO_STEP))
        self.steps += 1
        self.dialogs += dialogs

    def flush(self, ctx: DistContext) -> tuple[dict[str, float], float, int | None]:
        """Mean losses over all ranks since the last flush, dialogs/s, first non-finite global step."""
        counts = torch.tensor([self.steps, self.dialogs], dtype=torch.float64, device=self.device)
        totals = all_reduce_(torch.cat([self.sums, counts]), ctx).tolist()
        first_bad = int(all_reduce_(self.first_bad.clone(), ctx, op=dist.ReduceOp.MIN).item())
        now = time.perf_counter()
        steps_all_ranks, dialogs = totals[-2], totals[-1]
        means = {k: totals[i] / max(steps_all_ranks, 1) for i, k in enumerate(LOSS_KEYS) if self.present[i]}
        rate = dialogs / max(now - self._clock, 1e-9)
        self._clock = now
        self._reset()
        return means, rate, (None if first_bad == _NO_STEP else first_bad)


class RunLog:
    """`log.csv` and TensorBoard events of rank 0; on resume, rows past the checkpoint are dropped."""

    def __init__(self, out_dir: Path, completed_epochs: int, global_step: int):
        self.csv_path = out_dir / "log.csv"
        self._truncate(completed_epochs)
        new = not self.csv_path.exists()
        self._file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=CSV_COLUMNS)
        if new:
            self._csv.writeheader()
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events of a killed epoch that are newer than the checkpoint.
        self.tb = SummaryWriter(log_dir=str(out_dir / "tb"), purge_step=global_step or None)

    def _truncate(self, completed_epochs: int) -> None:
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit()]
        keep = [r for r in rows if int(r["epoch"]) <= completed_epochs]
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(keep)
        os.replace(tmp, self.csv_path)

    def write(self, epoch: int, step: int, global_step: int, lr: float, losses: dict, rate: float) -> None:
        row = {"epoch": epoch, "step": step, "global_step": global_step, "lr": f"{lr:.6g}",
               "dialogs_per_s": f"{rate:.2f}"}
        row.update({k: f"{v:.6f}" for k, v in losses.items()})
        self._csv.writerow(row)
        self._file.flush()
        for key, value in losses.items():
            self.tb.add_scalar(f"train/{key}", value, global_step)
        self.tb.add_scalar("train/lr", lr, global_step)
        self.tb.add_scalar("train/dialogs_per_s", rate, global_step)

    def close(self) -> None:
        self._file.close()
        self.tb.close()
