"""Goal 1 of the demo (docs/demo.md, "Options measured for goal 1"): which detector settings or
in-DAG training make the demo's region features carry shape as well as colour. For each option:
the held-out linear probe (visdial_lg.demo.probe) of colour, shape and size, extraction seconds
per image on this machine, and for trained options the training steps and seconds.

Every feature comes out of the project's extractor (`features.extract.extract_features` with the
option's `features:` section and, for trained options, the trained detector passed in); boxes are
the demo's `region_boxes.json`; labels only reach the probe (and the head's training loss).

Honest split for trained options: the train2014 images are halved at random (seed 0); the region
head is trained on half A only (its COCO instances: class = shape; attributes = colour and size
from the regenerated scenes), the probe is fitted and tested (5 folds grouped by image) on half B,
and also fitted on all of half B and tested on the val2014 objects. Untrained options get the same
half-B and val2014 probes, plus the goal-1 probe as defined (all train2014 images, 5 folds).

    OMP_NUM_THREADS=2 .venv/bin/python bench/demo_feature_options.py --demo demo --work /tmp/featopt \
        [--options a,b256,...] [--steps 100] [--threads 2] > options.json

Options (names for --options): a (today: R50, res5_halve, 128/192), b256 (256/384), b384
(384/576), b512 (512/768), c_full (res5_halve false), c_r101 (depth 101), c_r101_full (both);
trained: d (res5 + class/attribute layers, backbone frozen, 128/192), d_last (only res5's last
block + those layers), d384 (d at 384/576), e (the whole network, 128/192). The defaults are the
runs docs/demo.md reports (--steps 100 --steps-all 60; 2 threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ATTRS = ("colour", "shape", "size")
UNTRAINED = {
    "a": {},
    "b256": {"min_size": 256, "max_size": 384},
    "b384": {"min_size": 384, "max_size": 576},
    "b512": {"min_size": 512, "max_size": 768},
    "c_full": {"res5_halve": False},
    "c_r101": {"depth": 101},
    "c_r101_full": {"depth": 101, "res5_halve": False},
}
TRAINED = {  # name -> (features overrides, what is trained)
    "d": ({}, "head"),
    "d_last": ({}, "last"),
    "d384": ({"min_size": 384, "max_size": 576}, "head"),
    "e": ({}, "all"),
}


# ----------------------------------------------------------------------------- the demo

def demo_features_config():
    """The `features:` section `make demo` runs with (config.yaml, then configs/demo.yaml)."""
    from visdial_lg.core.config import Config, deep_merge, load_yaml

    raw = deep_merge(load_yaml(ROOT / "config.yaml"), load_yaml(ROOT / "configs" / "demo.yaml"))
    return Config.from_dict(raw).features


class Demo:
    def __init__(self, demo_dir: Path, seed: int = 0):
        from visdial_lg.demo.regenerate import regenerate
        from visdial_lg.features.extract import load_given_boxes
        from visdial_lg.features.images import list_image_folders

        self.resources = demo_dir / "resources" / "demo"
        self.images = regenerate(self.resources)  # labels, checked against the files on disk
        self.boxes_path = self.resources / "region_boxes.json"
        self.boxes = load_given_boxes(self.boxes_path)
        self.entries = {s: {e.image_id: e for e in list_image_folders([self.resources / "images" / s])}
                        for s in ("train2014", "val2014")}
        train_ids = np.array(sorted(self.entries["train2014"]))
        order = np.random.default_rng(seed).permutation(train_ids)
        self.half_a = set(int(i) for i in order[: len(order) // 2])  # trains the head
        self.half_b = set(int(i) for i in order[len(order) // 2:])  # probes it

    def images_of(self, image_set: str, ids: set[int] | None = None):
        return [im for im in self.images[image_set] if ids is None or im.image_id in ids]

    def entries_of(self, image_set: str, ids: set[int] | None = None):
        return [e for i, e in sorted(self.entries[image_set].items()) if ids is None or i in ids]


# ----------------------------------------------------------------------------- measuring

def extract(cfg, detector, entries, boxes_path, out: Path) -> dict:
    """The project's extractor on `entries` (a fresh file); returns its summary."""
    from visdial_lg.features.extract import extract_features

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in (out, out.with_name(out.name + ".partial")):
        stale.unlink(missing_ok=True)
    return extract_features(entries, out, cfg, "random", device="cpu", boxes_path=boxes_path, detector=detector)


