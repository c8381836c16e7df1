"""Stage `evaluate` (workflow/rules/evaluate.smk): metrics and analyses of trained runs
(`visdial-lg evaluate`, `grounding`, `human-eval-sheet`; docs/evaluation.md, docs/metrics.md).

- `evaluate`: a run on one split with one grounding variant; the EvalAI submission
- `metrics`: the official VisDial metrics (R@k, MRR, Mean, NDCG)
- `grounding`, `annotations`: grounding accuracy of Table 3 and the round annotations it uses
- `human`: the blinded human-evaluation sheet and Table 7's M1/M2
"""
