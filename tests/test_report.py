"""`synthaug evaluate` on data made elsewhere, and the HTML report as a browser shows it."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import pytest

from synth.schema import infer_schema
from tests.test_evaluation import noisy_copy, three_way

SECTIONS = ("verdict", "utility", "fidelity", "privacy", "definitions")
FIGURES = ("marginals", "correlation difference", "detection roc", "dcr", "membership roc")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, breast_cancer):
    """The CLI scores a fresh real sample (should pass) and a noisy copy (should be rejected)."""
    folder = tmp_path_factory.mktemp("evaluate")
    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout, third = three_way(breast_cancer, "diagnosis")
    train.to_csv(folder / "train.csv", index=False)
    holdout.to_parquet(folder / "holdout.parquet", index=False)
    third.to_csv(folder / "fresh.csv", index=False)
    noisy_copy(train, kinds).to_csv(folder / "noisy.csv", index=False)
    results = {}
    for case in ("fresh", "noisy"):
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "evaluate", "--train", "train.csv", "--holdout", "holdout.parquet",
             "--synthetic", f"{case}.csv", "--target", "diagnosis", "--sensitive", "diagnosis",
             "--out", f"{case}-eval", "--json"], cwd=folder, capture_output=True, text=True, timeout=600)
        results[case] = (done.returncode, json.loads(done.stdout) if done.stdout else None, done.stderr)
    return folder, results


def test_evaluate_passes_a_fresh_sample_and_rejects_a_copy(evaluated):
    _, results = evaluated
    code, fresh, err = results["fresh"]
    assert code == 0, err
    assert fresh["status"] == "passed" and fresh["gate"]["passed"]
    code, noisy, _ = results["noisy"]
    assert code == 1 and noisy["status"] == "rejected" and len(noisy["gate"]["reasons"]) >= 2
    assert noisy["metrics"]["privacy_attribute_advantage_diagnosis"] > fresh["metrics"]["privacy_attribute_advantage_diagnosis"]


def test_evaluate_refuses_synthetic_data_with_other_columns(evaluated):
    folder, _ = evaluated
    (folder / "other.csv").write_text("a,b\n1,2\n3,4\n")
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "evaluate", "--train", "train.csv",
                           "--holdout", "holdout.parquet", "--synthetic", "other.csv"],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "synthetic data lacks columns" in done.stderr


def test_report_is_self_contained_with_every_section_and_figure(evaluated):
    from PIL import Image

    folder, results = evaluated
    page = (folder / "noisy-eval" / "report.html").read_text()
    assert "REJECTED" in page and "membership-inference attack" in page
    for section in SECTIONS:
        assert f'id="{section}"' in page
    for figure in FIGURES:
        assert f'alt="{figure}"' in page
    assert not re.search(r'(src|href)="(http|//)', page)  # nothing fetched from the network
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 100


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Chromium is not installed (make test installs Debian's package)")


def assert_renders_in_chromium(report, scratch, sections=SECTIONS, min_images=len(FIGURES)):
    """Headless Chromium loads the page with no console errors, every section and figure, and draws it."""
    from PIL import Image

    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--enable-logging=stderr", "--v=0", f"--user-data-dir={scratch / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in sections:
        assert f'id="{section}"' in dom.stdout
    assert dom.stdout.count("<img") >= min_images
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console_errors == []
    shot = scratch / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1100,3000", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1100, 3000)
    assert len(set(image.getdata())) > 50  # drawn figures, not a blank page


@needs_chromium
def test_report_renders_in_headless_chromium_without_console_errors(evaluated, tmp_path):
    folder, _ = evaluated
    assert_renders_in_chromium(folder / "noisy-eval" / "report.html", tmp_path)


def test_verdict_states_fidelity_and_utility_plainly():
    from evaluation.report import verdict

    metrics = {"fidelity_detection_auc": 0.99, "fidelity_quality": 0.7, "utility_gbm_lift": 0.004,
               "utility_gbm_lift_std": 0.01, "utility_gbm_lift_low": -0.008, "utility_gbm_lift_high": 0.016}
    lines = verdict({"metrics": metrics, "gate": {"passed": True, "reasons": []}})
    assert lines[0].startswith("Privacy: every check") and "almost perfectly" in lines[1]
    assert "made no detectable change" in lines[2]
    metrics.update(utility_gbm_lift_low=0.002, fidelity_detection_auc=0.55)
    lines = verdict({"metrics": metrics, "gate": {"passed": False, "reasons": ["a leak"]}})
    assert lines[0] == "Privacy: rejected by the publish gate: a leak." and "raised" in lines[2]
    assert "difficulty telling" in lines[1]
