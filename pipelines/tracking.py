"""MLflow tracking: one run per request, logged through explicit run ids.

MLflow's active run is thread-local and Prefect runs tasks in worker threads,
so nothing here relies on `mlflow.active_run()` across tasks.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from pipelines.kinds import kind_for
from pipelines.publishing import published_tags
from pipelines.settings import AugmentRequest, Settings
from pipelines.workspace import Workspace

EXPERIMENT = "synthaug"
MODEL_CODE = Path(__file__).with_name("generator_model.py")
SYNTH_PACKAGE = Path(__file__).resolve().parent.parent / "synth"

# What the served generator's code (the synth package, copied beside the model) imports. MLflow's own
# inference imported the model in a subprocess, ~7 s of every request, and left torch out.
SERVED_DISTRIBUTIONS = ("mlflow", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "threadpoolctl", "ctgan",
                        "opacus", "pillow", "pydicom", "pooch")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def served_requirements() -> list[str]:
    """The served generator's pip requirements, pinned to the versions that trained it (a local build
    label such as torch's `+cpu` dropped: pip resolves the public release)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in SERVED_DISTRIBUTIONS]


@dataclass
class TrackedRun:
    tracking_uri: str
    run_id: str
    model_uri: str | None
    registered_model: str | None
    registered_version: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def _client(settings: Settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    # A new SQLite store is created (migrated) on first use: two first requests at once raced to
    # create its tables ("table spans already exists"), so the first use is serialised.
    with settings.lock("tracking"):
        client = MlflowClient(settings.tracking_uri)
        if client.get_experiment_by_name(EXPERIMENT) is None:
            location = settings.artifacts_dir.as_uri() if settings.tracking_uri.startswith("sqlite") else None
            client.create_experiment(EXPERIMENT, artifact_location=location)
    return client


def track_run(request: AugmentRequest, ws: Workspace, settings: Settings, fingerprint: str = "") -> TrackedRun:
    """Log parameters, losses, scores, figures, the input dataset and the generator (registered in
    the model registry only once its dataset is published: `record_publication`).

    `fingerprint` (data + settings, `stages.fingerprint`) lets a scheduled run find out that nothing
    changed since the version this run publishes."""
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec
    from mlflow.types import Schema as MlflowSchema

    client = _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    scores = json.loads(ws.metrics.read_text())
    passed = scores["gate"]["passed"]
    kind = kind_for(request)
    engine = kind.engine(request)
    run = client.create_run(experiment.experiment_id, run_name=f"{request.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                            tags={"synthaug.dataset": request.name, "synthaug.engine": engine,
                                  "synthaug.gate": "passed" if passed else "rejected",
                                  "synthaug.fingerprint": fingerprint,
                                  # the run page's description: the report's verdict, fidelity and utility beside privacy
                                  "mlflow.note.content": "\n\n".join(scores["verdict"])})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = request.model_dump(exclude={"gate", "conditions", "column_types"})
    params.update({f"gate.{k}": v for k, v in request.gate.model_dump().items()})
    params["conditions"] = json.dumps(request.conditions)
    params["engine"] = engine
    params.update(kind.training_settings(request))
    params.update({f"rows.{k}": v for k, v in scores["rows"].items()})
    losses = pd.read_csv(ws.losses)
    steps = losses.iloc[:, 0]  # epoch (tables) or iteration (images)
    metrics = _score_metrics(ws, scores, now)
    for column in ("generator_loss", "discriminator_loss"):
        metrics += [Metric(f"loss_{column.split('_')[0]}", float(v), now, int(e))
                    for e, v in zip(steps, losses[column])]
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    for i, reason in enumerate(scores["gate"]["reasons"]):
        client.set_tag(run_id, f"synthaug.gate.reason.{i + 1}", reason)
    client.log_artifacts(run_id, str(ws.figures), "figures")
    client.log_artifact(run_id, str(ws.metrics))
    client.log_artifact(run_id, str(ws.report))
    client.log_artifact(run_id, str(kind.description(ws)))

    signature = ModelSignature(inputs=MlflowSchema([ColSpec("long", "n"),
                                                    ColSpec("string", "conditions", required=False)]))
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # an input example would make MLflow run the generator while logging; the signature is explicit
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        mlflow.log_input(_training_dataset(request, ws), context="training")
        info = mlflow.pyfunc.log_model(
            name="generator", python_model=str(MODEL_CODE), artifacts={"generator": str(ws.generator)},
            code_paths=[str(SYNTH_PACKAGE)], signature=signature, pip_requirements=served_requirements())
    return TrackedRun(settings.tracking_uri, run_id, info.model_uri, None, None)


