"""`snakemake --report`: one HTML file with every figure and table, rendered by a real browser."""

import shutil
import subprocess

import pytest

from conftest import snakemake

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    report = tiny_run / "report.html"
    snakemake(tiny_run, "--report", str(report), "--config", "preset=tiny")
    html = report.read_text()
    for name in ["fig1.png", "fig7.png", "table1.csv", "claims.csv", "table2.csv"]:
        assert name in html, name
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    proc = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom = proc.stdout
    # the report is a JavaScript app: the source holds an empty mount point, the rendered DOM
    # holds the app's menu (list items) with the result categories
    assert 'id="app"><div' not in html
    assert 'id="app"><div' in dom, proc.stderr[-2000:]
    assert dom.count("<li") > html.count("<li")
    assert "Figures" in dom and "Tables" in dom
