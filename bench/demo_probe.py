"""Goal 1 of a demo that learns ("the features carry the objects"): a linear probe predicts each
annotated object's colour, shape, size and position from its region feature. Objects of the
train2014 images only (rows of results/features/trainval2014.h5), held out by image (k folds
grouped by image), features standardised on each training part, multinomial logistic regression
(L2, C = 1, as scikit-learn's default). Labels: the demo generator's, regenerated from
MANIFEST.json and checked against the demo's files (visdial_lg.demo.probe). Prints one JSON
object; passes at colour >= 0.95 and shape >= 0.80.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_probe.py --demo demo [--folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", help="a demo working directory (resources/demo/, results/)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength, as scikit-learn's C")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from visdial_lg.demo.probe import probe_demo

    torch.set_num_threads(args.threads)
    start = time.process_time()
    result = probe_demo(args.demo, folds=args.folds, seed=args.seed, c=args.C)
    result["cpu_seconds"] = round(time.process_time() - start, 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
