"""The `dvc.yaml` front: `dvc repro` in a fresh git repository runs the run policy end to end, and a
second `dvc repro` on the same source trains nothing and records a no-op, as a scheduled run does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow import MlflowClient

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def dvc_repro(project: Path, state: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for key in ("MLFLOW_TRACKING_URI", "SYNTHAUG_REGISTRY_URL", "SYNTHAUG_DVC_REMOTE"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=900)


def test_dvc_repro_publishes_then_records_a_noop_for_an_unchanged_source(tmp_path):
    project, state = tmp_path / "project", tmp_path / "state"
    project.mkdir()
    for folder in ("pipelines", "synth", "evaluation"):  # the stages' code is among their deps
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["epochs"], params["sample"]["rows"] = 5, 100
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / ".gitignore").write_text("/build/\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)

    first = dvc_repro(project, state)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "breast_cancer: published" in first.stdout
    tags = subprocess.run(["git", "tag"], cwd=state / "registry.git", capture_output=True, text=True).stdout.split()
    assert tags == ["breast_cancer-v1"]
    assert (project / "dvc.lock").is_file() and (project / "build" / "evaluation" / "metrics.json").is_file()
    assert {p.name for p in (project / "build").iterdir()} >= {"data", "model", "draw", "evaluation", "package"}

    second = dvc_repro(project, state)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "breast_cancer: unchanged" in second.stdout
    assert "Stage 'train' didn't change, skipping" in second.stdout
    tags = subprocess.run(["git", "tag"], cwd=state / "registry.git", capture_output=True, text=True).stdout.split()
    assert tags == ["breast_cancer-v1"]
    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("synthaug").experiment_id])
    outcomes = sorted(r.data.tags.get("synthaug.outcome", r.data.tags.get("synthaug.gate")) for r in runs)
    assert outcomes == ["passed", "unchanged"]
