# visdial-lg: from raw VisDial / COCO downloads to every table of
# "Learning to Ground Visual Objects for Visual Dialog" (Findings of EMNLP 2021).
#
#   snakemake --cores 8 --use-conda results/table1.csv          # the real run (GPU + network)
#   make demo                                                    # the synthetic demo, CPU only
#
# Stages, one rule file each (docs/architecture.md): download -> demo | features -> text -> train
# -> evaluate -> report (tables, figures).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        ALL_TABLES,
        ALL_FIGURES,
