"""Optimiser and learning-rate schedule (paper §4.1, LTMI's Adam details).

Schedule, per iteration (0-based epoch ``e``, fractional progress ``p = e + i/N``):

* warm-up while ``p < warmup_epochs``: ``lr = lr0 * (f + (1 - f) * p / warmup_epochs)``
  with ``f = warmup_factor`` (Goyal et al. 2017, as LTMI's LinearLR);
* then step decay: ``lr = max(lr0 * decay_factor ** (e // decay_every), min_lr)``.

"The learning rate is decreased by 1/4 for every 2 epochs" is read as ``lr *= 0.75``
every 2 epochs (epochs 0-1 at lr0, 2-3 at 0.75 lr0, ...): docs/training.md.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig


def lr_at(cfg: TrainConfig, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """The learning rate of one optimiser step."""
    progress = epoch + step_in_epoch / max(steps_per_epoch, 1)
    if progress < cfg.warmup_epochs:
        alpha = progress / cfg.warmup_epochs
        return cfg.lr * (cfg.warmup_factor + (1.0 - cfg.warmup_factor) * alpha)
    return max(cfg.lr * cfg.decay_factor ** (epoch // cfg.decay_every), cfg.min_lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A LambdaLR over the global step; `scheduler.step()` after every optimiser step."""

    def factor(global_step: int) -> float:
        epoch, step = divmod(global_step, steps_per_epoch)
        return lr_at(cfg, epoch, step, steps_per_epoch) / cfg.lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """LTMI decays only matrices (dim > 1); biases and LayerNorm parameters never."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, keep = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() > 1 and id(p) not in no_decay and not name.endswith("bias"):
            decay.append(p)
        else:
            keep.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW == LTMI's Adam with decoupled decay (p -= lr*wd*p, then the Adam step)."""
    return torch.optim.AdamW(
        weight_decay_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        fused=device.type == "cuda",
    )
