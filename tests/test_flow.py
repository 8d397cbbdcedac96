"""The whole request, end to end, checked from the outside with MLflow's and DVC's own APIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT

SYNTHAUG = [sys.executable, "-m", "pipelines.cli"]


def cli(args: list[str], state: Path, api_url: str | None = None, cwd: Path | None = None, env: dict | None = None):
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run([*SYNTHAUG, *args], capture_output=True, text=True, env=env, cwd=cwd or state.parent,
                          timeout=900)


def dvc_get_file(registry: dict, filename: str, out: Path) -> Path:
    """A published file, fetched the way a consumer would: plain `dvc get` of the tag."""
    subprocess.run([sys.executable, "-m", "dvc", "get", registry["url"], f"{registry['path']}/{filename}",
                    "--rev", registry["rev"], "-o", str(out)], check=True, capture_output=True, cwd=out.parent)
    return out


def dvc_get(registry: dict, filename: str, out: Path) -> pd.DataFrame:
    return pd.read_parquet(dvc_get_file(registry, filename, out))


def registry_tags(state: Path) -> list[str]:
    repo = state / "registry.git"
    if not repo.exists():
        return []
    return subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()


def registered_versions(state: Path) -> list[tuple[str, str]]:
    if not (state / "mlflow.db").exists():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    return sorted((v.name, v.version) for v in client.search_model_versions())


@pytest.fixture(scope="module")
def api_url(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def published(tmp_path_factory, api_url):
    """The issue's request: 400 synthetic malignant records, through the CLI."""
    state = tmp_path_factory.mktemp("published") / ".synthaug"
    done = cli(["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", "--rows", "400",
                "--condition", "diagnosis=malignant", "--epochs", "30", "--json"], state, api_url)
    assert done.returncode == 0, done.stderr[-3000:]
    return state, json.loads(done.stdout)


def test_json_summary_has_the_contract_fields(published):
    _, summary = published
    assert summary["status"] == "published" and summary["name"] == "breast_cancer"
    assert summary["rows"] == {"real_train": 398, "holdout": 171, "synthetic": 400}
    assert all(isinstance(v, (int, float)) for v in summary["metrics"].values())
    assert {"fidelity_quality", "fidelity_detection_auc", "privacy_exact_copies", "privacy_dcr_pvalue",
            "utility_gbm_lift"} <= set(summary["metrics"])
    assert set(summary["mlflow"]) >= {"tracking_uri", "run_id", "model_uri"}
    assert set(summary["registry"]) >= {"url", "path", "rev"}
    timings = summary["timings"]  # seconds per stage, and the rest as overhead
    assert set(timings) == {"load", "split", "train", "sample", "evaluate", "track", "publish", "overhead"}
    assert all(v >= 0 for v in timings.values()) and timings["train"] > 0


def test_dvc_get_returns_400_malignant_synthetic_rows(published, tmp_path):
    _, summary = published
    synthetic = dvc_get(summary["registry"], "synthetic.parquet", tmp_path / "s.parquet")
    assert len(synthetic) == 400 and (synthetic["diagnosis"] == "malignant").all()
    augmented = dvc_get(summary["registry"], "augmented.parquet", tmp_path / "a.parquet")
    assert len(augmented) == 398 + 400 and augmented["is_synthetic"].sum() == 400
    assert augmented.shape[1] == 31 + 1


def test_mlflow_run_metrics_figures_and_registered_model(published):
    import mlflow
    from mlflow import MlflowClient

    _, summary = published
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    run = client.get_run(summary["mlflow"]["run_id"])
    for key, value in summary["metrics"].items():
        assert run.data.metrics[key] == pytest.approx(value)
    assert run.data.params["rows"] == "400" and run.data.tags["synthaug.gate"] == "passed"
    assert run.data.params["engine"] == "tabgan"  # the default engine is ours
    assert 0 < run.data.metrics["sampling_acceptance_rate"] <= 1 and run.data.metrics["sampling_forced_rows"] >= 0
    assert run.data.tags["synthaug.registry.rev"] == summary["registry"]["rev"]
    description = run.data.tags["mlflow.note.content"]  # what a reviewer reads first on the run page
    assert description.startswith("Privacy: every check") and "detection AUC" in description
    assert "Utility: Adding the synthetic rows" in description and "95 % interval" in description
    assert len(client.get_metric_history(run.info.run_id, "loss_generator")) == 30
    figures = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "figures")}
    assert {"marginals.png", "correlation_difference.png", "losses.png", "dcr.png"} <= figures
    assert run.inputs.dataset_inputs[0].dataset.name == "breast_cancer"
    version = client.get_model_version("breast_cancer", summary["mlflow"]["registered_version"])
    assert version.run_id == run.info.run_id

    mlflow.set_tracking_uri(summary["mlflow"]["tracking_uri"])
    requirements = Path(mlflow.artifacts.download_artifacts("models:/breast_cancer/1")) / "requirements.txt"
    pinned = dict(line.split("==") for line in requirements.read_text().split())
    assert {"torch", "numpy", "pandas", "scikit-learn", "mlflow"} <= set(pinned)  # what serving it installs
    model = mlflow.pyfunc.load_model("models:/breast_cancer/1")
    rows = model.predict(pd.DataFrame({"n": [25], "conditions": ['{"diagnosis": "benign"}']}))
    assert len(rows) == 25 and (rows["diagnosis"] == "benign").all()


