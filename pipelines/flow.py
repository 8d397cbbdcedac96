"""The Prefect flow `augment-dataset`: the run policy of `pipelines.run` with Prefect tasks as its steps.

Tasks wrap the functions in `pipelines.stages` (the same ones `dvc.yaml` runs)
and pass paths, never frames. A rejected gate publishes nothing and ends the
flow in a Failed state whose data is a `GateRejected` holding the summary.
"""

from __future__ import annotations

import inspect
import os
import re
import time
import uuid
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, RUN_ID, TASK_SOURCE
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import deployment, flow_run
from prefect.states import Failed

from pipelines import retention, stages
from pipelines.progress_display import LogProgress
from pipelines.publishing import publish_dataset
from pipelines.run import Steps, run_request, train_candidate
from pipelines.settings import AugmentRequest, Settings, build_request, request_parameters
from pipelines.summary import GateRejected, markdown_summary
from pipelines.tracking import track_run
from pipelines.workspace import Workspace
from synth import progress

load_task = task(stages.load, name="load")
fingerprint_task = task(stages.fingerprint, name="fingerprint")
split_task = task(stages.split, name="split")
check_resources_task = task(stages.check_resources, name="check-resources")
train_task = task(stages.train, name="train")
sample_task = task(stages.sample, name="sample")
evaluate_task = task(stages.evaluate, name="evaluate")
package_task = task(stages.package, name="package")
# retried while a tracking server is still starting; cached on the request and its files only, so a
# retry after fixing a setting (the registry's URL, say) does not log a second run
track_task = task(track_run, name="track", retries=2, retry_delay_seconds=5,
                  cache_policy=(INPUTS - "settings") + TASK_SOURCE + RUN_ID)
publish_task = task(publish_dataset, name="publish", retries=2, retry_delay_seconds=2)


candidate_task = task(train_candidate, name="candidate")  # on a Dask worker


@flow(name="train-candidates")
def train_candidates(requests: list[AugmentRequest], workspaces: list[Workspace]) -> list[Path]:
    """All candidates at once on the flow's task runner (a Dask cluster); results are paths, never rows."""
    futures = [candidate_task.submit(r, ws) for r, ws in zip(requests, workspaces)]
    return [future.result() for future in futures]


