"""LR schedule (paper §4.1 as configured) and LTMI's optimiser details."""

import io
import math

import pytest
import torch
from torch import nn

from visdial_lg.core.config import TrainConfig
from visdial_lg.training.optim import LTMIAdam, build_optimizer, build_scheduler, lr_at, weight_decay_groups

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


def _release_adam(p, grads, lrs, b1=0.9, b2=0.997, eps=1e-9, wd=0.0):
    """LTMI's released update, element by element in plain Python floats."""
    p, m, v = list(p), [0.0] * len(p), [0.0] * len(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i in range(len(p)):
            p[i] -= wd * lr * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            p[i] -= step_size * m[i] / (math.sqrt(v[i]) + eps)
    return p


# gradients from 0.3 down to below eps: the small ones are where eps's placement matters
GRADS = [[0.3, -2e-8, 5e-9, 1e-6], [-0.1, -1e-8, 0.0, 2e-6], [0.2, 3e-8, -5e-9, -1e-6]]
LRS = [1e-3, 5e-4, 2e-3]  # the scheduled lr changes between steps; the decay follows it
P0 = [0.5, -1.0, 2.0, 0.25]


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no_decay", "decay"])  # 0.1: a sharp check of the decay
def test_ltmi_adam_matches_the_release_update_by_hand(wd, foreach):
    w = nn.Parameter(torch.tensor(P0, dtype=torch.float64))
    opt = LTMIAdam([w], lr=LRS[0], betas=(0.9, 0.997), eps=1e-9, weight_decay=wd, foreach=foreach)
    for g, lr in zip(GRADS, LRS):
        opt.param_groups[0]["lr"] = lr
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    want = torch.tensor(_release_adam(P0, GRADS, LRS, wd=wd), dtype=torch.float64)
    torch.testing.assert_close(w.detach(), want, rtol=1e-13, atol=0)
    assert opt.state[w]["step"] == 3
    if wd:  # decoupled: the decayed run is not the undecayed one
        assert not torch.allclose(want, torch.tensor(_release_adam(P0, GRADS, LRS), dtype=torch.float64))


def test_build_optimizer_is_ltmi_adam_with_the_config_and_both_groups():
    cfg = TrainConfig.from_dict({"weight_decay": 0.1}, "train")
    lin = nn.Linear(2, 2, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.25]]))
        lin.bias.copy_(torch.tensor([0.5, -1.0]))
    opt = build_optimizer(lin, cfg, torch.device("cpu"))
    assert isinstance(opt, LTMIAdam) and not opt.param_groups[0]["foreach"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert {(g["betas"], g["eps"]) for g in opt.param_groups} == {((0.9, 0.997), 1e-9)}
    for g, lr in zip(GRADS, LRS):
        for group in opt.param_groups:
            group["lr"] = lr
        lin.weight.grad = torch.tensor(g, dtype=torch.float64).view(2, 2)
        lin.bias.grad = torch.tensor(g[:2], dtype=torch.float64)
        opt.step()
    torch.testing.assert_close(lin.weight.detach().flatten(),
                               torch.tensor(_release_adam(P0, GRADS, LRS, wd=0.1), dtype=torch.float64))
    torch.testing.assert_close(lin.bias.detach(),  # the bias is never decayed
                               torch.tensor(_release_adam(P0[:2], [g[:2] for g in GRADS], LRS), dtype=torch.float64))


def test_effective_eps_is_larger_than_adamws_early_on():
    """The release adds eps to sqrt(v), not sqrt(v_hat): AdamW with eps / sqrt(1 - b2**t)."""
    b1, b2, eps, lr, g = 0.9, 0.997, 1e-9, 1e-3, 1e-8
    # step 1 by hand: m = (1-b1) g, v = (1-b2) g^2
    ltmi_step = lr * math.sqrt(1 - b2) / (1 - b1) * (1 - b1) * g / (math.sqrt(1 - b2) * g + eps)
    adamw_step = lr * g / (g + eps)
    assert ltmi_step == pytest.approx(0.35387 * lr, rel=1e-4)  # a third of AdamW's step...
    assert adamw_step == pytest.approx(0.90909 * lr, rel=1e-4)
    assert 1 / math.sqrt(1 - b2) == pytest.approx(18.257, rel=1e-4)  # ...as its eps is 18.3x larger

    def run(make, steps):
        w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = make([w])
        for _ in range(steps):
            w.grad = torch.full((1,), g, dtype=torch.float64)
            opt.step()
        return -w.detach().item()

    ltmi = run(lambda ps: LTMIAdam(ps, lr=lr, betas=(b1, b2), eps=eps), 1)
    assert ltmi == pytest.approx(ltmi_step, rel=1e-12)
    assert run(lambda ps: torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0), 1) \
        == pytest.approx(adamw_step, rel=1e-12)
    scaled = run(lambda ps: torch.optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps / math.sqrt(1 - b2),
                                              weight_decay=0), 1)
    assert scaled == pytest.approx(ltmi, rel=1e-12)  # AdamW with the step-1 effective eps is the same


def test_ltmi_adam_state_dict_resumes_bit_exact_and_skips_params_without_grad():
    torch.manual_seed(0)
    a, unused = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(2))
    opt = LTMIAdam([{"params": [a], "weight_decay": 1e-2}, {"params": [unused], "weight_decay": 0.0}])
    grads = [torch.randn(3, 4) for _ in range(4)]
    for g in grads[:2]:
        a.grad = g.clone()
        opt.step()
    before = unused.detach().clone()
    assert unused not in opt.state and torch.equal(unused.detach(), before)  # no grad: no step, no decay
    buffer = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "a": a.detach().clone()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    b = nn.Parameter(saved["a"])
    opt2 = LTMIAdam([{"params": [b], "weight_decay": 0.5}, {"params": [nn.Parameter(torch.zeros(2))]}])
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["weight_decay"] == 1e-2 and opt2.state[b]["step"] == 2
    for g in grads[2:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    assert torch.equal(a.detach(), b.detach())