def test_request_report_is_logged_published_and_renders(published, tmp_path):
    from mlflow import MlflowClient

    from tests.test_report import CHROMIUM, assert_renders_in_chromium

    _, summary = published
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    assert "report.html" in {Path(f.path).name for f in client.list_artifacts(summary["mlflow"]["run_id"])}
    sheet = dvc_get_file(summary["registry"], "datasheet.html", tmp_path / "datasheet.html")
    assert "PUBLISHED" in sheet.read_text() and 'id="privacy"' in sheet.read_text()
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's package)")
    assert_renders_in_chromium(sheet, tmp_path, min_images=6)


@pytest.mark.parametrize("args,message", [
    (["--data", "missing.csv"], "data file not found"),
    (["--data", "{binary}"], "looks binary"),
    (["--data", "{empty}"], "is empty"),
    (["--data", "{header_only}"], "no rows"),
    (["--data", "builtin:breast_cancer", "--target", "nope"], "target column 'nope' is not in the table"),
    (["--data", "builtin:breast_cancer", "--condition", "nope=1"], "condition column 'nope'"),
    (["--data", "builtin:breast_cancer", "--condition", "diagnosis=unknown"], "does not occur in column"),
    (["--data", "builtin:breast_cancer", "--condition", "mean radius=3"], "continuous column"),
    (["--data", "builtin:breast_cancer", "--condition", "diagnosis"], "must look like COLUMN=VALUE"),
    (["--data", "{one_class}", "--target", "outcome"], "single class"),
    (["--data", "{tiny}"], "too few"),
    (["--data", "builtin:breast_cancer", "--rows", "-5"], "invalid rows"),
    (["--data", "builtin:breast_cancer", "--name", "../escape"], "invalid name"),
    (["--data", "builtin:breast_cancer", "--engine", "nope"], "unknown engine"),
    (["--data", "{dupcols}"], "duplicated column names: a"),
    (["--data", "{latin1}"], "not UTF-8"),
    (["--data", "{allnan}"], "column 'b' has no values"),
    (["--data", "{per_class}", "--target", "outcome"], "has 1 row"),
    (["--data", "builtin:breast_cancer", "--rows", "100000000"], "invalid rows"),
    (["--data", "builtin:breast_cancer", "--private"], "marked private"),
    (["--data", "builtin:breast_cancer", "--engine", "ctgan", "--dp-epsilon", "3"], "need engine tabgan"),
    (["--data", "builtin:breast_cancer", "--dp-epsilon", "-1"], "invalid dp_epsilon"),
    (["--data", "builtin:breast_cancer", "--column-type", "ghost=numeric"], "unknown column 'ghost'"),
    (["--data", "builtin:breast_cancer", "--sensitive", "ghost"], "sensitive column 'ghost'"),
    (["--data", "builtin:breast_cancer", "--candidates", "0"], "invalid candidates"),
])
def test_bad_input_exits_nonzero_with_one_line_and_changes_nothing(published, tmp_path, args, message):
    state, _ = published
    files = {"binary": b"\x00\x01PK\x03\x04\x00", "empty": b"", "header_only": b"a,b,outcome\n",
             "one_class": b"a,outcome\n" + b"".join(b"%d,x\n" % i for i in range(40)),
             "tiny": b"a,b\n1,2\n3,4\n5,6\n", "dupcols": b"a,a,b\n" + b"1,2,3\n" * 30,
             "latin1": "name,city\n".encode() + "Zoë,Malmö\n".encode("latin-1") * 30,
             "allnan": b"a,b\n" + b"".join(b"%d,\n" % i for i in range(30)),
             "per_class": b"a,outcome\n" + b"".join(b"%d,x\n" % i for i in range(30)) + b"99,y\n"}
    for key, content in files.items():
        (tmp_path / f"{key}.csv").write_bytes(content)
    args = [a.format(**{k: str(tmp_path / f"{k}.csv") for k in files}) for a in args]
    before = (registry_tags(state), registered_versions(state))
    done = cli(["augment", *args, "--json"], state, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert (registry_tags(state), registered_versions(state)) == before


@pytest.mark.parametrize("budget,args,message", [
    ({"SYNTHAUG_MAX_TRAIN_S": "5"}, ["--epochs", "5000"], "s of training (budget 5 s, SYNTHAUG_MAX_TRAIN_S)"),
    ({"SYNTHAUG_MAX_MEMORY_MB": "200"}, [], "MB of memory (budget 200 MB, SYNTHAUG_MAX_MEMORY_MB)"),
    ({"SYNTHAUG_MAX_TRAIN_S": "5"}, ["--candidates", "8", "--epochs", "300"], "s of training (budget 5 s"),
])
def test_request_over_budget_is_refused_up_front_with_the_estimate(published, tmp_path, budget, args, message):
    state, _ = published
    before = (registry_tags(state), registered_versions(state))
    done = cli(["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", *args], state,
               cwd=tmp_path, env=budget)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: refused before training: breast_cancer needs an estimated ~")
    assert message in done.stderr
    assert (registry_tags(state), registered_versions(state)) == before


def test_estimates_grow_with_the_work_asked_for(tmp_path):
    from pipelines.settings import build_request
    from pipelines.stages import estimate_resources, load, split
    from pipelines.workspace import Workspace

    def estimate(tmp, **fields):
        request = build_request(data="builtin:breast_cancer", target="diagnosis", **fields)
        ws = Workspace(tmp)
        load(request, ws), split(request, ws)
        return estimate_resources(request, ws, parallel=2)

    base = estimate(tmp_path)
    epochs = build_request(data="builtin:breast_cancer", target="diagnosis").epochs
    half, double = estimate(tmp_path, epochs=epochs // 2).train_s, estimate(tmp_path, epochs=2 * epochs).train_s
    assert double - base.train_s == pytest.approx(2 * (base.train_s - half))  # linear in epochs, plus preprocessing
    four = estimate(tmp_path, candidates=4)  # two at a time on two workers
    assert four.train_s == pytest.approx(2 * base.train_s) and four.memory_mb == pytest.approx(2 * base.memory_mb)
    assert estimate(tmp_path, dp_epsilon=3).train_s == pytest.approx(2 * base.train_s)  # the non-private twin
    assert estimate(tmp_path, engine="ctgan").memory_mb > base.memory_mb
    assert estimate(tmp_path, time_budget_s=1).train_s == 1


def test_four_candidates_on_dask_publish_the_best_passing_one_and_log_all(state_dir, prefect_harness):
    from mlflow import MlflowClient

    from pipelines.flow import augment_dataset
    from pipelines.run import FRESH_DRAW_SEED_OFFSET

    summary = augment_dataset(data="builtin:breast_cancer", target="diagnosis", rows=100, epochs=10, candidates=4,
                              name="cancer_candidates")
    lines = summary["candidates"]
    assert [c["seed"] for c in lines] == [0, 1, 2, 3] and sum(c["selected"] for c in lines) == 1
    passing = [c for c in lines if c["gate_passed"]]
    chosen = next(c for c in lines if c["selected"])
    assert passing and chosen["fidelity_quality"] == max(c["fidelity_quality"] for c in passing)
    assert summary["status"] == "published" and registry_tags(state_dir) == ["cancer_candidates-v1"]
    # what is published is a fresh draw from the chosen generator, scored anew, not the draw that won
    [run_dir] = (state_dir / "runs").glob("cancer_candidates-*")
    selected = run_dir / "candidates" / str(chosen["index"])
    fresh = selected.with_name(f"{selected.name}-fresh-draw")
    assert not pd.read_parquet(selected / "draw" / "synthetic.parquet").equals(pd.read_parquet(fresh / "draw" / "synthetic.parquet"))
    assert json.loads((fresh / "evaluation" / "metrics.json").read_text())["metrics"] == summary["metrics"]
    assert all((fresh / "model" / "generator" / f.name).samefile(f) for f in (selected / "model" / "generator").iterdir())  # linked
    from pipelines.summary import markdown_summary

    artifact = markdown_summary(summary)  # the Prefect artifact a reviewer reads
    assert f"fresh draw from candidate {chosen['index']}'s generator" in artifact
    assert sum(line.startswith(f"| {c['index']} | {c['seed']} |") for line in artifact.splitlines() for c in lines) == 4
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    parent = summary["mlflow"]["run_id"]
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.tags["synthaug.candidate"] for r in children) == ["0", "1", "2", "3"]
    assert {r.info.run_id for r in children} == {c["run_id"] for c in lines}
    assert all("fidelity_quality" in r.data.metrics and r.info.status == "FINISHED" for r in children)
    assert all(r.data.params["epochs"] == "10" and "iterations" not in r.data.params for r in children)
    assert client.get_run(parent).data.params["seed"] == str(chosen["seed"])
    assert client.get_run(parent).data.params["sample_seed"] == str(chosen["seed"] + FRESH_DRAW_SEED_OFFSET)


def test_deploy_puts_scheduled_deployments_on_a_work_pool_that_a_worker_runs(api_url, tmp_path):
    """`synthaug deploy`: the datasets file's deployments on a process work pool (created); a worker
    started from this checkout's environment picks up a run and publishes, its progress in the run's log."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    state = tmp_path / ".synthaug"
    datasets = tmp_path / "datasets.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": {"pooled": {
        "cron": "0 3 * * 1", "data": "builtin:breast_cancer", "target": "diagnosis", "rows": 50, "epochs": 5}}}))
    done = cli(["deploy", "--pool", "synthaug-test-pool", "--datasets", str(datasets)], state, api_url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "augment-dataset/pooled on work pool synthaug-test-pool" in done.stdout
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("augment-dataset/pooled")
        assert deployment.work_pool_name == "synthaug-test-pool"
        assert client.read_work_pool("synthaug-test-pool").type == "process"
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 1"]
        assert deployment.parameters["rows"] == 50 and deployment.parameters["skip_unchanged"] is True
        flow_run = client.create_flow_run_from_deployment(deployment.id)
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "PREFECT_API_URL": api_url}
    env.pop("MLFLOW_TRACKING_URI", None)
    worker = subprocess.run([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool",
                             "synthaug-test-pool", "--run-once"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run.id).state.is_completed()
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    progress_lines = [log.message for log in logs if log.message.startswith(("training:", "scoring:", "publishing:"))]
    # no terminal in a deployment: progress is in the run's log, first and last update of each task
    assert any(line.startswith("training: 5/5 epochs") for line in progress_lines), progress_lines
    assert any(line.startswith("publishing: 3/3") for line in progress_lines), progress_lines
    assert registry_tags(state) == ["pooled-v1"]
    missing = cli(["deploy", "--pool", "p", "--datasets", str(tmp_path / "absent.yaml")], state, api_url)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "absent.yaml" in missing.stderr
    no_code = cli(["deploy", "--pool", "p", "--datasets", str(datasets), "--source", str(tmp_path)], state, api_url)
    assert no_code.returncode == 2 and no_code.stderr.count("\n") == 1 and "cannot load" in no_code.stderr, \
        no_code.stderr[-2000:]
    with get_client(sync_client=True) as client:
        assert [p.name for p in client.read_work_pools() if p.name == "p"] == []  # refused before creating it


def test_candidates_run_on_the_dask_scheduler_at_the_configured_address(state_dir, api_url, monkeypatch):
    """SYNTHAUG_DASK_ADDRESS: a separate `dask scheduler` and `dask worker` (processes of their own,
    told the Prefect API) train the candidates; this process only orchestrates."""
    import socket

    from distributed import Client

    from pipelines.flow import augment_dataset

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    bin_dir, env = Path(sys.executable).parent, {**os.environ, "PREFECT_API_URL": api_url}
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--no-dashboard"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        monkeypatch.setenv("SYNTHAUG_DASK_ADDRESS", address)
        summary = augment_dataset(data="builtin:breast_cancer", target="diagnosis", rows=50, epochs=5, candidates=2,
                                  name="remote_candidates")
        assert summary["status"] == "published" and len(summary["candidates"]) == 2
        with Client(address, timeout=60) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert sum(executed.values()) >= 2  # both candidates ran on the external worker
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=60)


def test_retrying_a_failed_run_skips_the_tasks_that_finished(api_url, tmp_path):
    """Publishing fails (the registry is unreachable); `prefect flow-run retry` then publishes without
    retraining or logging a second MLflow run: the tasks that finished are cached."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = tmp_path / ".synthaug"
    unreachable = {"SYNTHAUG_REGISTRY_URL": "https://127.0.0.1:9/registry.git"}
    done = cli(["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", "--rows", "100",
                "--epochs", "5", "--name", "retried"], state, api_url, env=unreachable)
    assert done.returncode == 2 and "127.0.0.1:9" in done.stderr, done.stderr[-2000:]
    [workspace] = (state / "runs").glob("retried-*")
    flow_run_id = workspace.name[-36:]
    trained = {p: p.stat().st_mtime_ns for p in (workspace / "model" / "generator").rglob("*") if p.is_file()}
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "PREFECT_API_URL": api_url}
    env.pop("MLFLOW_TRACKING_URI", None)
    retried = subprocess.run([str(Path(sys.executable).parent / "prefect"), "flow-run", "retry", flow_run_id,
                              "--entrypoint", "pipelines/flow.py:augment_dataset"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-3000:]
    assert registry_tags(state) == ["retried-v1"]
    assert trained == {p: p.stat().st_mtime_ns for p in trained}  # the generator was not trained again
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    states = {(t.name.rsplit("-", 1)[0], t.state.name) for t in task_runs}
    assert {("train", "Cached"), ("track", "Cached"), ("publish", "Completed")} <= states, states
    from mlflow import MlflowClient

    runs = MlflowClient(f"sqlite:///{state / 'mlflow.db'}").search_runs(
        ["1"], "tags.`synthaug.dataset` = 'retried'")
    assert len(runs) == 1 and runs[0].data.tags["synthaug.registry.rev"] == "retried-v1"


def test_table_with_ids_missing_values_and_strings_goes_through(clinic_csv, state_dir, prefect_harness, tmp_path):
    from pipelines.flow import augment_dataset

    summary = augment_dataset(data=str(clinic_csv), target="outcome", rows=300, epochs=3, name="clinic_records.v2")
    assert summary["status"] == "published"
    augmented = dvc_get(summary["registry"], "augmented.parquet", tmp_path / "clinic.parquet")
    assert "patient_id" not in augmented.columns
    assert len(augmented) == summary["rows"]["real_train"] + 300
    assert augmented.loc[~augmented["is_synthetic"], "bmi"].isna().any()  # real missing values kept
    assert set(augmented["ward"]) <= {"cardiology", "oncology", "surgery", "general"}


def test_private_request_at_epsilon_3_reports_budget_and_utility_cost(state_dir, prefect_harness, tmp_path):
    from pipelines.flow import augment_dataset

    summary = augment_dataset(data="builtin:breast_cancer", target="diagnosis", rows=300, epochs=30,
                              conditions={"diagnosis": "malignant"}, private=True, dp_epsilon=3.0,
                              name="breast_cancer_dp")
    metrics = summary["metrics"]
    assert 2.0 < metrics["privacy_dp_epsilon"] <= 3.0 + 1e-6 and metrics["privacy_dp_delta"] == 1e-5
    cost = metrics["privacy_dp_utility_cost_gbm_augmented"]
    assert cost == pytest.approx(metrics["privacy_dp_nonprivate_gbm_augmented_auc"]
                                 - metrics["utility_gbm_augmented_auc"])
    report = (Path(summary["workspace"]) / "evaluation" / "report.html").read_text()
    assert "Trained with differential privacy: ε = " in report and "without privacy (cost" in report


def test_rejected_gate_fails_the_flow_and_publishes_nothing(state_dir, prefect_harness):
    from pipelines.flow import augment_dataset
    from mlflow import MlflowClient

    state = augment_dataset(data="builtin:breast_cancer", target="diagnosis", rows=100, epochs=2,
                            gate={"min_utility_lift": 0.5}, return_state=True)
    assert state.is_failed() and "adding synthetic rows changes holdout AUC" in state.message
    summary = state.result(raise_on_failure=False).summary
    assert summary["status"] == "rejected" and summary["registry"] is None
    assert registry_tags(state_dir) == [] and registered_versions(state_dir) == []
    run = MlflowClient(summary["mlflow"]["tracking_uri"]).get_run(summary["mlflow"]["run_id"])
    assert run.data.tags["synthaug.gate"] == "rejected"
    assert "adding synthetic rows" in run.data.tags["synthaug.gate.reason.1"]


def test_params_yaml_and_dvc_yaml_describe_the_same_stages():
    from pipelines.run import DVC_STAGES as STAGES
    from pipelines.settings import request_from_params

    request = request_from_params(ROOT / "params.yaml")
    assert request.conditions == {"diagnosis": "malignant"} and request.engine == "tabgan"
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == list(STAGES)
    assert all(spec["cmd"] == f"synthaug stage {name}" for name, spec in stages.items())
