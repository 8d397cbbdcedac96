"""Shared fixtures: quiet offline environment, a private state folder per test, test tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from synth.simulated import simulated_admissions

QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
         "MLFLOW_DISABLE_TELEMETRY": "true", "GIT_PYTHON_REFRESH": "quiet",
         "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
         "SYNTHAUG_PREFECT_IDLE_MINUTES": "1"}  # a local server a test leaves behind stops within minutes
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
    yield state
    from pipelines import local_server

    local_server.stop(state)  # requests without PREFECT_API_URL started one in this folder


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test (starting one costs 12-30 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def clinic_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "clinic.csv"
    simulated_admissions(5000).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def breast_cancer():
    from synth.tables import load_table

    return load_table("builtin:breast_cancer")


@pytest.fixture(scope="session")
def breastmnist_quarter(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Every fourth BreastMNIST image of each class and split, in the MedMNIST layout: the real images'
    path at a quarter of the scoring time (the utility CNNs' steps follow the training set's size).
    Returns the file and its training + validation images per class."""
    parts = {}
    with np.load(SHARED_DATA / "breastmnist.npz") as full:
        for split in ("train", "val", "test"):
            labels = full[f"{split}_labels"].reshape(-1)
            kept = np.sort(np.concatenate([np.flatnonzero(labels == k)[::4] for k in np.unique(labels)]))
            parts[f"{split}_images"], parts[f"{split}_labels"] = full[f"{split}_images"][kept], full[f"{split}_labels"][kept]
    source = tmp_path_factory.mktemp("breastmnist") / "breastmnist_quarter.npz"
    np.savez(source, **parts)
    return source, np.bincount(np.concatenate([parts["train_labels"], parts["val_labels"]]).reshape(-1))
