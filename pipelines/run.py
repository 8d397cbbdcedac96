"""The run policy: what one request does, in order, whatever front runs it.

load → fingerprint → (a scheduled run whose data and settings equal the newest published version's
records a no-op and stops) → split → budget check → train, sample, score (several candidates: each on
its own, then a fresh draw from the best, scored anew) → track → gate → package → publish.

Fronts pass their own `Steps`: the Prefect flow its tasks (retries, caching, the UI) and its Dask
subflow for candidates; `dvc repro` and tests the plain stage functions.
"""

from __future__ import annotations

import json
import os
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
        split(request, ws, settings, steps, clock)
    candidates = request.candidate_requests()
    if len(candidates) == 1:
        for name, stage in (("train", steps.train), ("sample", steps.sample), ("evaluate", steps.evaluate)):
            with clock(name):
                stage(request, ws)
        return conclude(request, ws, settings, source, steps, clock)
    workspaces = [ws.candidate(i) for i in range(len(candidates))]
    with clock("train"):  # each candidate trains, samples and is scored on its own
        best = select(request, steps.candidates(candidates, workspaces))
    chosen, fresh = fresh_draw_request(candidates, best), workspaces[best].fresh_draw()
    with clock("sample"):
        steps.sample(chosen, fresh)
    with clock("evaluate"):
        steps.evaluate(chosen, fresh)
    return conclude(chosen, fresh, settings, source, steps, clock, (candidates, workspaces, best))


def select(request: AugmentRequest, metrics: list[Path]) -> int:
    """The candidate to publish, from each candidate's scores."""
    return best_candidate([json.loads(Path(p).read_text()) for p in metrics], kind_for(request).fidelity)


def fresh_draw_request(candidates: list[AugmentRequest], best: int) -> AugmentRequest:
    """The winner's rows were picked for passing the gate and scoring best among N draws; what is
    scored anew, gated and published is a fresh draw from its generator, so the privacy tests and
    the quality reported are not the luckiest of N."""
    return candidates[best].model_copy(update={"sample_seed": candidates[best].seed + FRESH_DRAW_SEED_OFFSET})


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
    split(request, ws, settings, Steps(), clock)
    return clock.seconds


def split(request: AugmentRequest, ws: Workspace, settings: Settings, steps: Steps, clock: StageClock) -> None:
    """Split, then refuse a request over the machine's budget: the last checks before training."""
    with clock("split"):
        steps.split(request, ws)
        steps.check_resources(request, ws, settings)


def train_stage(request: AugmentRequest, ws: Workspace, settings: Settings) -> None:
    """`dvc repro`'s train: the request's generator; with several candidates, each trained, sampled and
    scored in turn in `candidates/`, and the best one's generator copied as the run's `model`."""
    candidates = request.candidate_requests()
    ws.candidates.mkdir(parents=True, exist_ok=True)
    best = None
    if len(candidates) == 1:
        stages.train(request, ws)
    else:
        workspaces = [ws.candidate(i) for i in range(len(candidates))]
        best = select(request, candidates_in_turn(candidates, workspaces))
        shutil.rmtree(ws.model, ignore_errors=True)
        shutil.copytree(workspaces[best].model, ws.model, copy_function=os.link)
    ws.selection.write_text(json.dumps({"selected": best, "candidates": len(candidates)}))


def selected(request: AugmentRequest, ws: Workspace) -> tuple[AugmentRequest, tuple | None]:
    """After `train_stage`: the request whose draw is published (a candidate's: a fresh draw) and, with
    several candidates, what `conclude` tracks of them."""
    best = json.loads(ws.selection.read_text())["selected"]
    if best is None:
        return request, None
    candidates = request.candidate_requests()
    return fresh_draw_request(candidates, best), (candidates, [ws.candidate(i) for i in range(len(candidates))], best)


def publish_stage(request: AugmentRequest, ws: Workspace, settings: Settings) -> dict:
    """`dvc repro`'s last stage (always run): the no-op of an unchanged source, else track, gate and publish."""
    source = ws.fingerprint.read_text()
    chosen, candidates = selected(request, ws)
    return unchanged(request, settings, source) or conclude(chosen, ws, settings, source, candidates=candidates)


# The `dvc.yaml` front (`synthaug stage NAME`): each stage one process, its outputs one Workspace folder.
# Candidates train in turn inside the train stage (the Prefect flow trains them in parallel on Dask).
DVC_STAGES: dict[str, Callable[[AugmentRequest, Workspace, Settings], object]] = {
    "prepare": prepare,
    "train": train_stage,
    "sample": lambda request, ws, settings: stages.sample(selected(request, ws)[0], ws),
    "evaluate": lambda request, ws, settings: stages.evaluate(selected(request, ws)[0], ws),
    "publish": publish_stage,
}
