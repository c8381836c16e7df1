# Region features: the bottom-up-attention Faster R-CNN over each image set,
# in `features.shards` independent jobs (one GPU each) and one merge; or an
# existing LTMI feature file imported in place of extraction.

FEATURES = config["features"]
IMPORTED = [s for s, path in FEATURES["existing"].items() if path]
EXTRACTED = [s for s in IMAGE_FOLDERS if s not in IMPORTED]
NSHARDS = FEATURES["shards"]
SHARD = "results/features/{imageset}/shard-{shard}-of-{nshards}.h5"  # one extraction job's rows


def given_boxes_path():
    """The boxes JSON whose regions to describe instead of detecting them, or None."""
    given = FEATURES["given_boxes"]
    return f"{DEMO_ROOT}/region_boxes.json" if given == "demo" else given


def given_boxes_input():
    given = FEATURES["given_boxes"]
    if not given:
        return []
    return DEMO_MANIFEST if given == "demo" else ancient(given)


def weights_input():
    weights = FEATURES["weights"]
    if weights == "random":
        return []
    if weights == "download":
        return [input_stamp("detector_weights")]
    return [ancient(weights)]


rule extract_features:
    input:
        images=lambda w: [input_stamp(f) for f in IMAGE_FOLDERS[w.imageset]],
        weights=weights_input(),
        boxes=given_boxes_input(),
    output:
        SHARD,
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
        device=DEVICE,
        cfg=config_arg("features"),
    threads: RESOURCES["extract"]["threads"]
    resources:
        gpu=RESOURCES["extract"]["gpu"],
        mem_mb=RESOURCES["extract"]["mem_mb"],
        runtime=RESOURCES["extract"]["runtime"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg extract --images {params.images} --weights {params.weights}"
        " --out {output} --shard {wildcards.shard}/{wildcards.nshards} {params.boxes}"
        " --device {params.device} --config {params.cfg} > {log} 2>&1"


rule merge_features:
    input:
        lambda w: expand(
            SHARD,
            imageset=w.imageset,
            shard=range(NSHARDS),
            nshards=NSHARDS,
        ),
    output:
        paths.FEATURES,
    log:
        "results/logs/merge_features/{imageset}.log",
    wildcard_constraints:
        imageset="|".join(EXTRACTED) or "(?!x)x",
    params:
        # the real train set is ~100 GB: `virtual` points at the shards instead of copying them
        virtual="--virtual" if FEATURES["merge"] == "virtual" else "",
    resources:
        mem_mb=RESOURCES["merge"]["mem_mb"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg merge-features {input} --out {output} {params.virtual} > {log} 2>&1"


rule import_features:
    input:
        lambda w: ancient(FEATURES["existing"][w.imageset]),
    output:
        paths.FEATURES,
    log:
        "results/logs/import_features/{imageset}.log",
    wildcard_constraints:
        imageset="|".join(IMPORTED) or "(?!x)x",
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg import-features {input} --out {output} > {log} 2>&1"
