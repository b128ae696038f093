# Data: downloads -> raw files -> interactions.parquet -> seeded split -> train degrees and strata.
# Processed data lives under data/<dataset>/<dvariant>/: the variant (config `variants:`) whose
# data-level keys (MovieLens rating filter, strata degrees) it was made with.


# One job per pinned file of each dataset: mirror first, then the public source, checksum-verified.
# Raw files are shared by all presets; runs on the submitting host (compute nodes may be offline).
rule download:
    output:
        "resources/raw/{dataset}/{file}",
    log:
        "resources/logs/download/{dataset}/{file}.log",
    wildcard_constraints:
        file="[A-Za-z0-9][A-Za-z0-9._-]*",
    localrule: True
    conda:
        "../../envs/prism.yaml"
    # where to fetch from, not what: a resource, so that switching mirrors reruns nothing
    resources:
        mirror=config["mirror"],
    params:
        url=download_url,
        checksum=download_checksum,
    shell:
        "python -m prism_repro download --url {params.url:q} --checksum {params.checksum}"
        " --mirror={resources.mirror:q} --out {output} 2> {log}"


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
        "results/{preset}/data/{dataset}/{dvariant}/interactions.parquet",
    log:
        "results/{preset}/logs/preprocess/{dataset}_{dvariant}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        source=preprocess_source,
        options=preprocess_options,
    shell:
        "python -m prism_repro preprocess --source {params.source} {params.options} --in {input}"
        " --out {output} 2> {log}"


rule split:
    input:
        "results/{preset}/data/{dataset}/{dvariant}/interactions.parquet",
    output:
        "results/{preset}/data/{dataset}/{dvariant}/split_s{seed}.parquet",
    log:
        "results/{preset}/logs/split/{dataset}_{dvariant}_s{seed}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        fractions=config["split"]["fractions"],
    shell:
        "python -m prism_repro split --in {input} --out {output} --seed {wildcards.seed}"
        " --fractions {params.fractions} 2> {log}"


rule degrees:
    input:
        "results/{preset}/data/{dataset}/{dvariant}/split_s{seed}.parquet",
    output:
        "results/{preset}/data/{dataset}/{dvariant}/degrees_s{seed}.parquet",
    log:
        "results/{preset}/logs/degrees/{dataset}_{dvariant}_s{seed}.log",
    conda:
        "../../envs/prism.yaml"
    params:
        strata=strata_degrees,
    shell:
        "python -m prism_repro degrees --in {input} --out {output} --strata-degrees {params.strata}"
        " 2> {log}"
