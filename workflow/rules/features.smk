# Region features: the bottom-up-attention Faster R-CNN over each image set,
# in `features.shards` independent jobs (one GPU each) and one merge; or an
# existing LTMI feature file imported in place of extraction.

FEATURES = config["features"]
IMPORTED = [s for s, path in FEATURES["existing"].items() if path]
EXTRACTED = [s for s in IMAGE_FOLDERS if s not in IMPORTED]
NSHARDS = FEATURES["shards"]


rule extract_features:
    input:
        images=lambda w: [input_stamp(f) for f in IMAGE_FOLDERS[w.imageset]],
        weights=weights_input(),
        boxes=given_boxes_input(),
    output:
        "results/features/{imageset}/shard-{shard}-of-{nshards}.h5",
    log:
        "results/logs/extract/{imageset}-{shard}-of-{nshards}.log",
    benchmark:
        "results/benchmarks/extract/{imageset}-{shard}-of-{nshards}.tsv"
    wildcard_constraints:
        imageset="|".join(EXTRACTED) or "(?!x)x",
        shard=r"\d+",
        nshards=r"\d+",
    params:
        images=lambda w: " ".join(input_path(f) for f in IMAGE_FOLDERS[w.imageset]),
        weights=lambda w, input: input.weights[0] if input.weights else "random",
        boxes=f"--boxes {given_boxes_path()}" if given_boxes_path() else "",
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("features"),
    threads: 2 if DEMO else 8
    resources:
        gpu=0 if DEMO else 1,
        mem_mb=4000 if DEMO else 32000,
        runtime=30 if DEMO else 24 * 60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg extract --images {params.images} --weights {params.weights}"
        " --out {output} --shard {wildcards.shard}/{wildcards.nshards} {params.boxes}"
        " --device {params.device} --config {params.cfg} > {log} 2>&1"


rule merge_features:
    input:
        lambda w: expand(
            "results/features/{imageset}/shard-{shard}-of-{nshards}.h5",
            imageset=w.imageset,
            shard=range(NSHARDS),
            nshards=NSHARDS,
        ),
    output:
        "results/features/{imageset}.h5",
    log:
        "results/logs/merge_features/{imageset}.log",
    wildcard_constraints:
        imageset="|".join(EXTRACTED) or "(?!x)x",
    params:
        # the real train set is ~100 GB: point at the shards instead of copying them
        virtual="" if DEMO else "--virtual",
    resources:
        mem_mb=2000 if DEMO else 8000,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg merge-features {input} --out {output} {params.virtual} > {log} 2>&1"


rule import_features:
    input:
        lambda w: ancient(FEATURES["existing"][w.imageset]),
    output:
        "results/features/{imageset}.h5",
    log:
        "results/logs/import_features/{imageset}.log",
    wildcard_constraints:
        imageset="|".join(IMPORTED) or "(?!x)x",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg import-features {input} --out {output} > {log} 2>&1"
