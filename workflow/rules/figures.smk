# The paper's qualitative figures on sampled val dialogs of the main version:
# Figure 4 (top-3 regions of LTMI and LTMI-LG per question, one PNG each) and
# Figure 5 (example dialogs with both models' first-ranked answers).

FIGURE_RUNS = {model: run_id(MAIN_VERSION, model, "gen") for model in ("ltmi", LG)}
FIGURE_IMAGES = IMAGE_FOLDERS[IMAGESET_OF[(MAIN_VERSION, "val")]]
ATTENTION_FIGURES = [
    f"results/figures/attention_{i}.png" for i in range(config["evaluate"]["figure_samples"])
]
ALL_FIGURES = ATTENTION_FIGURES + ["results/figures/dialogs.md", "results/figures/dialogs.html"]


rule attention_figures:
    input:
        ltmi=checkpoint_path(FIGURE_RUNS["ltmi"]),
        lg=checkpoint_path(FIGURE_RUNS[LG]),
        tokens=tokens_path(MAIN_VERSION, "val"),
        features=features_path(MAIN_VERSION, "val"),
        vocab=f"results/text/{MAIN_VERSION}_vocab.json",
        images=[input_stamp(name) for name in FIGURE_IMAGES],
    output:
        [
            report(path, caption="../report/attention.rst", category="Figures", subcategory="Figure 4")
            for path in ATTENTION_FIGURES
        ],
    log:
        "results/logs/figures/attention.log",
    params:
        images=[input_path(name) for name in FIGURE_IMAGES],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        device="cpu" if DEMO else "cuda",
        cfg=config_arg("evaluate"),
    resources:
        gpu=0 if DEMO else 1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg figure attention --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --features {input.features} --vocab {input.vocab} --images {params.images}"
        " --out-dir {params.out_dir} --device {params.device} --config {params.cfg} > {log} 2>&1"


rule dialog_figure:
    input:
        ltmi=evaluation_path(FIGURE_RUNS["ltmi"], "val"),
        lg=evaluation_path(FIGURE_RUNS[LG], "val"),
        tokens=tokens_path(MAIN_VERSION, "val"),
        vocab=f"results/text/{MAIN_VERSION}_vocab.json",
    output:
        md="results/figures/dialogs.md",
        html=report(
            "results/figures/dialogs.html",
            caption="../report/dialogs.rst",
            category="Figures",
            subcategory="Figure 5",
        ),
    log:
        "results/logs/figures/dialogs.log",
    params:
        cfg=config_arg("evaluate"),
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg figure dialogs --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --vocab {input.vocab} --out-md {output.md} --out-html {output.html} --config {params.cfg} > {log} 2>&1"
