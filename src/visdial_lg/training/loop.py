"""Training one run (paper §4.1; docs/training.md).

Read top to bottom: set up (devices, data, model, optimiser), resume from
`last.pt` if a compatible one exists, then one loop over epochs and batches. After
every epoch rank 0 writes `last.pt` (the resume state); after the last epoch it
writes `checkpoint.pt` (the Snakemake output) and removes `last.pt`.

Determinism: the data order is a function of (seed, epoch) through
DistributedSampler, the model is initialised from the seed, and the RNG states
are restored on resume, so on CPU a killed-and-resumed run ends with exactly the
weights of an uninterrupted one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..core.config import RESULT_NEUTRAL_KEYS, Config, TrainConfig, as_dict
from .dataset import batch_to
from ..core.errors import InputFormatError, VisdialLGError
from ..core.files import load_tensors
from ..core.runs import RunSpec, parse_run_id
from . import distributed
from .checkpoint import (
    FORMAT_VERSION, load_checkpoint, rng_state, save_atomic, seed_everything, set_rng_state,
)
from .distributed import DistContext
from .fingerprint import changed_inputs, input_fingerprint
from .monitor import LossTracker, NonFiniteLossError, RunLog
from .optim import build_optimizer, build_scheduler

RESUME_NAME = "last.pt"
FINAL_NAME = "checkpoint.pt"
# Train keys that do not change the weights: a resume state differing only in them is reused.
_NEUTRAL_TRAIN_KEYS = RESULT_NEUTRAL_KEYS["train"]


@dataclass(frozen=True)
class TrainInputs:
    tokens: Path
    features: Path
    vocab: Path
    glove: Path | None = None


def run_config(config: Config) -> dict:
    """The config sections a checkpoint stores, as plain dicts keyed by schema keys (the
    resume check compares them, `load_trained_model` rebuilds the model from them)."""
    return {name: as_dict(getattr(config, name)) for name in ("model", "lg", "train")}


def train(run_id: str, inputs: TrainInputs, out_dir: str | Path, config: Config,
          device: str | None = None, on_epoch_end: Callable[[int], None] | None = None) -> Path:
    """Train `run_id` into `out_dir`; returns the final checkpoint path.

    `on_epoch_end(completed_epochs)` runs after each epoch's resume state is written
    (tests use it to simulate a kill).
    """
    ctx = distributed.setup(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    # On CPU, the multi-threaded backward of advanced indexing accumulates in a varying
    # order; deterministic kernels make resume bit-exact at little cost.
    torch.use_deterministic_algorithms(was_deterministic or ctx.device.type == "cpu")
    try:
        return _train(parse_run_id(run_id), inputs, Path(out_dir), config, ctx, on_epoch_end)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        distributed.cleanup(ctx)


def _train(spec: RunSpec, inputs: TrainInputs, out_dir: Path, config: Config, ctx: DistContext,
           on_epoch_end: Callable[[int], None] | None) -> Path:
    # One long function on purpose: set-up, resume, the epoch loop and the final save read
    # top to bottom (module docstring); split up, the loop's state would travel in arguments.
    tcfg = config.train
    cfg = run_config(config)  # what the checkpoints store
    if tcfg.batch_size % ctx.world_size:
        raise VisdialLGError(f"train.batch_size {tcfg.batch_size} is not divisible by {ctx.world_size} processes")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.pt.tmp-*"):  # a write cut short by a kill
            stale.unlink()
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_bf16 = tcfg.precision == "bf16" and ctx.device.type == "cuda"  # CPU always trains in fp32

    vocab_size = _vocab_size(inputs)
    dataset, loader, sampler = build_loader(inputs, tcfg, ctx, spec.seed)
    steps = len(loader)

    seed_everything(spec.seed)  # the same initial weights on every rank
    model = _build_model(spec, vocab_size, config)
    if inputs.glove is not None:
        _init_embedding(model, Path(inputs.glove))
    model.to(ctx.device)
    optimizer = build_optimizer(model, tcfg, ctx.device)
    scheduler = build_scheduler(optimizer, tcfg, steps)

    fingerprint = input_fingerprint(Path(inputs.tokens), Path(inputs.vocab), Path(inputs.features),
                                    Path(inputs.glove) if inputs.glove is not None else None)
    resume_path = out_dir / RESUME_NAME
    start_epoch = _resume(resume_path, spec, cfg, vocab_size, fingerprint, model, optimizer, scheduler, ctx)
    if start_epoch == 0 and ctx.rank > 0:
        seed_everything(spec.seed + ctx.rank)  # distinct dropout masks per rank
    net = model
    if ctx.distributed:
        # find_unused_parameters: a run's heads may leave parameters out of a step's graph.
        net = DistributedDataParallel(
            model, device_ids=[ctx.device] if ctx.device.type == "cuda" else None, find_unused_parameters=True,
        )

    log_every = tcfg.log_every
    tracker = LossTracker(ctx.device)
    runlog = RunLog(out_dir, start_epoch, start_epoch * steps) if ctx.is_main else None
    if ctx.is_main:
        print(f"{spec.run_id}: {len(dataset)} dialogs, {steps} steps/epoch of {tcfg.batch_size} dialogs "
              f"on {ctx.world_size} x {ctx.device.type}, epochs {start_epoch + 1}..{tcfg.epochs}", flush=True)
    saved = start_epoch  # epochs in `resume_path`
    try:
        global_step = start_epoch * steps
        for epoch in range(start_epoch, tcfg.epochs):
            sampler.set_epoch(epoch)  # data order = f(seed, epoch)
            net.train()
            tracker.restart_clock()
            bar = tqdm(loader, desc=f"{spec.run_id} epoch {epoch + 1}/{tcfg.epochs}", unit="batch",
                       disable=not ctx.is_main, dynamic_ncols=True,
                       mininterval=1 if sys.stderr.isatty() else 30)  # a log file gets a line per 30 s
            for step, batch in enumerate(bar, 1):
                lr = optimizer.param_groups[0]["lr"]
                out = train_step(net, batch_to(batch, ctx.device, non_blocking=True), optimizer, scheduler, use_bf16)
                global_step += 1
                tracker.add(out, global_step, int(batch["image_id"].shape[0]))
                if step % log_every == 0 or step == steps:
                    losses, rate, bad_step = tracker.flush(ctx)  # the only host sync
                    if bad_step is not None:
                        raise _diverged(bad_step, steps, resume_path, epoch)
                    if runlog:
                        runlog.write(epoch + 1, step, global_step, lr, losses, rate)
                        bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{lr:.2e}", dlg_s=f"{rate:.0f}")
            rngs = distributed.gather_objects(rng_state(), ctx)  # every rank's streams, for resume
            if ctx.is_main:
                save_atomic(_state(spec, cfg, vocab_size, fingerprint, epoch + 1, model, inputs, optimizer, scheduler,
                                   rngs),
                            resume_path)
            saved = epoch + 1
            distributed.barrier(ctx)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"{resume_path} (after epoch {saved}) is kept and resumes on the next run" if saved
            else "nothing was saved yet (stopped in the first epoch): the next run starts over") from None
    finally:
        if runlog:
            runlog.close()

    final_path = out_dir / FINAL_NAME
    if ctx.is_main:
        save_atomic(_state(spec, cfg, vocab_size, fingerprint, tcfg.epochs, model, inputs), final_path)
        resume_path.unlink(missing_ok=True)  # its job is done; it is 3x the model's size
        print(f"{spec.run_id}: wrote {final_path}", flush=True)
    distributed.barrier(ctx)
    return final_path


def train_step(net: torch.nn.Module, batch: dict, optimizer, scheduler, bf16: bool) -> dict:
    """One optimiser step on a batch already on the device; returns the model's losses."""
    with torch.autocast(batch["img_feat"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(batch)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    optimizer.step()
    scheduler.step()
    return out


# --------------------------------------------------------------------------- set-up


def _vocab_size(inputs: TrainInputs) -> int:
    from ..text.vocab import Vocabulary

    size = len(Vocabulary.load(inputs.vocab))
    try:
        with h5py.File(inputs.tokens, "r") as f:
            tokens_size = f.attrs.get("vocab_size")
    except OSError as e:
        raise InputFormatError(f"cannot open tokens file {inputs.tokens}: {e}") from e
    if tokens_size is not None and int(tokens_size) != size:
        raise InputFormatError(
            f"{inputs.tokens} was tokenized with a vocabulary of {int(tokens_size)} words, "
            f"but {inputs.vocab} has {size}"
        )
    return size


def build_loader(inputs: TrainInputs, tcfg: TrainConfig, ctx: DistContext, seed: int = 0):
    """(dataset, loader, sampler) of this rank: `batch_size / world_size` dialogs a batch,
    in the order the run's training seed draws."""
    from .dataset import VisDialDataset, collate
    from ..models.ltmi import FEATURE_DIM

    dataset = VisDialDataset(inputs.tokens, inputs.features, feature_dim=FEATURE_DIM)
    # One sampler for 1 or N processes: rank r takes every N-th index of the same
    # (seed, epoch) permutation, so the global batches do not depend on N.
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=seed, drop_last=False)
    workers = tcfg.num_workers
    loader = DataLoader(
        dataset, batch_size=tcfg.batch_size // ctx.world_size, sampler=sampler, collate_fn=collate,
        num_workers=workers, pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # keeps the loader off the global RNG
    )
    return dataset, loader, sampler


def _build_model(spec: RunSpec, vocab_size: int, config: Config) -> torch.nn.Module:
    from ..models.ltmi import build_model

    return build_model(spec, vocab_size, config.model, config.lg)


def _init_embedding(model: torch.nn.Module, path: Path) -> None:
    """Overwrite the shared word embedding with the GloVe init file {"weight": [V, 300]}."""
    data = load_tensors(path, "GloVe embedding")
    weight = data.get("weight") if isinstance(data, dict) else None
    if not torch.is_tensor(weight):
        raise InputFormatError(f"cannot read GloVe embedding {path}: no 'weight' tensor in it")
    target = model.embedding.weight
    if tuple(weight.shape) != tuple(target.shape):
        raise InputFormatError(f"{path}: embedding of shape {tuple(weight.shape)}, the model needs "
                               f"{tuple(target.shape)} (vocabulary size, model.embed)")
    with torch.no_grad():
        target.copy_(weight)


# ---------------------------------------------------------------- checkpoints, resume


def _state(spec, cfg, vocab_size, fingerprint, epoch, model, inputs, optimizer=None, scheduler=None,
           rng=None) -> dict:
    state = {
        "format": FORMAT_VERSION, "run": spec.run_id, "config": cfg, "vocab_size": vocab_size,
        "fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
        "inputs": {k: (str(v) if v is not None else None) for k, v in vars(inputs).items()},
    }
    if optimizer is not None:
        state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=rng)
    return state


