# The report: the paper's Tables 1-7 as CSV (cited rows marked source=paper,
# reproduced rows marked with the dataset they ran on; with several seeds mean ± std; 95 %
# intervals), the paired tests of LTMI-LG against LTMI, all of them in tables.md and tables.html,
# and the qualitative figures on sampled val dialogs of the main version:
# Figure 4 (top-3 regions of LTMI and LTMI-LG per question, one PNG each) and
# Figure 5 (example dialogs with both models' generated and first-ranked answers).

from visdial_lg.report.significance import significance_inputs
from visdial_lg.report.tables import TABLES, paper_tables, table_inputs

PAPER_TABLES = paper_tables()
TABLE, TABLES_MD, TABLES_HTML = "results/table{n}.csv", "results/tables.md", "results/tables.html"
SIGNIFICANCE = "results/significance.csv"
ALL_TABLES = [TABLE.format(n=n) for n in TABLES] + [SIGNIFICANCE, TABLES_MD, TABLES_HTML]

# The result files each table is built from, for every seed of train.seeds
# (visdial_lg/report/tables.py: ROWS and table_inputs); Table 7 also reads the judgments
# once a user names them.
JUDGMENTS = config["evaluate"]["human_judgments"]
TABLE_INPUTS = {n: table_inputs(n, tuple(config["versions"]), tuple(SEEDS)) for n in TABLES}
TABLE_INPUTS[7] += [ancient(JUDGMENTS)] if JUDGMENTS else []

rule table:
    input:
        lambda w: TABLE_INPUTS[int(w.n)],
    output:
        report(TABLE, caption="../report/table.rst", category="Tables"),
    log:
        "results/logs/tables/table{n}.log",
    wildcard_constraints:
        n="[1-7]",
    params:
        dataset=config["dataset"],
        title=lambda w: PAPER_TABLES[f"table{w.n}"]["title"],  # for the report caption
        cfg=config_arg("evaluate.evalai_result", "evaluate.human_judgments", "versions", "statistics"),
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg table {wildcards.n} --inputs {input} --dataset {params.dataset}"
        " --out {output} --config {params.cfg} > {log} 2>&1"


# Every LTMI-LG variant against LTMI on the same rounds (visdial_lg/report/significance.py).
rule significance:
    input:
        significance_inputs(tuple(config["versions"]), tuple(SEEDS)),
    output:
        report(SIGNIFICANCE, caption="../report/significance.rst", category="Tables"),
    log:
        "results/logs/tables/significance.log",
    params:
        cfg=config_arg("versions", "statistics"),
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg significance --inputs {input} --out {output} --config {params.cfg} > {log} 2>&1"


rule tables_markdown:
    input:
        tables=[TABLE.format(n=n) for n in TABLES],
        significance=SIGNIFICANCE,
    output:
        md=report(TABLES_MD, caption="../report/tables.rst", category="Tables"),
        html=TABLES_HTML,
    log:
        "results/logs/tables/tables_md.log",
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg tables-markdown {input.tables} --significance {input.significance}"
        " --out {output.md} --out-html {output.html} > {log} 2>&1"


FIGURE_RUNS = {model: run_id(MAIN_VERSION, model, "gen") for model in ("ltmi", LG)}
FIGURE_IMAGES = IMAGE_FOLDERS[IMAGESET_OF[(MAIN_VERSION, "val")]]
ATTENTION_FIGURES = [
    f"results/figures/attention_{i}.png" for i in range(config["evaluate"]["figure_samples"])
]
DIALOGS_MD, DIALOGS_HTML = "results/figures/dialogs.md", "results/figures/dialogs.html"
# The dialog explorer (visdial_lg/report/explorer.py): the page, its data and images/ beside them.
EXPLORER_DIR = "results/explorer"
EXPLORER = [f"{EXPLORER_DIR}/{name}" for name in ("index.html", "explorer.js", "explorer.css", "data.js")]
ALL_FIGURES = ATTENTION_FIGURES + [DIALOGS_MD, DIALOGS_HTML] + EXPLORER


rule attention_figures:
    input:
        ltmi=paths.checkpoint_path(FIGURE_RUNS["ltmi"]),
        lg=paths.checkpoint_path(FIGURE_RUNS[LG]),
        tokens=tokens_path(MAIN_VERSION, "val"),
        features=features_path(MAIN_VERSION, "val"),
        vocab=vocab_path(MAIN_VERSION),
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
        device=DEVICE,
        cfg=config_arg("evaluate.figure_samples"),
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg figure attention --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --features {input.features} --vocab {input.vocab} --images {params.images}"
        " --out-dir {params.out_dir} --device {params.device} --config {params.cfg} > {log} 2>&1"


rule dialog_figure:
    input:
        ltmi=paths.evaluation_path(FIGURE_RUNS["ltmi"], "val"),
        lg=paths.evaluation_path(FIGURE_RUNS[LG], "val"),
        ltmi_checkpoint=paths.checkpoint_path(FIGURE_RUNS["ltmi"]),
        lg_checkpoint=paths.checkpoint_path(FIGURE_RUNS[LG]),
        tokens=tokens_path(MAIN_VERSION, "val"),
        features=features_path(MAIN_VERSION, "val"),
        vocab=vocab_path(MAIN_VERSION),
    output:
        md=DIALOGS_MD,
        html=report(
            DIALOGS_HTML,
            caption="../report/dialogs.rst",
            category="Figures",
            subcategory="Figure 5",
        ),
    log:
        "results/logs/figures/dialogs.log",
    params:
        device=DEVICE,
        cfg=config_arg("evaluate.figure_samples", "generation"),
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg figure dialogs --ltmi {input.ltmi} --lg {input.lg} --tokens {input.tokens}"
        " --vocab {input.vocab} --ltmi-checkpoint {input.ltmi_checkpoint} --lg-checkpoint {input.lg_checkpoint}"
        " --features {input.features} --device {params.device}"
        " --out-md {output.md} --out-html {output.html} --config {params.cfg} > {log} 2>&1"


# Written with its images/ folder beside the declared files (the job empties it first).
rule explorer:
    input:
        ltmi=paths.evaluation_path(FIGURE_RUNS["ltmi"], "val"),
        lg=paths.evaluation_path(FIGURE_RUNS[LG], "val"),
        ltmi_checkpoint=paths.checkpoint_path(FIGURE_RUNS["ltmi"]),
        lg_checkpoint=paths.checkpoint_path(FIGURE_RUNS[LG]),
        tokens=tokens_path(MAIN_VERSION, "val"),
        features=features_path(MAIN_VERSION, "val"),
        vocab=vocab_path(MAIN_VERSION),
        images=[input_stamp(name) for name in FIGURE_IMAGES],
    output:
        EXPLORER,
    log:
        "results/logs/figures/explorer.log",
    params:
        images=[input_path(name) for name in FIGURE_IMAGES],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        device=DEVICE,
        cfg=config_arg("explorer", "generation"),
    resources:
        gpu=RESOURCES["evaluate"]["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m visdial_lg explorer --ltmi {input.ltmi} --lg {input.lg}"
        " --ltmi-checkpoint {input.ltmi_checkpoint} --lg-checkpoint {input.lg_checkpoint}"
        " --tokens {input.tokens} --features {input.features} --vocab {input.vocab} --images {params.images}"
        " --out-dir {params.out_dir} --device {params.device} --config {params.cfg} > {log} 2>&1"
