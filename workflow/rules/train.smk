# Training one run (`{version}-{model}-{decoder}`, docs/formats.md). With
# several GPUs the same rule launches torchrun (DDP, one process per GPU).


rule train:
    input:
        tokens=lambda w: tokens_path(w.version, "train"),
        features=lambda w: features_path(w.version, "train"),
        vocab="results/text/{version}_vocab.json",
        glove=glove_input,
    output:
        "results/runs/{version}-{model}-{decoder}/checkpoint.pt",
    log:
        "results/logs/train/{version}-{model}-{decoder}.log",
    benchmark:
        "results/benchmarks/train/{version}-{model}-{decoder}.tsv"
    wildcard_constraints:
        model="|".join(MODELS),
        decoder="|".join(DECODERS),
    params:
        launcher=training_launcher,
        glove=lambda w, input: f"--glove {input.glove}" if input.glove else "",
        out=lambda w: f"results/runs/{w.version}-{w.model}-{w.decoder}",
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("model", "lg", "train"),
    threads: 2 if DEMO else 6
    resources:
        gpu=0 if DEMO else train_gpus(),
        mem_mb=4000 if DEMO else 24000,
        runtime=30 if DEMO else 6 * 60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.launcher} train --run-id {wildcards.version}-{wildcards.model}-{wildcards.decoder}"
        " --tokens {input.tokens} --features {input.features} --vocab {input.vocab} {params.glove}"
        " --out-dir {params.out} --device {params.device} --config {params.cfg} > {log} 2>&1"
