"""Shared fixtures: quiet offline environment, a private state folder per test, test tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
         "MLFLOW_DISABLE_TELEMETRY": "true", "GIT_PYTHON_REFRESH": "quiet",
         "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
os.environ.update(QUIET)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    """MLflow store, registry and remote of this test only."""
    state = tmp_path / "state"
    monkeypatch.setenv("SYNTHAUG_STATE_DIR", str(state))
    for key in ("MLFLOW_TRACKING_URI", "SYNTHAUG_REGISTRY_URL", "SYNTHAUG_DVC_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return state


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test (starting one costs 12-30 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def make_clinic_table(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """A patient-records-like table: string categoricals, missing numbers, an ID, a date, a flag."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 12, n).clip(18, 95).round()
    sex = rng.choice(["female", "male"], n)
    smoker = rng.random(n) < 0.25
    bmi = rng.normal(27, 4, n)
    bmi[rng.random(n) < 0.08] = np.nan  # missing measurements
    ward = rng.choice(["cardiology", "oncology", "surgery", "general"], n, p=[0.2, 0.2, 0.3, 0.3])
    risk = 0.04 * (age - 55) + 0.8 * smoker + 0.05 * np.nan_to_num(bmi - 27) + (ward == "oncology") * 0.7
    outcome = np.where(risk + rng.normal(0, 1, n) > 1.3, "readmitted", "home")
    admitted = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    return pd.DataFrame({
        "patient_id": [f"P{100000 + i}" for i in range(n)],
        "age": age.astype(int),
        "sex": sex,
        "smoker": smoker,
        "bmi": bmi,
        "ward": ward,
        "admitted": admitted.strftime("%Y-%m-%d"),
        "outcome": outcome,
    })


@pytest.fixture(scope="session")
def clinic_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "clinic.csv"
    make_clinic_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def breast_cancer():
    from synth.tables import load_table

    return load_table("builtin:breast_cancer")
