"""Goals 2-4 of a demo that learns, from a finished demo working directory (visdial_lg.demo.evidence):

2. answers fit the question: for every run with a val evaluation and each of its decoders, the
   fraction of val rounds whose top-ranked answer has the ground truth's answer type (yes/no,
   colour, shape, size, position, count); >= 0.90 for every run's gen / disc decoder;
3. the image matters: Table 4's MRR (from the metrics JSONs) of LTMI with its own, Mean,
   Random and oracle grounding; Mean and Random each >= 5 points below, the oracle not below;
4. grounding is learned: Table 3's "w/o Ans" top-3 accuracy >= 20 points above Random.

Prints one JSON object.

    .venv/bin/python bench/demo_goals.py --demo demo
"""

from __future__ import annotations

import argparse
import json

from visdial_lg.demo.evidence import demo_goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo", help="a demo working directory (resources/demo/, results/)")
    args = parser.parse_args()
    result = demo_goals(args.demo)
    result["pass"] = {goal: result[goal]["pass"] for goal in
                      ("goal2_answers_fit_question", "goal3_image_matters", "goal4_grounding_learned")}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