def fit_test(train_rows, test_rows, attribute: str, c: float = 1.0) -> float:
    """Probe fitted on all of train_rows, accuracy on test_rows (other images)."""
    from visdial_lg.demo.probe import fit_softmax, standardise

    classes = sorted(set(train_rows.labels[attribute]) | set(test_rows.labels[attribute]))
    index = {v: i for i, v in enumerate(classes)}
    y_train = np.array([index[v] for v in train_rows.labels[attribute]])
    y_test = np.array([index[v] for v in test_rows.labels[attribute]])
    x_train, x_test = standardise(np.asarray(train_rows.features, np.float64),
                                  np.asarray(test_rows.features, np.float64))
    w, b = fit_softmax(x_train, y_train, len(classes), c)
    return float(((x_test @ w + b).argmax(1) == y_test).mean())


def probes(path: Path, demo: Demo, with_all_train: bool) -> dict:
    from visdial_lg.demo.probe import object_rows, probe

    out = {}
    started = time.process_time()
    if with_all_train:  # goal 1 as docs/demo.md defines it
        rows = object_rows(path, demo.images_of("train2014"))
        assert rows.unmatched == 0, rows.unmatched
        out["train2014_5fold"] = {a: round(probe(rows.features, rows.labels[a], rows.image_id)["accuracy"], 4)
                                  for a in ATTRS}
        out["train2014_5fold"]["objects"] = int(len(rows.image_id))
    rows_b = object_rows(path, demo.images_of("train2014", demo.half_b))
    rows_val = object_rows(path, demo.images_of("val2014"))
    assert rows_b.unmatched == 0 and rows_val.unmatched == 0
    out["half_b_5fold"] = {a: round(probe(rows_b.features, rows_b.labels[a], rows_b.image_id)["accuracy"], 4)
                           for a in ATTRS}
    out["half_b_5fold"]["objects"] = int(len(rows_b.image_id))
    out["val2014_fit_half_b"] = {a: round(fit_test(rows_b, rows_val, a), 4) for a in ATTRS}
    out["val2014_fit_half_b"]["objects"] = int(len(rows_val.image_id))
    out["probe_cpu_s"] = round(time.process_time() - started, 1)
    return out


# ----------------------------------------------------------------------------- training the head

