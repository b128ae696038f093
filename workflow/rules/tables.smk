# Tables: CSV, Markdown and LaTeX, each from aggregated experiment tables (TABLE_EXPERIMENTS in
# prism_repro/artifacts.py says which); Table 2 from the datasets themselves.


rule table:
    input:
        metrics=experiment_tables(""),
        norms=experiment_tables("_norms"),
        theory=claims_theory_tables,
    output:
        csv=report(
            "results/{preset}/tables/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="results/{preset}/tables/{table}.md",
        tex="results/{preset}/tables/{table}.tex",
    log:
        "results/{preset}/logs/table/{table}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    shell:
        "python -m prism_repro table {wildcards.table} --metrics {input.metrics}"
        " --norms {input.norms} --theory {input.theory} --out-csv {output.csv}"
        " --out-md {output.md}"
        " --out-tex {output.tex} 2> {log}"


# Table 2: users, items, interactions, density of each dataset of the preset, beside the paper's.
rule table2:
    input:
        expand(
            "results/{{preset}}/data/{dataset}/{dvariant}/interactions.parquet",
            dataset=preset_datasets(),
            dvariant=DEFAULT_VARIANT,
        ),
    output:
        csv=report(
            "results/{preset}/tables/table2.csv",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "table2"},
        ),
        md="results/{preset}/tables/table2.md",
        tex="results/{preset}/tables/table2.tex",
    log:
        "results/{preset}/logs/table/table2.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        datasets=preset_datasets(),
    shell:
        "python -m prism_repro table2 --datasets {params.datasets} --in {input}"
        " --out-csv {output.csv} --out-md {output.md} --out-tex {output.tex} 2> {log}"
