"""The `dvc.yaml` front: `dvc repro` in a fresh git repository runs the run policy end to end, and a
second `dvc repro` on the same source trains nothing and records a no-op, as a scheduled run does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
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


def dvc_project(tmp_path: Path, **train) -> tuple[Path, Path]:
    """A fresh git + DVC repository holding the project's stages, code and params (a small request)."""
    project, state = tmp_path / "project", tmp_path / "state"
    project.mkdir()
    for folder in ("pipelines", "synth", "evaluation"):  # the stages' code is among their deps
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({"epochs": 5, **train})
    params["sample"]["rows"] = 100
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / ".gitignore").write_text("/build/\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)
    return project, state


def mlflow_runs(state: Path):
    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("synthaug").experiment_id])


def test_dvc_repro_publishes_then_records_a_noop_for_an_unchanged_source(tmp_path):
    project, state = dvc_project(tmp_path)

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
    outcomes = sorted(r.data.tags.get("synthaug.outcome", r.data.tags.get("synthaug.gate")) for r in mlflow_runs(state))
    assert outcomes == ["passed", "unchanged"]


def test_dvc_repro_trains_candidates_and_publishes_a_fresh_draw_from_the_best(tmp_path):
    """The same run policy as the flow's: each candidate trained and scored, then the best one's
    generator drawn afresh (another seed), scored anew and published, every candidate tracked."""
    project, state = dvc_project(tmp_path, candidates=2)

    result = dvc_repro(project, state)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "breast_cancer: published" in result.stdout
    build = project / "build"
    selection = json.loads((build / "candidates" / "selection.json").read_text())
    assert selection["candidates"] == 2 and selection["selected"] in (0, 1)
    best = build / "candidates" / str(selection["selected"])
    assert (best / "evaluation" / "metrics.json").is_file() and (build / "model" / "generator").is_dir()
    published = pd.read_parquet(build / "draw" / "synthetic.parquet")
    candidate_draw = pd.read_parquet(best / "draw" / "synthetic.parquet")
    assert len(published) == 100 and not published.equals(candidate_draw)  # a fresh draw, not the scored one
    runs = mlflow_runs(state)
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(nested) == 2 and sum(r.data.tags["synthaug.candidate.selected"] == "true" for r in nested) == 1
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert {r.data.tags["mlflow.parentRunId"] for r in nested} == {parent.info.run_id}
