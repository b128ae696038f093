# The reproduction record (prism_repro.record): when the preset sets `record: <csv>`, each run is
# merged into that committed CSV as soon as its training job ends (record_run), so the record
# grows while a long preset trains and survives the results folder. Merging is idempotent and
# locked; `python -m prism_repro record --results results/<preset> --out <csv>` does the same by
# hand. The per-experiment files are handy targets for one sitting: every candidate and final
# run of that experiment, trained and recorded.


rule record_run:
    input:
        metrics="results/{preset}/runs/{dataset}/{run}/metrics.parquet",
        norms="results/{preset}/runs/{dataset}/{run}/norms.parquet",
        epochs="results/{preset}/runs/{dataset}/{run}/epochs.parquet",
    output:
        "results/{preset}/runs/{dataset}/{run}/record.csv",
    log:
        "results/{preset}/logs/record/{dataset}/{run}.log",
    # before the next training job takes the core its run just freed: the row is committed
    # as soon as possible, not when the whole sitting ends
    priority: 100
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        out=record_csv,
    shell:
        "python -m prism_repro record --results results/{wildcards.preset}"
        " --preset {wildcards.preset} --runs results/{wildcards.preset}/runs/{wildcards.dataset}/{wildcards.run}"
        " --out {params.out} --rows {output} 2> {log}"


rule record_experiment:
    input:
        experiment_record_rows,
    output:
        "results/{preset}/record/{experiment}.csv",
    log:
        "results/{preset}/logs/record/{experiment}.log",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    params:
        out=record_csv,
        runs=record_dirs,
    shell:
        "python -m prism_repro record --results results/{wildcards.preset}"
        " --preset {wildcards.preset} --runs {params.runs} --out {params.out}"
        " --rows {output} 2> {log}"