def _result_config(cfg: dict) -> dict:
    """The part of the config that determines the trained weights."""
    train = {k: v for k, v in cfg["train"].items() if k not in _NEUTRAL_TRAIN_KEYS}
    return {"model": cfg["model"], "lg": cfg["lg"], "train": train}


def _resume(path: Path, spec, cfg, vocab_size, fingerprint, model, optimizer, scheduler,
            ctx: DistContext) -> int:
    """Restore `last.pt` if it was written by this run, config and inputs; returns the completed epochs.

    A resume state of another run, config or inputs is moved aside (kept, never mixed
    with this training) and training starts from scratch.
    """
    if not path.exists():
        return 0
    try:
        state = load_checkpoint(path)
    except InputFormatError as e:
        raise InputFormatError(f"{e} (the resume state; delete it to train from scratch)") from e
    stale = _stale_reason(state, spec, cfg, vocab_size, fingerprint)
    if stale is not None:
        distributed.barrier(ctx)  # every rank has read it before it moves
        if ctx.is_main:
            kept = _move_aside(path)
            print(f"{path} does not fit this training ({stale}): moved to {kept.name}, "
                  "training from scratch", flush=True)
        distributed.barrier(ctx)
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rngs = state["rng"]
    if len(rngs) == ctx.world_size:
        set_rng_state(rngs[ctx.rank])
    else:  # another process count: data order is unchanged, dropout masks are not
        seed_everything(spec.seed + 1000 * state["epoch"] + ctx.rank)
        if ctx.is_main:
            print(f"{path}: saved by {len(rngs)} processes, resumed by {ctx.world_size}: "
                  "RNG streams reseeded", flush=True)
    if ctx.is_main:
        print(f"resuming {spec.run_id} from {path} after epoch {state['epoch']}", flush=True)
    return int(state["epoch"])


