# The paper's Tables 1-7 as CSV (cited rows marked source=paper, reproduced
# rows marked with the dataset they ran on), and all of them in tables.md.

from visdial_lg.report.tables import paper_tables

PAPER_TABLES = paper_tables()


rule table:
    input:
        lambda w: table_inputs(int(w.n)),
    output:
        report("results/table{n}.csv", caption="../report/table.rst", category="Tables"),
    log:
        "results/logs/tables/table{n}.log",
    wildcard_constraints:
        n="[1-7]",
    params:
        dataset=config["dataset"],
        title=lambda w: PAPER_TABLES[f"table{w.n}"]["title"],  # for the report caption
        cfg=config_arg("evaluate", "versions"),
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg table {wildcards.n} --inputs {input} --dataset {params.dataset}"
        " --out {output} --config {params.cfg} > {log} 2>&1"


rule tables_markdown:
    input:
        [f"results/table{n}.csv" for n in TABLES],
    output:
        report("results/tables.md", caption="../report/tables.rst", category="Tables"),
    log:
        "results/logs/tables/tables_md.log",
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "python -m visdial_lg tables-markdown {input} --out {output} > {log} 2>&1"