def region_targets(demo: Demo, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per given box of the image: class (1 + shape index, 0 = background: IoU < 0.5 with every
    object, as Faster R-CNN labels RoIs), colour and size attribute (-100 = none, for background).
    Attribute indices 1..6 = colours, 7..8 = sizes (0 = no attribute, as BUTD)."""
    from visdial_lg.demo.probe import box_iou
    from visdial_lg.demo.regenerate import object_labels
    from visdial_lg.demo.scenes import COLOURS, SHAPES, SIZES

    boxes = demo.boxes[image.image_id]
    objs = object_labels(image)
    iou = box_iou(boxes, np.array([o["box"] for o in objs]))  # [k, objects]
    best, best_iou = iou.argmax(1), iou.max(1)
    colours, sizes = list(COLOURS), list(SIZES)
    cls, colour, size = [], [], []
    for j, o in zip(best_iou, (objs[i] for i in best)):
        fg = j >= 0.5
        cls.append(1 + SHAPES.index(o["shape"]) if fg else 0)
        colour.append(1 + colours.index(o["colour"]) if fg else -100)
        size.append(1 + len(colours) + sizes.index(o["size"]) if fg else -100)
    return np.array(cls), np.array(colour), np.array(size)


def head_losses(predictor, pool5, cls, colour, size):
    """BUTD's training losses on pool5: class cross-entropy over all RoIs; attributes (colour
    and size, each a cross-entropy over the 401 attribute scores) on foreground RoIs, the
    attribute branch fed the ground-truth class embedding (as BUTD trains it)."""
    import torch
    import torch.nn.functional as F

    loss_cls = F.cross_entropy(predictor.cls_score(pool5), cls)
    fg = cls > 0
    if not bool(fg.any()):
        return loss_cls, loss_cls.detach() * 0, (predictor.cls_score(pool5).argmax(1) == cls).float().mean()
    attr_in = torch.cat([pool5[fg], predictor.cls_embedding(cls[fg])], 1)
    attr_logits = predictor.attr_score(F.relu(predictor.fc_attr(attr_in)))
    loss_attr = 0.5 * (F.cross_entropy(attr_logits, colour[fg]) + F.cross_entropy(attr_logits, size[fg]))
    acc = (predictor.cls_score(pool5.detach()).argmax(1) == cls).float().mean()
    return loss_cls, loss_attr, acc


def load_batch(demo: Demo, cfg, images):
    """Images preprocessed as the extractor does (decode, mean, resize), padded into one batch,
    with their given boxes as RoIs in resized pixels and their targets."""
    import torch

    from visdial_lg.features.images import collate_padded, read_image_bgr
    from visdial_lg.features.model import preprocess

    items, rois, targets = [], [], []
    for b, im in enumerate(images):
        bgr = read_image_bgr(demo.entries["train2014"][im.image_id].path)
        pixels, scale = preprocess(bgr, cfg.min_size, cfg.max_size)
        items.append({"row": b, "image_id": im.image_id, "path": "", "error": None, "image": pixels,
                      "scale": scale, "original_hw": bgr.shape[:2]})
        boxes = torch.from_numpy(demo.boxes[im.image_id]) * scale
        rois.append(torch.cat([boxes.new_full((len(boxes), 1), b), boxes], 1))
        targets.append(region_targets(demo, im))
    batch = collate_padded(items)
    cls, colour, size = (torch.from_numpy(np.concatenate([t[i] for t in targets])).long() for i in range(3))
    return batch, torch.cat(rois), cls, colour, size


def train(detector, cfg, demo: Demo, what: str, steps: int, lr: float, rois_per_step: int, images_per_step: int,
          seed: int = 0) -> dict:
    """A short training on the half-A train2014 images. what = "head": res5 and the class /
    attribute layers, backbone frozen (res4 of every RoI pooled once, then sampled in batches of
    `rois_per_step`); "all": every layer, `images_per_step` images per step with all their boxes.
    "last": only res5's last block and those layers (the rest of res5 run once, frozen).
    AdamW; the box regression is not trained (the demo's regions are given, never regressed)."""
    import torch

    images = demo.images_of("train2014", demo.half_a)
    generator = torch.Generator().manual_seed(seed)
    heads = detector.roi_heads
    predictor = heads.box_predictor
    detector.requires_grad_(False)
    trained = [heads.res5 if what != "last" else heads.res5[-1],
               predictor.cls_score, predictor.cls_embedding, predictor.fc_attr, predictor.attr_score]
    if what == "all":
        trained.append(detector.backbone)
    for module in trained:
        module.requires_grad_(True)
    params = [p for p in detector.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    log = []
    started = time.perf_counter()
    if what in ("head", "last"):
        with torch.no_grad():  # the frozen part, once: RoIPool of res4 for every given box
            batch, rois, cls, colour, size = load_batch(demo, cfg, images)
            res4 = detector.backbone(batch["images"], batch["image_sizes"])
            from torchvision.ops import roi_pool

            frozen = roi_pool(res4, rois, (14, 14), 1.0 / 16)  # [R, 1024, 14, 14]
            if what == "last":  # through the frozen res5 blocks too: [R, 2048, 7, 7] (halved res5)
                for block in heads.res5[:-1]:
                    frozen = block(frozen)
        trained_part = heads.res5_pool if what == "head" else (lambda x: heads.res5[-1](x).mean(dim=(2, 3)))
        prep_s = time.perf_counter() - started
        for step in range(steps):
            pick = torch.randint(len(cls), (rois_per_step,), generator=generator)
            loss_cls, loss_attr, acc = head_losses(predictor, trained_part(frozen[pick]), cls[pick], colour[pick],
                                                   size[pick])
            opt.zero_grad()
            (loss_cls + loss_attr).backward()
            opt.step()
            schedule.step()
            log.append((loss_cls.item(), loss_attr.item(), acc.item()))
    else:
        prep_s = 0.0
        for step in range(steps):
            pick = torch.randperm(len(images), generator=generator)[:images_per_step].tolist()
            batch, rois, cls, colour, size = load_batch(demo, cfg, [images[i] for i in pick])
            res4 = detector.backbone(batch["images"], batch["image_sizes"])
            pool5 = heads.pool5(res4, rois)
            loss_cls, loss_attr, acc = head_losses(predictor, pool5, cls, colour, size)
            opt.zero_grad()
            (loss_cls + loss_attr).backward()
            opt.step()
            schedule.step()
            log.append((loss_cls.item(), loss_attr.item(), acc.item()))
    seconds = time.perf_counter() - started
    detector.eval().requires_grad_(False)
    tail = np.array(log[-max(1, steps // 10):])
    first = np.array(log[: max(1, steps // 10)])
    return {"trained": what, "train_images": len(images), "steps": steps, "lr": lr,
            "rois_per_step": rois_per_step if what != "all" else None,
            "images_per_step": images_per_step if what == "all" else None,
            "seconds": round(seconds, 1), "frozen_part_seconds": round(prep_s, 1),
            "loss_cls_first_last_tenth": [round(float(first[:, 0].mean()), 3), round(float(tail[:, 0].mean()), 3)],
            "loss_attr_first_last_tenth": [round(float(first[:, 1].mean()), 3), round(float(tail[:, 1].mean()), 3)],
            "train_class_accuracy_last_tenth": round(float(tail[:, 2].mean()), 3)}


# ----------------------------------------------------------------------------- options

def run_option(name: str, demo: Demo, base, work: Path, args) -> dict:
    import torch

    from visdial_lg.features.model import build_detector

    overrides, what = (UNTRAINED[name], None) if name in UNTRAINED else TRAINED[name]
    cfg = dataclasses.replace(base, **overrides)
    detector = build_detector(cfg, "random", seed=cfg.seed)
    result = {"option": name, "features": {k: getattr(cfg, k) for k in ("depth", "res5_halve", "min_size", "max_size")}}
    if what is not None:
        torch.manual_seed(args.seed)
        steps = args.steps_all if what == "all" else args.steps
        result["train"] = train(detector, cfg, demo, what, steps, args.lr_all if what == "all" else args.lr,
                                args.rois_per_step, args.images_per_step, args.seed)
        entries = demo.entries_of("train2014", demo.half_b) + demo.entries_of("val2014")
    else:
        entries = demo.entries_of("train2014") + demo.entries_of("val2014")
    summary = extract(cfg, detector, entries, demo.boxes_path, work / f"{name}.h5")
    result["extract"] = {"images": summary["computed"], "seconds": summary["seconds"],
                         "s_per_image": round(summary["seconds"] / summary["computed"], 4)}
    result["probe"] = probes(work / f"{name}.h5", demo, with_all_train=what is None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", help="a finished demo working directory")
    parser.add_argument("--work", default="/tmp/featopt", help="where the option's feature files go")
    parser.add_argument("--options", default=",".join([*UNTRAINED, *TRAINED]))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100, help="head training steps (options d*)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--rois-per-step", type=int, default=64)
    parser.add_argument("--steps-all", type=int, default=60, help="whole-network training steps (option e)")
    parser.add_argument("--lr-all", type=float, default=2e-4)
    parser.add_argument("--images-per-step", type=int, default=4)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = demo_features_config()
    demo = Demo(Path(args.demo), args.seed)
    out = {"demo": args.demo, "threads": args.threads, "torch": torch.__version__,
           "split": {"half_a_train_head": len(demo.half_a), "half_b_probe": len(demo.half_b),
                     "val2014": len(demo.entries["val2014"])},
           "options": []}
    for name in args.options.split(","):
        started = time.perf_counter()
        result = run_option(name, demo, base, work, args)
        result["wall_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result), file=sys.stderr, flush=True)
        out["options"].append(result)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