def _stale_reason(state: dict, spec, cfg, vocab_size: int, fingerprint: dict) -> str | None:
    """Why the resume state `state` cannot continue this training, or None if it can."""
    if "optimizer" not in state:
        return "it holds no optimizer state"
    if state["run"] != spec.run_id:
        return f"run {state['run']}, not {spec.run_id}"
    if state["vocab_size"] != vocab_size:
        return f"vocabulary of {state['vocab_size']} words, now {vocab_size}"
    old, new = _result_config(state["config"]), _result_config(cfg)
    if old != new:
        keys = [f"{name}.{k}" for name in new for k in sorted(old[name].keys() | new[name].keys())
                if old[name].get(k) != new[name].get(k)]
        return f"config {', '.join(keys)} changed"
    return changed_inputs(state.get("fingerprint"), fingerprint)


def _move_aside(path: Path) -> Path:
    """Rename `last.pt` to a free `last.stale-N.pt` beside it."""
    n = 1
    while (kept := path.with_name(f"{path.stem}.stale-{n}{path.suffix}")).exists():
        n += 1
    path.rename(kept)
    return kept


def _diverged(bad_step: int, steps: int, resume_path: Path, epoch: int) -> NonFiniteLossError:
    bad_epoch, bad_in_epoch = divmod(bad_step - 1, steps)
    kept = (f"the last good checkpoint {resume_path} (after epoch {epoch}) is kept" if epoch > 0
            else "no checkpoint was written yet (it failed in the first epoch)")
    return NonFiniteLossError(
        f"non-finite training loss at epoch {bad_epoch + 1}, step {bad_in_epoch + 1} "
        f"(global step {bad_step}); training stopped, {kept}"
    )
