"""Optimiser and learning-rate schedule (paper §4.1, LTMI's Adam details).

Schedule, per iteration (0-based epoch ``e``, fractional progress ``p = e + i/N``):

* warm-up while ``p < warmup_epochs``: ``lr = lr0 * (f + (1 - f) * p / warmup_epochs)``
  with ``f = warmup_factor`` (Goyal et al. 2017, as LTMI's LinearLR);
* then step decay: ``lr = max(lr0 * decay_factor ** (e // decay_every), min_lr)``.

"The learning rate is decreased by 1/4 for every 2 epochs" is read as ``lr *= 0.75``
every 2 epochs (epochs 0-1 at lr0, 2-3 at 0.75 lr0, ...): docs/training.md.

Optimiser: `LTMIAdam`, the Adam update of LTMI's release (the older PyTorch
formulation, with decoupled weight decay), not `torch.optim.AdamW`: see its docstring.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from ..core.config import TrainConfig


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


class LTMIAdam(torch.optim.Optimizer):
    r"""Adam exactly as LTMI's release updates a parameter ``p`` with gradient ``g``.

    Per parameter, at its own step ``t`` (1, 2, ...; a step without a gradient skips it)::

        p   <- p * (1 - lr * wd)                        # decoupled decay, before the Adam step
        m   <- b1 * m + (1 - b1) * g
        v   <- b2 * v + (1 - b2) * g * g
        p   <- p - lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)

    ``eps`` is added to ``sqrt(v)``, the *uncorrected* second moment (older PyTorch Adam).
    This equals ``lr * m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2**t))``, i.e. AdamW with
    an effective eps ``1/sqrt(1 - b2**t)`` times larger: with b2 = 0.997 18.3x at t = 1,
    1.96x at t = 100, 1.03x at t = 1,000, 1.000005x after one v1.0 epoch (3,853 steps).
    `torch.optim.AdamW` adds eps to ``sqrt(v_hat)`` instead; a step then differs by
    about ``(eps_eff - eps) / sqrt(v_hat)`` relative, 1.7e-8 / |g| at t = 1.

    State per parameter: ``step`` (a Python int), ``exp_avg``, ``exp_avg_sq``, the
    names torch's Adam uses, so `state_dict` round-trips through `torch.save`.
    ``foreach`` (default: when every parameter of a group is on CUDA) runs the update
    as a few multi-tensor kernels per group, device and dtype instead of a loop.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.997), eps: float = 1e-9,
                 weight_decay: float = 0.0, foreach: bool | None = None):
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas {betas}")
        if not eps >= 0.0 or not weight_decay >= 0.0:
            raise ValueError(f"invalid eps {eps} or weight_decay {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LTMIAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            update = _ltmi_adam_foreach if foreach else _ltmi_adam_loop
            update(params, grads, exp_avgs, exp_avg_sqs, steps, lr=group["lr"], betas=group["betas"],
                   eps=group["eps"], weight_decay=group["weight_decay"])
        return loss


def _step_size(lr: float, beta1: float, beta2: float, t: int) -> float:
    return lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)


def _ltmi_adam_loop(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        if weight_decay:
            p.mul_(1.0 - lr * weight_decay)
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        p.addcdiv_(m, v.sqrt().add_(eps), value=-_step_size(lr, beta1, beta2, t))


def _ltmi_adam_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    buckets = defaultdict(list)  # multi-tensor kernels need one device and dtype
    for i, p in enumerate(params):
        buckets[(p.device, p.dtype)].append(i)
    for idx in buckets.values():
        ps, gs = [params[i] for i in idx], [grads[i] for i in idx]
        ms, vs = [exp_avgs[i] for i in idx], [exp_avg_sqs[i] for i in idx]
        if weight_decay:
            torch._foreach_mul_(ps, 1.0 - lr * weight_decay)
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, gs, alpha=1.0 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, gs, gs, value=1.0 - beta2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(ps, ms, denom, [-_step_size(lr, beta1, beta2, steps[i]) for i in idx])


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """LTMI's Adam (`LTMIAdam`) over the decay / no-decay groups; multi-tensor kernels on CUDA."""
    return LTMIAdam(
        weight_decay_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        foreach=device.type == "cuda",
    )
