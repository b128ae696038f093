# prism-repro: every table and figure of "On the Role of Weight Decay in Collaborative Filtering:
# A Popularity Perspective" (Loveland et al., KDD'25) as one DAG.
#
# Results of a preset go under results/<preset>/ (data/, runs/, metrics/, figures/, tables/, logs/);
# raw downloads, shared by presets, under resources/raw/. Select a preset with
# `snakemake --config preset=<name>`; all logic lives in the prism_repro package (src/).
from snakemake.utils import min_version

min_version("9.12")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/packs.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/record.smk"


rule all:
    default_target: True
    input:
        figure_targets(),
        table_targets(),
        record_targets(),


rule figures:
    input:
        figure_targets(),


rule tables:
    input:
        table_targets(),


rule runs:
    input:
        run_metrics_targets(),


# every run merged into the preset's record (`record:` in the preset; workflow/rules/record.smk)
rule record:
    input:
        record_targets(),
