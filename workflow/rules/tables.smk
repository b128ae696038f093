# Tables: CSV and Markdown, each from aggregated metrics.

TABLES = ["runs"]


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
