# The synthetic grounded dataset that stands in for VisDial + COCO on machines
# without data or GPU (docs/demo.md). MANIFEST.json is written last.


rule make_demo:
    output:
        DEMO_MANIFEST,
    log:
        "results/logs/make_demo.log",
    params:
        cfg=config_arg("demo"),
        out=lambda w, output: os.path.dirname(output[0]),
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg make-demo --config {params.cfg} --out {params.out} > {log} 2>&1"