def _score_metrics(ws: Workspace, scores: dict, now: int) -> list:
    """Every score and the sampling rates as MLflow metrics (NaN, a score that does not apply, left out)."""
    from mlflow.entities import Metric

    sampling = json.loads(ws.sampling.read_text()) if ws.sampling.is_file() else {}
    return [Metric(k, float(v), now, 0) for k, v in {**scores["metrics"], **sampling}.items() if v == v]


def track_candidates(settings: Settings, parent_run_id: str, requests: list[AugmentRequest],
                     workspaces: list[Workspace], selected: int) -> list[dict]:
    """Each candidate generator as a run nested under the request's run: its settings, scores, gate
    outcome and report. Returns one line per candidate for the summary."""
    from mlflow.entities import Param

    client = _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    now = int(time.time() * 1000)
    lines = []
    for index, (request, ws) in enumerate(zip(requests, workspaces)):
        scores = json.loads(ws.metrics.read_text())
        passed = scores["gate"]["passed"]
        run = client.create_run(experiment.experiment_id, run_name=f"{request.name}-candidate-{index}",
                                tags={"mlflow.parentRunId": parent_run_id, "synthaug.dataset": request.name,
                                      "synthaug.candidate": str(index), "synthaug.gate": "passed" if passed else "rejected",
                                      "synthaug.candidate.selected": str(index == selected).lower()})
        kind = kind_for(request)
        settings_used = {"seed": request.seed, "engine": kind.engine(request), **kind.training_settings(request)}
        client.log_batch(run.info.run_id, metrics=_score_metrics(ws, scores, now),
                         params=[Param(k, str(v)) for k, v in settings_used.items()])
        client.log_artifact(run.info.run_id, str(ws.report))
        client.set_terminated(run.info.run_id)
        lines.append({"index": index, **settings_used, "gate_passed": passed, "selected": index == selected,
                      "fidelity_quality": scores["metrics"].get("fidelity_quality"),
                      "fidelity_fid": scores["metrics"].get("fidelity_fid"), "run_id": run.info.run_id})
    return lines


def _training_dataset(request: AugmentRequest, ws: Workspace):
    """The training split as an MLflow dataset: digest, schema and profile, not the rows."""
    return kind_for(request).mlflow_dataset(request, ws, _dataset_source(request.data))


def _dataset_source(data: str):
    """A file's URI, or a code source naming the built-in table (MLflow resolves no `builtin:` scheme)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource

    if data.startswith("builtin:"):
        return CodeDatasetSource(tags={"synthaug.source": data})
    return Path(data).resolve().as_uri()


def record_publication(settings: Settings, tracked: TrackedRun, name: str, published: dict) -> TrackedRun:
    """Tag the run with the registry version it published and register its generator: a model
    version exists only for a dataset that reached the registry."""
    import mlflow

    client = _client(settings)
    for key, value in published.items():
        client.set_tag(tracked.run_id, f"synthaug.registry.{key}", value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = mlflow.register_model(tracked.model_uri, name, tags={"synthaug.registry.rev": published["rev"]})
    return replace(tracked, registered_model=name, registered_version=str(version.version))


@dataclass
class Publication:
    """The run that published a dataset's newest registry version."""

    run_id: str
    fingerprint: str
    registry: dict
    metrics: dict
    rows: dict


def last_publication(settings: Settings, name: str) -> Publication | None:
    """The registry's newest tag of `name` and the MLflow run that published it (None if never published)."""
    tags = published_tags(settings, name)
    if not tags:
        return None
    client = _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], max_results=1,
                              filter_string=f"tags.`synthaug.registry.rev` = '{tags[-1]}'")
    if not runs:
        return None
    run = runs[0]
    prefix = "synthaug.registry."
    return Publication(
        run_id=run.info.run_id, fingerprint=run.data.tags.get("synthaug.fingerprint", ""),
        registry={k.removeprefix(prefix): v for k, v in run.data.tags.items() if k.startswith(prefix)},
        metrics={k: v for k, v in run.data.metrics.items() if not k.startswith("loss_")},
        rows={k.removeprefix("rows."): int(v) for k, v in run.data.params.items() if k.startswith("rows.")})


def record_unchanged(settings: Settings, request: AugmentRequest, previous: Publication) -> str:
    """A short finished run saying a scheduled refresh found nothing new, so reviewers see that it ran."""
    client = _client(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(experiment.experiment_id,
                            run_name=f"{request.name}-unchanged-{time.strftime('%Y%m%d-%H%M%S')}",
                            tags={"synthaug.dataset": request.name, "synthaug.outcome": "unchanged",
                                  "synthaug.fingerprint": previous.fingerprint,
                                  "synthaug.unchanged_since": previous.registry.get("rev", ""),
                                  "synthaug.published_run": previous.run_id})
    client.set_terminated(run.info.run_id)
    return run.info.run_id
