# Region features: the bottom-up-attention Faster R-CNN over each image set,
# in `features.shards` independent jobs (one GPU each) and one merge; or an
# existing LTMI feature file imported in place of extraction.

FEATURES = config["features"]
IMPORTED = [s for s, path in FEATURES["existing"].items() if path]
EXTRACTED = [s for s in IMAGE_FOLDERS if s not in IMPORTED]
NSHARDS = FEATURES["shards"]
SHARD = "results/features/{imageset}/shard-{shard}-of-{nshards}.h5"  # one extraction job's rows

# Regions to describe instead of detecting them: a user's boxes JSON, the demo's, or none.
GIVEN_BOXES = FEATURES["given_boxes"]
BOXES_PATH = paths.DEMO_BOXES if GIVEN_BOXES == "demo" else GIVEN_BOXES
BOXES_INPUT = [] if not GIVEN_BOXES else DEMO_MANIFEST if GIVEN_BOXES == "demo" else ancient(GIVEN_BOXES)
# The detector weights: none (random), the download, or a user's file.
WEIGHTS = FEATURES["weights"]
WEIGHTS_INPUT = (
    [] if WEIGHTS == "random" else [input_stamp("detector_weights")] if WEIGHTS == "download" else [ancient(WEIGHTS)]
)

rule extract_features:
    input:
        images=lambda w: [input_stamp(f) for f in IMAGE_FOLDERS[w.imageset]],
        weights=WEIGHTS_INPUT,
        boxes=BOXES_INPUT,
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
        boxes=f"--boxes {BOXES_PATH}" if BOXES_PATH else "",
        device=DEVICE,
        cfg=config_arg("features"),
    threads: RESOURCES["extract"]["threads"]
    resources:
        neutral_config=neutral_config_arg("features"),  # a resource, not a param: common.smk
        gpu=RESOURCES["extract"]["gpu"],
        mem_mb=RESOURCES["extract"]["mem_mb"],
        runtime=RESOURCES["extract"]["runtime"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg extract --images {params.images} --weights {params.weights}"
        " --out {output} --shard {wildcards.shard}/{wildcards.nshards} {params.boxes}"
        " --device {params.device} --config {params.cfg} --neutral-config {resources.neutral_config} > {log} 2>&1"


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
