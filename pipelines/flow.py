"""The Prefect flow `augment-dataset`: load → split → train → sample → evaluate → track → publish.

Tasks wrap the functions in `pipelines.stages` (the same ones `dvc.yaml` runs)
and pass paths, never frames. A rejected gate publishes nothing and ends the
flow in a Failed state whose data is a `GateRejected` holding the summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, RUN_ID, TASK_SOURCE
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import deployment, flow_run
from prefect.states import Failed

from pipelines import retention, stages
from pipelines.workspace import Workspace
from pipelines.progress_display import LogProgress
from pipelines.publishing import check_registry, publish_dataset
from pipelines.settings import DEFAULT_ENGINE, AugmentRequest, Settings, build_request
from pipelines.summary import GateRejected, markdown_summary, run_summary, unchanged_summary
from pipelines.tracking import (last_publication, record_publication, record_unchanged, track_candidates,
                                track_run)
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


FRESH_DRAW_SEED_OFFSET = 1_000_003  # the published draw's seed, away from every candidate's own


@task(name="candidate")
def candidate_task(request: AugmentRequest, ws: Workspace) -> Path:
    """Train, sample and score one candidate generator, on a Dask worker; returns its metrics' path."""
    for stage in (stages.train, stages.sample, stages.evaluate):
        stage(request, ws)
    return ws.metrics


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


class StageClock:
    """Seconds per stage of one run: the summary's `timings` (the CLI adds what is left as overhead)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


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


@flow(name="augment-dataset", persist_result=True)
def augment_dataset(data: str, target: str | None = None, rows: int = 1000,
                    conditions: dict[str, str] | None = None, name: str | None = None, seed: int = 0,
                    sample_seed: int | None = None, epochs: int = 300, batch_size: int = 500,
                    engine: str = DEFAULT_ENGINE, time_budget_s: float | None = None, patience: int | None = None,
                    private: bool = False, dp_epsilon: float | None = None,
                    candidates: int = 1, candidate_grid: list[dict] | None = None,
                    holdout_fraction: float = 0.3, column_types: dict[str, str] | None = None,
                    sensitive: list[str] | None = None, publish: str = "augmented", gate: dict | None = None,
                    iterations: int = 1000, image_size: int | None = None, skip_corrupt: bool = False,
                    balance: bool = False, curate: float | None = None, skip_unchanged: bool = False):
    """One request for an augmented dataset; parameters as in `AugmentRequest`.

    `skip_unchanged` (scheduled runs): when the data and settings equal those of the newest published
    version, record a no-op and return that version's summary instead of retraining. The summary is
    the flow's persisted result, so `synthaug request` reads it back from the server.

    Several candidates (`candidates` seeds × `candidate_grid` settings) train in parallel on Dask,
    each logged as a nested MLflow run; a fresh draw from the best one the gate passes is scored,
    gated and published."""
    request = build_request(data=data, target=target, rows=rows, conditions=conditions or {}, name=name,
                            seed=seed, sample_seed=sample_seed, epochs=epochs, batch_size=batch_size, engine=engine,
                            time_budget_s=time_budget_s, patience=patience, private=private,
                            dp_epsilon=dp_epsilon, candidates=candidates, candidate_grid=candidate_grid or [],
                            holdout_fraction=holdout_fraction, column_types=column_types or {},
                            sensitive=sensitive or [], publish=publish, gate=gate or {}, iterations=iterations,
                            image_size=image_size, skip_corrupt=skip_corrupt, balance=balance, curate=curate)
    if deployment.id:  # no terminal to draw on: progress goes to the run's log
        with progress.listening(LogProgress(get_run_logger())):
            return run_policy(request, skip_unchanged)
    return run_policy(request, skip_unchanged)


def run_policy(request: AugmentRequest, skip_unchanged: bool):
    """The run policy inside the flow: skip when unchanged, train (or candidates), gate, publish."""
    settings = Settings.from_env()
    mark_crashed(retention.sweep(settings))
    check_registry(settings)
    ws = new_workspace(request, settings)
    run_root = ws.root
    retention.claim(run_root, str(flow_run.id) if flow_run.id else None)
    clock = StageClock()
    with clock("load"):
        load_task(request, ws)
        source = fingerprint_task(request, ws)
    if skip_unchanged:
        previous = last_publication(settings, request.name)
        if previous is not None and previous.fingerprint == source:
            shutil.rmtree(ws.root, ignore_errors=True)
            summary = unchanged_summary(request, previous, settings.tracking_uri,
                                        record_unchanged(settings, request, previous))
            create_markdown_artifact(markdown_summary(summary), key=artifact_key(request.name, "unchanged"))
            return summary
    with clock("split"):
        split_task(request, ws)
        check_resources_task(request, ws, settings)
    candidates = request.candidate_requests()
    if len(candidates) == 1:
        with clock("train"):
            train_task(request, ws)
        with clock("sample"):
            sample_task(request, ws)
        with clock("evaluate"):
            evaluate_task(request, ws)
        chosen = request
    else:
        workspaces = [ws.candidate(i) for i in range(len(candidates))]
        with clock("train"):  # each candidate trains, samples and is scored on a worker
            metrics = train_candidates.with_options(task_runner=dask_runner(settings))(candidates, workspaces)
        best = stages.best_candidate([json.loads(Path(p).read_text()) for p in metrics], request.is_images)
        # The winner's rows were picked for passing the gate and scoring best among N draws; what is
        # scored anew, gated and published is a fresh draw from its generator, so the privacy tests and
        # the quality reported are not the luckiest of N.
        chosen = candidates[best].model_copy(update={"sample_seed": candidates[best].seed + FRESH_DRAW_SEED_OFFSET})
        ws = workspaces[best].fresh_draw()
        with clock("sample"):
            sample_task(chosen, ws)
        with clock("evaluate"):
            evaluate_task(chosen, ws)
    with clock("track"):
        tracked = track_task(chosen, ws, settings, source)
        lines = track_candidates(settings, tracked.run_id, candidates, workspaces, best) if len(candidates) > 1 else None
    summary = run_summary(chosen, ws, tracked, None, lines, clock.seconds)
    if summary["status"] == "rejected":
        retention.finish(run_root)
        create_markdown_artifact(markdown_summary(summary), key=artifact_key(request.name, "rejected"))
        rejected = GateRejected(summary)
        return Failed(message=str(rejected), data=rejected)
    with clock("publish"):
        package_task(chosen, ws)
        message = f"Publish {request.name}: {summary['rows']['synthetic']} synthetic rows (MLflow run {tracked.run_id})"
        published = publish_task(ws.package, request.name, settings, message)
        tracked = record_publication(settings, tracked, request.name, published.to_dict())
    summary = run_summary(chosen, ws, tracked, published, lines, clock.seconds)
    retention.finish(run_root)
    create_markdown_artifact(markdown_summary(summary), key=artifact_key(request.name, "published"))
    return summary
