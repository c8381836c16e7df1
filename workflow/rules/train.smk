# Training one run (`{version}-{model}-{decoder}` + the seed part `@s{seed}`, docs/formats.md). With
# several GPUs the same rule launches torchrun (DDP, one process per GPU).


# Our CLI, under torchrun when the job trains in several processes: one per GPU the job
# asks for (resources.gpu: train.gpus, or a profile's set-resources), or
# `train.cpu_processes` on CPU (gloo).
CLI = "python -m visdial_lg"
TORCHRUN = "python -m torch.distributed.run --standalone --nproc-per-node {processes} -m visdial_lg"
CPU_PROCESSES = config["train"]["cpu_processes"]

rule train:
    input:
        tokens=lambda w: tokens_path(w.version, "train"),
        features=lambda w: features_path(w.version, "train"),
        vocab=paths.VOCAB,
        glove=lambda w: paths.GLOVE.format(version=w.version) if config["text"]["glove"] else [],
    output:
        paths.CHECKPOINT,
    log:
        f"results/logs/train/{RUN}.log",
    benchmark:
        f"results/benchmarks/train/{RUN}.tsv"
    wildcard_constraints:
        **RUN_WILDCARDS,
    params:
        launcher=lambda w, resources: (
            TORCHRUN.format(processes=n) if (n := resources.gpu or CPU_PROCESSES) > 1 else CLI
        ),
        glove=lambda w, input: f"--glove {input.glove}" if input.glove else "",
        out=lambda w, output: os.path.dirname(output[0]),
        device=DEVICE,
        cfg=config_arg("model", "lg", "train"),
    threads: RESOURCES["train"]["threads"]
    resources:
        neutral_config=neutral_config_arg("train"),  # a resource, not a param: common.smk
        gpu=config["train"]["gpus"],
        mem_mb=RESOURCES["train"]["mem_mb"],
        runtime=RESOURCES["train"]["runtime"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.launcher} train --run-id {wildcards.version}-{wildcards.model}-{wildcards.decoder}{wildcards.seed}"
        " --tokens {input.tokens} --features {input.features} --vocab {input.vocab} {params.glove}"
        " --out-dir {params.out} --device {params.device} --config {params.cfg} --neutral-config {resources.neutral_config}"
        " > {log} 2>&1"
