"""The pipeline as a service: PostgreSQL-backed Prefect and MLflow servers on loopback,
`synthaug serve` with two scheduled datasets, forced schedule ticks, and `synthaug request`.

Everything runs as separate processes started the way the README documents, so the test
exercises the same commands an operator types.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from synth.simulated import simulated_admissions
from synth.tables import load_table
from tests.conftest import QUIET, ROOT

BIN = Path(sys.executable).parent
POSTGRES = ROOT / "scripts" / "postgres.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout} s: {log.read_text()[-2000:]}")


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A server in its own process group, so stopping it also stops its workers (MLflow's huey)."""
    return subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def postgres():
    folder = tempfile.mkdtemp(prefix="synthaug-pg-", dir="/tmp")  # reachable by the `postgres` user
    port = free_port()
    done = subprocess.run(["bash", str(POSTGRES), "start", folder, str(port)], capture_output=True, text=True)
    if done.returncode == 3:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot run here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    urls = dict(line.split("=", 1) for line in done.stdout.split())
    yield {**urls, "port": port}
    subprocess.run(["bash", str(POSTGRES), "stop", folder], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def service(postgres, tmp_path_factory):
    """Prefect and MLflow servers on PostgreSQL, and the environment a client of both uses."""
    root = tmp_path_factory.mktemp("service")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SYNTHAUG_"))}
    env.update(QUIET, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PREFECT_HOME=str(root / "prefect-home"))
    prefect_port, mlflow_port = free_port(), free_port()
    prefect_server = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
                           {**env, "PREFECT_SERVER_DATABASE_CONNECTION_URL":
                               postgres["PREFECT_SERVER_DATABASE_CONNECTION_URL"]}, root / "prefect.log")
    mlflow_server = start([str(BIN / "mlflow"), "server", "--backend-store-uri", postgres["MLFLOW_BACKEND_STORE_URI"],
                           "--artifacts-destination", str(root / "mlartifacts"), "--host", "127.0.0.1",
                           "--port", str(mlflow_port), "--workers", "1"], env, root / "mlflow.log")
    try:
        wait_for(f"http://127.0.0.1:{prefect_port}/api/health", prefect_server, root / "prefect.log")
        wait_for(f"http://127.0.0.1:{mlflow_port}/health", mlflow_server, root / "mlflow.log")
        env.update(PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
                   MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}", SYNTHAUG_STATE_DIR=str(root / "state"))
        yield {"env": env, "root": root, **postgres}
    finally:
        stop(prefect_server)
        stop(mlflow_server)


def rows_in(postgres: dict, database: str, table: str) -> int:
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres["port"]), "-U", "postgres", "-d", database,
                          "-tAc", f"SELECT count(*) FROM {table}"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def registry_tags(env: dict) -> set[str]:
    out = subprocess.run(["git", "ls-remote", "--tags", str(Path(env["SYNTHAUG_STATE_DIR"]) / "registry.git")],
                         capture_output=True, text=True, check=True).stdout
    return {line.split("refs/tags/")[1] for line in out.splitlines() if not line.endswith("^{}")}


