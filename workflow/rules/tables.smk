# Tables: CSV and Markdown, each from aggregated metrics.

TABLES = ["runs", "table2"]


rule runs_table:
    input:
        expand("results/{{preset}}/metrics/{experiment}.parquet", experiment=config["experiments"]),
    output:
        csv=report(
            "results/{preset}/tables/runs.csv", caption="../report/runs.rst", category="Tables"
        ),
        md="results/{preset}/tables/runs.md",
    log:
        "results/{preset}/logs/table/runs.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    shell:
        "python -m prism_repro table runs --in {input} --out-csv {output.csv} --out-md {output.md}"
        " 2> {log}"


# Table 2: users, items, interactions, density of each dataset of the preset, beside the paper's.
rule table2:
    input:
        expand("results/{{preset}}/data/{dataset}/interactions.parquet", dataset=preset_datasets()),
    output:
        csv="results/{preset}/tables/table2.csv",
        md="results/{preset}/tables/table2.md",
    log:
        "results/{preset}/logs/table/table2.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        datasets=preset_datasets(),
    shell:
        "python -m prism_repro table2 --datasets {params.datasets} --in {input}"
        " --out-csv {output.csv} --out-md {output.md} 2> {log}"
