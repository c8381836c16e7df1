# Text: the vocabulary of each version's train split (plus a GloVe-initialised
# embedding when `text.glove` is on), then every split tokenized into HDF5.


wildcard_constraints:
    version="|".join(v.replace(".", r"\.") for v in VERSIONS),
    split="train|val|test",

GLOVE = config["text"]["glove"]  # the demo has no GloVe file: configs/demo.yaml turns it off
DIALOGS = "visdial_{number}_{split}"  # the input name of a version's split, e.g. visdial_1.0_train


rule vocab:
    input:
        train=lambda w: input_stamp(DIALOGS.format(number=w.version[1:], split="train")),
    output:
        paths.VOCAB,
    log:
        "results/logs/vocab/{version}.log",
    params:
        train=lambda w: input_path(DIALOGS.format(number=w.version[1:], split="train")),
        cfg=config_arg("text"),
    threads: config["text"]["workers"]
    resources:
        mem_mb=RESOURCES["text"]["mem_mb"],
        neutral_config=neutral_config_arg("text"),  # a resource, not a param: common.smk
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg vocab --train-json {params.train} --version {wildcards.version} --out {output}"
        " --config {params.cfg} --neutral-config {resources.neutral_config} > {log} 2>&1"


rule glove_embedding:
    input:
        vocab=paths.VOCAB,
        glove=input_stamp("glove") if GLOVE else [],
    output:
        paths.GLOVE,
    log:
        "results/logs/glove/{version}.log",
    params:
        glove=input_path("glove") if GLOVE else "",
    resources:
        mem_mb=16000,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg glove --vocab {input.vocab} --glove {params.glove}"
        " --out {output} > {log} 2>&1"


rule tokenize:
    input:
        dialogs=lambda w: input_stamp(DIALOGS.format(number=w.version[1:], split=w.split)),
        dense=lambda w: (
            input_stamp("visdial_1.0_val_dense") if (w.version, w.split) == ("v1.0", "val") else []
        ),
        vocab=paths.VOCAB,
    output:
        paths.TOKENS,
    log:
        "results/logs/tokenize/{version}_{split}.log",
    params:
        dialogs=lambda w: input_path(DIALOGS.format(number=w.version[1:], split=w.split)),
        dense=lambda w: (
            f"--dense {input_path('visdial_1.0_val_dense')}"
            if (w.version, w.split) == ("v1.0", "val")
            else ""
        ),
        cfg=config_arg("text"),
    threads: config["text"]["workers"]
    resources:
        mem_mb=RESOURCES["text"]["mem_mb"],
        neutral_config=neutral_config_arg("text"),  # a resource, not a param: common.smk
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg tokenize --json {params.dialogs} --vocab {input.vocab} --out {output}"
        " --version {wildcards.version} --split {wildcards.split} {params.dense}"
        " --config {params.cfg} --neutral-config {resources.neutral_config} > {log} 2>&1"
