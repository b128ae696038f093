"""Datasets: synthetic generator, downloads, parsers, split and degrees."""