def test_serve_republishes_only_changed_source_and_request_returns_summary(service):
    env, root = service["env"], service["root"]
    load_table("builtin:breast_cancer").to_csv(root / "cancer.csv", index=False)
    simulated_admissions(600, seed=1).to_csv(root / "clinic.csv", index=False)
    (root / "datasets.yaml").write_text(
        "datasets:\n"
        "  cancer: {cron: '0 3 * * *', data: cancer.csv, target: diagnosis, rows: 100, epochs: 10,\n"
        "           gate: {min_dcr_pvalue: 0.0001}}\n"
        "  clinic: {cron: '0 4 * * *', data: clinic.csv, target: outcome, rows: 100, epochs: 3,\n"
        "           gate: {min_dcr_pvalue: 0.0001}}\n")  # a few epochs: the subject is the schedule, not the GAN
    served = start([str(BIN / "synthaug"), "serve", "--datasets", str(root / "datasets.yaml")], env, root / "serve.log")
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([str(BIN / "prefect"), "deployment", "inspect", "augment-dataset/clinic"],
                             env=env, capture_output=True).returncode != 0:
            assert served.poll() is None and time.monotonic() < deadline, (root / "serve.log").read_text()[-2000:]
            time.sleep(1)

        def tick(name: str) -> None:
            """A forced schedule tick: the deployment run with its scheduled parameters, now."""
            done = subprocess.run([str(BIN / "prefect"), "deployment", "run", f"augment-dataset/{name}", "--watch",
                                   "--watch-timeout", "600"], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout[-2000:] + (root / "serve.log").read_text()[-3000:]

        tick("cancer"), tick("clinic")
        assert registry_tags(env) == {"cancer-v1", "clinic-v1"}

        simulated_admissions(600, seed=2).to_csv(root / "clinic.csv", index=False)  # the source changed
        tick("cancer"), tick("clinic")
        assert registry_tags(env) == {"cancer-v1", "clinic-v1", "clinic-v2"}

        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("synthaug")
        noop = client.search_runs([experiment.experiment_id], "tags.`synthaug.outcome` = 'unchanged'")
        assert [r.data.tags["synthaug.dataset"] for r in noop] == ["cancer"]
        assert noop[0].data.tags["synthaug.unchanged_since"] == "cancer-v1"

        requested = subprocess.run([str(BIN / "synthaug"), "request", "cancer", "--rows", "50",
                                    "--condition", "diagnosis=malignant", "--json"],
                                   env=env, capture_output=True, text=True)
        assert requested.returncode == 0, requested.stdout[-2000:] + requested.stderr[-2000:]
        summary = json.loads(requested.stdout)
        assert summary["status"] == "published" and summary["registry"]["rev"] == "cancer-v2"
        assert summary["rows"]["synthetic"] == 50
        run = client.get_run(summary["mlflow"]["run_id"])
        assert run.data.tags["synthaug.registry.rev"] == "cancer-v2"
        assert json.loads(run.data.params["conditions"]) == {"diagnosis": "malignant"}

        same = subprocess.run([str(BIN / "synthaug"), "request", "clinic", "--json"], env=env,
                              capture_output=True, text=True)
        assert same.returncode == 0, same.stderr[-2000:]
        unchanged = json.loads(same.stdout)
        assert unchanged["status"] == "unchanged" and unchanged["registry"]["rev"] == "clinic-v2"
        assert unchanged["metrics"]["fidelity_quality"] > 0

        bad = subprocess.run([str(BIN / "synthaug"), "request", "cancer", "--rows", "0"], env=env,
                             capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.strip() == "error: invalid rows: Input should be greater than or equal to 1"
        assert registry_tags(env) == {"cancer-v1", "cancer-v2", "clinic-v1", "clinic-v2"}
    finally:
        stop(served)
    # both servers kept their state in PostgreSQL; the model went through MLflow's artifact proxy
    assert rows_in(service, "prefect", "flow_run") >= 6
    assert rows_in(service, "mlflow", "runs") >= 6
    assert list((root / "mlartifacts").rglob("MLmodel"))


def test_shipped_datasets_file_describes_valid_scheduled_requests():
    from pipelines.settings import scheduled_datasets

    schedules = scheduled_datasets(ROOT / "datasets.yaml")
    assert set(schedules) == {"breast_cancer", "breastmnist"}
    assert all(len(cron.split()) == 5 and request.name == name for name, (cron, request) in schedules.items())


def test_serve_and_request_refuse_without_a_server_or_with_a_bad_datasets_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([str(BIN / "synthaug"), "serve"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "PREFECT_API_URL" in done.stderr
    (tmp_path / "datasets.yaml").write_text("datasets:\n  x: {cron: 'every day', data: builtin:breast_cancer}\n")
    done = subprocess.run([str(BIN / "synthaug"), "serve", "--datasets", str(tmp_path / "datasets.yaml")],
                          env={**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}, capture_output=True, text=True)
    assert done.returncode == 2 and "'cron' must be a cron expression" in done.stderr
    dead = {**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # nothing listens there
    for args in (["serve", "--datasets", str(ROOT / "datasets.yaml")], ["request", "breast_cancer"],
                 ["deploy", "--pool", "p", "--datasets", str(ROOT / "datasets.yaml")]):
        done = subprocess.run([str(BIN / "synthaug"), *args], env=dead, capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not answer" in done.stderr, args
