"""The run policy: what one request does, in order, whatever front runs it.

load → fingerprint → (a scheduled run whose data and settings equal the newest published version's
records a no-op and stops) → split → budget check → train, sample, score (several candidates: each on
its own, then a fresh draw from the best, scored anew) → track → gate → package → publish.

Fronts pass their own `Steps`: the Prefect flow its tasks (retries, caching, the UI) and its Dask
subflow for candidates; `dvc repro` and tests the plain stage functions.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from evaluation.assessment import best_candidate
from pipelines import stages
from pipelines.kinds import kind_for
from pipelines.publishing import check_registry, publish_dataset
from pipelines.settings import AugmentRequest, Settings
from pipelines.summary import run_summary, unchanged_summary
from pipelines.tracking import last_publication, record_publication, record_unchanged, track_candidates, track_run
from pipelines.workspace import Workspace

FRESH_DRAW_SEED_OFFSET = 1_000_003  # the published draw's seed, away from every candidate's own


def train_candidate(request: AugmentRequest, ws: Workspace) -> Path:
    """Train, sample and score one candidate generator; returns its metrics' path."""
    for stage in (stages.train, stages.sample, stages.evaluate):
        stage(request, ws)
    return ws.metrics


def candidates_in_turn(requests: list[AugmentRequest], workspaces: list[Workspace]) -> list[Path]:
    """Every candidate in this process, one after another."""
    return [train_candidate(request, ws) for request, ws in zip(requests, workspaces)]


@dataclass(frozen=True)
class Steps:
    """How each step of the policy runs: the plain functions by default."""

    load: Callable = stages.load
    fingerprint: Callable = stages.fingerprint
    split: Callable = stages.split
    check_resources: Callable = stages.check_resources
    train: Callable = stages.train
    sample: Callable = stages.sample
    evaluate: Callable = stages.evaluate
    candidates: Callable[[list[AugmentRequest], list[Workspace]], list[Path]] = candidates_in_turn
    track: Callable = track_run
    package: Callable = stages.package
    publish: Callable = publish_dataset
    announce: Callable[[dict], None] = lambda summary: None  # the outcome, where the front shows it


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


def run_request(request: AugmentRequest, ws: Workspace, settings: Settings, skip_unchanged: bool = False,
                steps: Steps = Steps(), prepared: bool = False) -> dict:
    """One request, start to end, in `ws`; returns its summary, whose status is published, rejected
    (the gate's reasons in it; nothing published) or unchanged (its folder removed). `prepared`: `ws`
    already holds the loaded and split data (`prepare`), so neither is done again."""
    check_registry(settings)
    clock = StageClock()
    if not prepared:
        with clock("load"):
            steps.load(request, ws)
    source = steps.fingerprint(request, ws)
    if skip_unchanged:
        summary = unchanged(request, settings, source, steps)
        if summary is not None:
            shutil.rmtree(ws.root, ignore_errors=True)
            return summary
    if not prepared:
        with clock("split"):
            steps.split(request, ws)
            steps.check_resources(request, ws, settings)
    candidates = request.candidate_requests()
    if len(candidates) == 1:
        for name, stage in (("train", steps.train), ("sample", steps.sample), ("evaluate", steps.evaluate)):
            with clock(name):
                stage(request, ws)
        return conclude(request, ws, settings, source, steps, clock)
    workspaces = [ws.candidate(i) for i in range(len(candidates))]
    with clock("train"):  # each candidate trains, samples and is scored on its own
        metrics = steps.candidates(candidates, workspaces)
    best = best_candidate([json.loads(Path(p).read_text()) for p in metrics], kind_for(request).fidelity)
    # The winner's rows were picked for passing the gate and scoring best among N draws; what is
    # scored anew, gated and published is a fresh draw from its generator, so the privacy tests and
    # the quality reported are not the luckiest of N.
    chosen = candidates[best].model_copy(update={"sample_seed": candidates[best].seed + FRESH_DRAW_SEED_OFFSET})
    fresh = workspaces[best].fresh_draw()
    with clock("sample"):
        steps.sample(chosen, fresh)
    with clock("evaluate"):
        steps.evaluate(chosen, fresh)
    return conclude(chosen, fresh, settings, source, steps, clock, (candidates, workspaces, best))


def unchanged(request: AugmentRequest, settings: Settings, source: str, steps: Steps = Steps()) -> dict | None:
    """When the newest published version of the dataset came from this data and these settings: a
    no-op recorded in MLflow and that version's summary; else None."""
    previous = last_publication(settings, request.name)
    if previous is None or previous.fingerprint != source:
        return None
    summary = unchanged_summary(request, previous, settings.tracking_uri, record_unchanged(settings, request, previous))
    steps.announce(summary)
    return summary


def conclude(request: AugmentRequest, ws: Workspace, settings: Settings, source: str, steps: Steps = Steps(),
             clock: StageClock | None = None,
             candidates: tuple[list[AugmentRequest], list[Workspace], int] | None = None) -> dict:
    """Track the scored draw in `ws` (and each candidate, nested), then publish it if the gate passed."""
    clock = clock or StageClock()
    lines = None
    with clock("track"):
        tracked = steps.track(request, ws, settings, source)
        if candidates:
            lines = track_candidates(settings, tracked.run_id, *candidates)
    summary = run_summary(request, ws, tracked, None, lines, clock.seconds)
    if summary["status"] == "rejected":
        steps.announce(summary)
        return summary
    with clock("publish"):
        steps.package(request, ws)
        message = f"Publish {request.name}: {summary['rows']['synthetic']} synthetic rows (MLflow run {tracked.run_id})"
        published = steps.publish(ws.package, request.name, settings, message)
        tracked = record_publication(settings, tracked, request.name, published.to_dict())
    summary = run_summary(request, ws, tracked, published, lines, clock.seconds)
    steps.announce(summary)
    return summary


def prepare(request: AugmentRequest, ws: Workspace, settings: Settings) -> dict[str, float]:
    """Load, fingerprint, split and the budget check, as `run_request` begins: every bad input is
    refused here, before any training. Returns the seconds of loading and splitting."""
    check_registry(settings)
    clock = StageClock()
    with clock("load"):
        stages.load(request, ws)
        stages.fingerprint(request, ws)
    with clock("split"):
        stages.split(request, ws)
        stages.check_resources(request, ws, settings)
    return clock.seconds


def publish_stage(request: AugmentRequest, ws: Workspace, settings: Settings) -> dict:
    """`dvc repro`'s last stage (always run): the no-op of an unchanged source, else track, gate and publish."""
    source = ws.fingerprint.read_text()
    return unchanged(request, settings, source) or conclude(request, ws, settings, source)


# The `dvc.yaml` front (`synthaug stage NAME`): each stage one process, its outputs one Workspace folder.
# Candidates are the Prefect flow's; `dvc repro` trains the request's own settings once.
DVC_STAGES: dict[str, Callable[[AugmentRequest, Workspace, Settings], object]] = {
    "prepare": prepare,
    "train": lambda request, ws, settings: stages.train(request, ws),
    "sample": lambda request, ws, settings: stages.sample(request, ws),
    "evaluate": lambda request, ws, settings: stages.evaluate(request, ws),
    "publish": publish_stage,
}
