"""prism-repro: rebuild the PRISM paper (Loveland et al., KDD'25) as one Snakemake DAG."""

__version__ = "0.1.0"
