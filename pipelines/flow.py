"""The Prefect flow `augment-dataset`: load → split → train → sample → evaluate → track → publish.

Tasks wrap the functions in `pipelines.stages` (the same ones `dvc.yaml` runs)
and pass paths, never frames. A rejected gate publishes nothing and ends the
flow in a Failed state whose data is a `GateRejected` holding the summary.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed

from pipelines import stages
from pipelines.workspace import Workspace
from pipelines.publishing import publish_dataset
from pipelines.settings import DEFAULT_ENGINE, AugmentRequest, Settings, build_request
from pipelines.summary import GateRejected, markdown_summary, run_summary, unchanged_summary
from pipelines.tracking import last_publication, record_publication, record_unchanged, track_run

load_task = task(stages.load, name="load")
fingerprint_task = task(stages.fingerprint, name="fingerprint")
split_task = task(stages.split, name="split")
train_task = task(stages.train, name="train")
sample_task = task(stages.sample, name="sample")
evaluate_task = task(stages.evaluate, name="evaluate")
package_task = task(stages.package, name="package")
track_task = task(track_run, name="track")
publish_task = task(publish_dataset, name="publish", retries=2, retry_delay_seconds=2)


def new_workspace(request: AugmentRequest, settings: Settings) -> Workspace:
    """A private folder per run, so concurrent requests never share files."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Workspace(settings.runs_dir / f"{request.name}-{stamp}-{uuid.uuid4().hex[:8]}")


def artifact_key(name: str, status: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only; dataset names may hold '.' and '_'."""
    return re.sub(r"[^a-z0-9-]", "-", f"{name.lower()}-{status}")


@flow(name="augment-dataset", persist_result=True)
def augment_dataset(data: str, target: str | None = None, rows: int = 1000,
                    conditions: dict[str, str] | None = None, name: str | None = None, seed: int = 0,
                    epochs: int = 300, batch_size: int = 500, engine: str = DEFAULT_ENGINE,
                    time_budget_s: float | None = None, patience: int | None = None,
                    private: bool = False, dp_epsilon: float | None = None,
                    holdout_fraction: float = 0.3, column_types: dict[str, str] | None = None,
                    sensitive: list[str] | None = None, publish: str = "augmented", gate: dict | None = None,
                    iterations: int = 500, image_size: int | None = None, skip_corrupt: bool = False,
                    balance: bool = False, curate: float | None = None, skip_unchanged: bool = False):
    """One request for an augmented dataset; parameters as in `AugmentRequest`.

    `skip_unchanged` (scheduled runs): when the data and settings equal those of the newest published
    version, record a no-op and return that version's summary instead of retraining. The summary is
    the flow's persisted result, so `synthaug request` reads it back from the server."""
    request = build_request(data=data, target=target, rows=rows, conditions=conditions or {}, name=name,
                            seed=seed, epochs=epochs, batch_size=batch_size, engine=engine,
                            time_budget_s=time_budget_s, patience=patience, private=private,
                            dp_epsilon=dp_epsilon,
                            holdout_fraction=holdout_fraction, column_types=column_types or {},
                            sensitive=sensitive or [], publish=publish, gate=gate or {}, iterations=iterations,
                            image_size=image_size, skip_corrupt=skip_corrupt, balance=balance, curate=curate)
    settings = Settings.from_env()
    ws = new_workspace(request, settings)
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
    split_task(request, ws)
    train_task(request, ws)
    sample_task(request, ws)
    evaluate_task(request, ws)
    tracked = track_task(request, ws, settings, source)
    summary = run_summary(request, ws, tracked, None)
    if summary["status"] == "rejected":
        create_markdown_artifact(markdown_summary(summary), key=artifact_key(request.name, "rejected"))
        rejected = GateRejected(summary)
        return Failed(message=str(rejected), data=rejected)
    package_task(request, ws)
    message = f"Publish {request.name}: {summary['rows']['synthetic']} synthetic rows (MLflow run {tracked.run_id})"
    published = publish_task(ws.package, request.name, settings, message)
    record_publication(settings, tracked.run_id, published.to_dict())
    summary = run_summary(request, ws, tracked, published)
    create_markdown_artifact(markdown_summary(summary), key=artifact_key(request.name, "published"))
    return summary
