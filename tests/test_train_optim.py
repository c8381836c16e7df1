"""LR schedule (paper §4.1 as configured) and LTMI's optimiser details."""

import pytest
import torch
from torch import nn

from visdial_lg.config import TrainConfig
from visdial_lg.training.optim import build_optimizer, build_scheduler, lr_at, weight_decay_groups

PAPER = TrainConfig.from_dict({}, "train")  # schema defaults = the paper's schedule


def test_paper_schedule_at_chosen_epochs():
    steps = 100
    # Warm-up from 0.2 * lr0, linear over epoch 0 (per step).
    assert lr_at(PAPER, 0, 0, steps) == pytest.approx(2e-4)
    assert lr_at(PAPER, 0, 50, steps) == pytest.approx(6e-4)
    # "Decreased by 1/4 every 2 epochs": x0.75 at epochs 2, 4, ...; epoch 1 is at lr0.
    expected = {1: 1e-3, 2: 7.5e-4, 3: 7.5e-4, 4: 5.625e-4, 10: 1e-3 * 0.75**5, 19: 1e-3 * 0.75**9}
    for epoch, lr in expected.items():
        assert lr_at(PAPER, epoch, 0, steps) == pytest.approx(lr)
        assert lr_at(PAPER, epoch, steps - 1, steps) == pytest.approx(lr)  # constant within an epoch


def test_min_lr_floor():
    cfg = TrainConfig.from_dict({"decay_factor": 0.1, "min_lr": 1e-5}, "train")
    assert lr_at(cfg, 8, 0, 10) == pytest.approx(1e-5)


def test_fractional_warmup_and_none():
    half = TrainConfig.from_dict({"warmup_epochs": 0.5}, "train")
    assert lr_at(half, 0, 25, 100) == pytest.approx(1e-3 * (0.2 + 0.8 * 0.5))
    assert lr_at(half, 0, 50, 100) == pytest.approx(1e-3)
    none = TrainConfig.from_dict({"warmup_epochs": 0}, "train")
    assert lr_at(none, 0, 0, 100) == pytest.approx(1e-3)


def test_scheduler_follows_lr_at_every_step_and_survives_state_dict():
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, PAPER, torch.device("cpu"))
    steps = 7
    sched = build_scheduler(opt, PAPER, steps)
    seen = []
    for _ in range(5 * steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    want = [lr_at(PAPER, e, s, steps) for e in range(5) for s in range(steps)]
    assert seen == pytest.approx(want)
    # A fresh scheduler loaded from the state dict continues at the same step.
    opt2 = build_optimizer(model, PAPER, torch.device("cpu"))
    sched2 = build_scheduler(opt2, PAPER, steps)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr()[0] == pytest.approx(lr_at(PAPER, 5, 0, steps))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(5, 3)
        self.lstm = nn.LSTM(3, 3)
        self.proj = nn.Linear(3, 3)
        self.norm = nn.LayerNorm(3)


def test_weight_decay_only_on_matrices():
    net = _Net()
    decay, keep = weight_decay_groups(net, 1e-5)
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "embedding.weight", "lstm.weight_hh_l0", "lstm.weight_ih_l0", "proj.weight"]
    assert sorted(names[id(p)] for p in keep["params"]) == [
        "lstm.bias_hh_l0", "lstm.bias_ih_l0", "norm.bias", "norm.weight", "proj.bias"]
    assert decay["weight_decay"] == 1e-5 and keep["weight_decay"] == 0.0


def test_adamw_equals_ltmi_decoupled_decay_then_adam():
    """LTMI: p <- p - lr*wd*p, then a plain Adam step (beta 0.9/0.997, eps 1e-9)."""
    cfg = TrainConfig.from_dict({"weight_decay": 0.1}, "train")  # large wd makes the check sharp
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(3, 4))
    opt = build_optimizer(nn.ParameterList([w]), cfg, torch.device("cpu"))
    ref = w.detach().clone()
    m = torch.zeros_like(ref)
    v = torch.zeros_like(ref)
    (b1, b2), lr, eps, wd = cfg.betas, cfg.lr, cfg.eps, cfg.weight_decay
    for t in range(1, 4):
        grad = torch.randn(3, 4)
        w.grad = grad.clone()
        opt.step()
        ref = ref - lr * wd * ref
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        ref = ref - lr * m_hat / (v_hat.sqrt() + eps)
    torch.testing.assert_close(w.detach(), ref, rtol=1e-5, atol=1e-7)
