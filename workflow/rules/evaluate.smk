# Evaluation of a trained run on a split, with the model's own grounding
# (prior) or a substitute distribution over regions (Table 4); test rounds go
# into an EvalAI submission (and, on the demo, are scored against the
# held-back answers as the server would). Then the grounding accuracy of
# Table 3 and the blinded human-evaluation sheet of Table 7.

EVALUATE = config["evaluate"]

# LTMI-Human (Table 4) scores with the annotated regions: the user's file, or the demo's.
ORACLE_ARG = f"--oracle {EVALUATE['oracle_annotations'] or f'{DEMO_ROOT}/grounding.json'}"
# Only the demo can score its test split: VisDial's test answers are held back by EvalAI.
TEST_ANSWERS_INPUT = DEMO_MANIFEST if DEMO else []
TEST_ANSWERS_ARG = f"--test-answers {DEMO_ROOT}/visdial_1.0_test_answers.json" if DEMO else ""
# Table 3's round boxes: the user's file, or derived from the COCO instances of val2014.
GROUNDING_FILE = EVALUATE["grounding_annotations"]
GROUNDING_INPUT = ancient(GROUNDING_FILE) if GROUNDING_FILE else input_stamp("coco_instances_val2014")
GROUNDING_ARG = (
    f"--grounding {GROUNDING_FILE}" if GROUNDING_FILE else f"--coco-instances {input_path('coco_instances_val2014')}"
)

rule evaluate:
    input:
        checkpoint=paths.CHECKPOINT,
        tokens=paths.TOKENS,
        features=lambda w: features_path(w.version, w.split),
    output:
        metrics=paths.EVALUATION,
        ranks=paths.RANKS,
    log:
        f"results/logs/evaluate/{RUN}_{{split}}_{{grounding}}.log",
    wildcard_constraints:
        **RUN_WILDCARDS,
        split="train|val",
        grounding="|".join(GROUNDING_VARIANTS),
    params:
        oracle=lambda w: ORACLE_ARG if w.grounding == "oracle" else "",
        device=DEVICE,
        cfg=config_arg("evaluate.batch_size"),
    threads: RESOURCES["evaluate"]["threads"]
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
        mem_mb=RESOURCES["evaluate"]["mem_mb"],
        runtime=RESOURCES["evaluate"]["runtime"],
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
        checkpoint=paths.CHECKPOINT,
        tokens=paths.fill(paths.TOKENS, split="test"),
        features=lambda w: features_path(w.version, "test"),
        test_answers=TEST_ANSWERS_INPUT,
    output:
        metrics=paths.fill(paths.EVALUATION, split="test", grounding="prior"),
        ranks=paths.fill(paths.RANKS, split="test", grounding="prior"),
        submission=f"results/submissions/{RUN}_test.json",
    log:
        f"results/logs/evaluate/{RUN}_test_prior.log",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        answers=TEST_ANSWERS_ARG,
        device=DEVICE,
        cfg=config_arg("evaluate.batch_size"),
    threads: RESOURCES["evaluate"]["threads"]
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
        mem_mb=RESOURCES["evaluate"]["mem_mb"],
        runtime=RESOURCES["evaluate"]["runtime"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg evaluate --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} --split test --grounding prior {params.answers}"
        " --submission {output.submission} --out {output.metrics} --device {params.device}"
        " --config {params.cfg} > {log} 2>&1"


rule grounding_accuracy:
    input:
        checkpoint=paths.CHECKPOINT,
        tokens=paths.TOKENS,
        features=lambda w: features_path(w.version, w.split),
        vocab=paths.VOCAB,
        annotations=GROUNDING_INPUT,
    output:
        paths.GROUNDING,
    log:
        f"results/logs/grounding/{RUN}_{{split}}.log",
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        annotations=GROUNDING_ARG,
        device=DEVICE,
        cfg=config_arg("evaluate.batch_size", "evaluate.grounding_samples"),
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg grounding --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} --vocab {input.vocab} {params.annotations} --out {output}"
        " --device {params.device} --config {params.cfg} > {log} 2>&1"


rule human_eval_sheet:
    input:
        ltmi=paths.evaluation_path(run_id(MAIN_VERSION, "ltmi", "gen"), "val"),
        lg=paths.evaluation_path(run_id(MAIN_VERSION, LG, "gen"), "val"),
        tokens=tokens_path(MAIN_VERSION, "val"),
        vocab=vocab_path(MAIN_VERSION),
    output:
        sheet=paths.HUMAN_EVAL_SHEET,
        key=paths.HUMAN_EVAL_KEY,
    log:
        "results/logs/human_eval_sheet.log",
    params:
        cfg=config_arg("evaluate.human_eval_samples"),
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg human-eval-sheet --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --vocab {input.vocab} --sheet {output.sheet} --key {output.key} --config {params.cfg} > {log} 2>&1"
