# Evaluation of a trained run on a split, with the model's own grounding
# (prior) or a substitute distribution over regions (Table 4); test rounds go
# into an EvalAI submission (and, on the demo, are scored against the
# held-back answers as the server would).


rule evaluate:
    input:
        checkpoint="results/runs/{version}-{model}-{decoder}/checkpoint.pt",
        tokens="results/text/{version}_{split}.h5",
        features=lambda w: features_path(w.version, w.split),
        test_answers=lambda w: DEMO_MANIFEST if DEMO and w.split == "test" else [],
    output:
        "results/runs/{version}-{model}-{decoder}/{split}_{grounding}.json",
    log:
        "results/logs/evaluate/{version}-{model}-{decoder}_{split}_{grounding}.log",
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
        grounding="|".join(GROUNDING_VARIANTS),
    params:
        submission=lambda w: (
            f"--submission results/submissions/{w.version}-{w.model}-{w.decoder}_test.json"
            if w.split == "test"
            else ""
        ),
        answers=lambda w: (
            f"--test-answers {DEMO_ROOT}/visdial_1.0_test_answers.json"
            if DEMO and w.split == "test"
            else ""
        ),
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
        " --features {input.features} --split {wildcards.split}"
        " --grounding {wildcards.grounding} {params.submission} {params.answers} {params.oracle}"
        " --out {output} --device {params.device} --config {params.cfg} > {log} 2>&1"


rule grounding_accuracy:
    input:
        checkpoint="results/runs/{version}-{model}-{decoder}/checkpoint.pt",
        tokens="results/text/{version}_{split}.h5",
        features=lambda w: features_path(w.version, w.split),
        annotations=lambda w: (
            DEMO_MANIFEST
            if DEMO
            else ancient(config["evaluate"]["grounding_annotations"])
            if config["evaluate"]["grounding_annotations"]
            else input_stamp("coco_instances_val2014")
        ),
    output:
        "results/grounding/{version}-{model}-{decoder}_{split}.json",
    log:
        "results/logs/grounding/{version}-{model}-{decoder}_{split}.log",
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
    params:
        annotations=(
            f"--grounding {DEMO_ROOT}/grounding.json"
            if DEMO
            else f"--grounding {config['evaluate']['grounding_annotations']}"
            if config["evaluate"]["grounding_annotations"]
            else f"--coco-instances {input_path('coco_instances_val2014')}"
        ),
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("evaluate"),
    resources:
        gpu=0 if DEMO else 1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg grounding --checkpoint {input.checkpoint} --tokens {input.tokens}"
        " --features {input.features} {params.annotations} --out {output}"
        " --device {params.device} --config {params.cfg} > {log} 2>&1"
