# Evaluation of a trained run on a split, with the model's own grounding
# (prior) or a substitute distribution over regions (Table 4); test rounds go
# into an EvalAI submission (and, on the demo, are scored against the
# held-back answers as the server would).


rule evaluate:
    input:
        checkpoint="results/runs/{version}-{model}-{decoder}/checkpoint.pt",
        tokens="results/text/{version}_{split}.h5",
        features=lambda w: features_path(w.version, w.split),
    output:
        metrics="results/runs/{version}-{model}-{decoder}/{split}_{grounding}.json",
        ranks="results/runs/{version}-{model}-{decoder}/{split}_{grounding}.ranks.npz",
    log:
        "results/logs/evaluate/{version}-{model}-{decoder}_{split}_{grounding}.log",
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
        split="train|val",
        grounding="|".join(GROUNDING_VARIANTS),
    params:
        oracle=lambda w: oracle_arg(w.grounding),
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("evaluate"),
    threads: 2 if DEMO else 8
    resources:
        gpu=0 if DEMO else 1,
        mem_mb=4000 if DEMO else 32000,
        runtime=30 if DEMO else 120,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg evaluate --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} --split {wildcards.split} --grounding {wildcards.grounding}"
        " {params.oracle} --out {output.metrics} --device {params.device} --config {params.cfg} > {log} 2>&1"


# test: the last round of each dialog, ranked for the EvalAI submission (the
# model's own grounding only); the demo scores it against its held-back answers.
rule evaluate_test:
    input:
        checkpoint="results/runs/{version}-{model}-{decoder}/checkpoint.pt",
        tokens="results/text/{version}_test.h5",
        features=lambda w: features_path(w.version, "test"),
        test_answers=DEMO_MANIFEST if DEMO else [],
    output:
        metrics="results/runs/{version}-{model}-{decoder}/test_prior.json",
        ranks="results/runs/{version}-{model}-{decoder}/test_prior.ranks.npz",
        submission="results/submissions/{version}-{model}-{decoder}_test.json",
    log:
        "results/logs/evaluate/{version}-{model}-{decoder}_test_prior.log",
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
    params:
        answers=f"--test-answers {DEMO_ROOT}/visdial_1.0_test_answers.json" if DEMO else "",
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("evaluate"),
    threads: 2 if DEMO else 8
    resources:
        gpu=0 if DEMO else 1,
        mem_mb=4000 if DEMO else 32000,
        runtime=30 if DEMO else 120,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg evaluate --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} --split test --grounding prior {params.answers}"
        " --submission {output.submission} --out {output.metrics} --device {params.device}"
        " --config {params.cfg} > {log} 2>&1"


rule grounding_accuracy:
    input:
        checkpoint="results/runs/{version}-{model}-{decoder}/checkpoint.pt",
        tokens="results/text/{version}_{split}.h5",
        features=lambda w: features_path(w.version, w.split),
        vocab="results/text/{version}_vocab.json",
        annotations=grounding_annotations_input(),
    output:
        "results/grounding/{version}-{model}-{decoder}_{split}.json",
    log:
        "results/logs/grounding/{version}-{model}-{decoder}_{split}.log",
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
    params:
        annotations=grounding_annotations_arg(),
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("evaluate"),
    resources:
        gpu=0 if DEMO else 1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg grounding --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} --vocab {input.vocab} {params.annotations} --out {output}"
        " --device {params.device} --config {params.cfg} > {log} 2>&1"


rule human_eval_sheet:
    input:
        ltmi=evaluation_path(run_id(MAIN_VERSION, "ltmi", "gen"), "val"),
        lg=evaluation_path(run_id(MAIN_VERSION, LG, "gen"), "val"),
        tokens=tokens_path(MAIN_VERSION, "val"),
        vocab=f"results/text/{MAIN_VERSION}_vocab.json",
    output:
        sheet=HUMAN_EVAL[0],
        key=HUMAN_EVAL[1],
    log:
        "results/logs/human_eval_sheet.log",
    params:
        cfg=config_arg("evaluate"),
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg human-eval-sheet --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --vocab {input.vocab} --sheet {output.sheet} --key {output.key} --config {params.cfg} > {log} 2>&1"
