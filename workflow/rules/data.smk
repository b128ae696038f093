# Data: raw files -> interactions.parquet -> seeded split -> train degrees and popularity strata.


rule synthetic_dataset:
    output:
        train="results/{preset}/data/{dataset}/raw/train.txt",
        test="results/{preset}/data/{dataset}/raw/test.txt",
    log:
        "results/{preset}/logs/synthetic_dataset/{dataset}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        p=synthetic_params,
    shell:
        "python -m prism_repro synthetic --users {params.p[users]} --items {params.p[items]}"
        " --interactions-per-user {params.p[interactions_per_user]}"
        " --zipf-exponent {params.p[zipf_exponent]} --latent-dim {params.p[latent_dim]}"
        " --seed {params.p[seed]} --out-train {output.train} --out-test {output.test} 2> {log}"


rule preprocess:
    input:
        raw_dataset_files,
    output:
        "results/{preset}/data/{dataset}/interactions.parquet",
    log:
        "results/{preset}/logs/preprocess/{dataset}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        source=preprocess_source,
    shell:
        "python -m prism_repro preprocess --source {params.source} --in {input} --out {output} 2> {log}"


rule split:
    input:
        "results/{preset}/data/{dataset}/interactions.parquet",
    output:
        "results/{preset}/data/{dataset}/split_s{seed}.parquet",
    log:
        "results/{preset}/logs/split/{dataset}_s{seed}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        fractions=config["split"]["fractions"],
    shell:
        "python -m prism_repro split --in {input} --out {output} --seed {wildcards.seed}"
        " --fractions {params.fractions} 2> {log}"


rule degrees:
    input:
        "results/{preset}/data/{dataset}/split_s{seed}.parquet",
    output:
        "results/{preset}/data/{dataset}/degrees_s{seed}.parquet",
    log:
        "results/{preset}/logs/degrees/{dataset}_s{seed}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        strata=config["split"]["strata_degrees"],
    shell:
        "python -m prism_repro degrees --in {input} --out {output} --strata-degrees {params.strata}"
        " 2> {log}"