def dask_runner(settings: Settings):
    """The configured Dask scheduler, or a LocalCluster of one-thread worker processes that share the
    cores between them. Local workers are told this run's Prefect API (a temporary server's
    included); else each would start a temporary server of its own. Workers of a remote cluster need
    PREFECT_API_URL in their own environment."""
    import dask
    from prefect.client.orchestration import get_client
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Dask's nanny exports these before it spawns a worker. Its default MALLOC_TRIM_THRESHOLD_ turns
    # off glibc's adaptive mmap threshold: every large numpy or torch buffer became a fresh mmap, and
    # training and scoring ran 40-70 % slower than in a plain process (measured side by side). The
    # thread counts give each worker its share of the cores (torch, OpenMP, BLAS read them on load).
    threads = max(1, (os.cpu_count() or 1) // settings.dask_workers)
    dask.config.set({"distributed.nanny.pre-spawn-environ": {
        "MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads}})
    api_url = str(get_client(sync_client=True).api_url)
    cluster = {"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
               "dashboard_address": None, "env": {"PREFECT_API_URL": api_url}}
    return DaskTaskRunner(cluster_kwargs=cluster)


def new_workspace(request: AugmentRequest, settings: Settings) -> Workspace:
    """A private folder per flow run, so concurrent requests never share files, named by the flow
    run's id and scheduled time: a retry of the run (`prefect flow-run retry`) finds the same folder,
    and the tasks' default cache (inputs, task source, flow run id; results persisted as paths) skips
    every task that finished before the failure, training included."""
    started = flow_run.scheduled_start_time
    stamp = started.strftime("%Y%m%d-%H%M%S") if started else time.strftime("%Y%m%d-%H%M%S")
    return Workspace(settings.runs_dir / f"{request.name}-{stamp}-{flow_run.id or uuid.uuid4().hex}")


def mark_crashed(flow_run_ids: list[str]) -> None:
    """Flow runs whose process was killed (found by the retention sweep) stay Running on the server
    for ever; mark them Crashed. Runs another server holds are left alone."""
    if not flow_run_ids:
        return
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            try:
                if client.read_flow_run(flow_run_id).state.is_running():
                    client.set_flow_run_state(flow_run_id, Crashed(message="its process ended without "
                                                                   "reporting (killed); found at a later start"),
                                              force=True)
            except (ObjectNotFound, ValueError):
                continue


def artifact_key(name: str, status: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only; dataset names may hold '.' and '_'."""
    return re.sub(r"[^a-z0-9-]", "-", f"{name.lower()}-{status}")


def augment_dataset(*, skip_unchanged: bool = False, prepared: str | None = None, **fields):
    """One request for an augmented dataset; its parameters are `AugmentRequest`'s fields (the
    signature below is derived from them), and:

    `skip_unchanged` (scheduled runs): when the data and settings equal those of the newest published
    version, record a no-op and return that version's summary instead of retraining. The summary is
    the flow's persisted result, so `synthaug request` reads it back from the server.

    `prepared`: a run folder where this request's data is already loaded, split and checked (the
    CLI's check before any server starts), so the data is read and split once.

    Several candidates (`candidates` seeds × `candidate_grid` settings) train in parallel on Dask,
    each logged as a nested MLflow run; a fresh draw from the best one the gate passes is scored,
    gated and published."""
    request = build_request(**fields)
    if deployment.id:  # no terminal to draw on: progress goes to the run's log
        with progress.listening(LogProgress(get_run_logger())):
            return run_policy(request, skip_unchanged, prepared)
    return run_policy(request, skip_unchanged, prepared)


# The function keeps the flow's name: deployments (`synthaug serve`) load their entrypoint by the
# function's name, and must find the flow (its persisted result), not the bare function.
augment_dataset.__signature__ = inspect.Signature([
    *request_parameters(),
    inspect.Parameter("skip_unchanged", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool),
    inspect.Parameter("prepared", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)])
augment_dataset = flow(name="augment-dataset", persist_result=True)(augment_dataset)


def run_policy(request: AugmentRequest, skip_unchanged: bool, prepared: str | None = None):
    """The run policy (`pipelines.run`) with this flow's tasks as its steps; a rejected request ends
    the flow run Failed, its data a `GateRejected` holding the summary."""
    settings = Settings.from_env()
    mark_crashed(retention.sweep(settings))
    ws = new_workspace(request, settings)
    if prepared and Path(prepared).is_dir():  # a retry of this flow run finds it moved already
        ws.root.parent.mkdir(parents=True, exist_ok=True)
        Path(prepared).rename(ws.root)
    retention.claim(ws.root, str(flow_run.id) if flow_run.id else None)
    # a run that raises keeps its folder for `prefect flow-run retry` (the retention sweep bounds it)
    summary = run_request(request, ws, settings, skip_unchanged, prefect_steps(settings), prepared=bool(prepared))
    retention.finish(ws.root)
    if summary["status"] == "rejected":
        rejected = GateRejected(summary)
        return Failed(message=str(rejected), data=rejected)
    return summary


def prefect_steps(settings: Settings) -> Steps:
    """The policy's steps as this flow's tasks; candidates as a subflow on Dask."""
    def candidates(requests: list[AugmentRequest], workspaces: list[Workspace]) -> list[Path]:
        return train_candidates.with_options(task_runner=dask_runner(settings))(requests, workspaces)

    def announce(summary: dict) -> None:
        create_markdown_artifact(markdown_summary(summary), key=artifact_key(summary["name"], summary["status"]))

    return Steps(load=load_task, fingerprint=fingerprint_task, split=split_task, check_resources=check_resources_task,
                 train=train_task, sample=sample_task, evaluate=evaluate_task, candidates=candidates,
                 track=track_task, package=package_task, publish=publish_task, announce=announce)
