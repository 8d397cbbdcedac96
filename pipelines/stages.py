"""The pipeline's stages as plain functions over a work folder.

Prefect tasks (`pipelines.flow`) and `dvc.yaml` stages (`synthaug stage NAME`)
both call these: one implementation, two fronts. What a stage does for a kind
of data is that kind's (`pipelines.kinds`); what is the same for every kind
(the fingerprint, the resource budget) is here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.kinds import kind_for
from pipelines.settings import AugmentRequest, Settings
from pipelines.workspace import Workspace
from synth.errors import InputError
from synth.resources import ResourceEstimate


def load(request: AugmentRequest, ws: Workspace) -> Path:
    """Read the data into the work folder (tables: with their schema; images: already split)."""
    ws.data.mkdir(parents=True, exist_ok=True)
    return kind_for(request).load(request, ws)


def fingerprint(request: AugmentRequest, ws: Workspace) -> str:
    """What a scheduled run compares with the last published version: the loaded data's content and the
    request's settings. Hashes values, not files (a zip written twice differs in its timestamps)."""
    digest = hashlib.sha256(request.model_dump_json().encode())
    kind_for(request).add_to_fingerprint(ws, digest)
    ws.fingerprint.write_text(digest.hexdigest())
    return digest.hexdigest()


def split(request: AugmentRequest, ws: Workspace) -> Path:
    """Seeded, stratified split; conditions are checked against the training part now, before training."""
    return kind_for(request).split(request, ws)


def estimate_resources(request: AugmentRequest, ws: Workspace, parallel: int = 1) -> ResourceEstimate:
    """Peak memory and training time of the request as split, before any training: every candidate
    and a DP run's non-private twin counted, `parallel` candidates training at once."""
    candidates = len(request.candidate_requests())
    at_once = min(parallel, candidates)
    one = kind_for(request).estimate(request, ws)
    per_candidate_s = one.train_s * (2 if request.dp_epsilon else 1)  # a DP run also trains its twin
    return ResourceEstimate(one.memory_mb * at_once, per_candidate_s * -(-candidates // at_once))


def check_resources(request: AugmentRequest, ws: Workspace, settings: Settings) -> ResourceEstimate:
    """Refuse, before training, a request estimated above the configured memory or time budget."""
    estimate = estimate_resources(request, ws, parallel=1 if settings.dask_address else settings.dask_workers)
    over = []
    if settings.max_memory_mb and estimate.memory_mb > settings.max_memory_mb:
        over.append(f"~{estimate.memory_mb:,.0f} MB of memory (budget {settings.max_memory_mb:,.0f} MB, "
                    "SYNTHAUG_MAX_MEMORY_MB)")
    if settings.max_train_s and estimate.train_s > settings.max_train_s:
        over.append(f"~{estimate.train_s:,.0f} s of training (budget {settings.max_train_s:,.0f} s, "
                    "SYNTHAUG_MAX_TRAIN_S)")
    if over:
        raise InputError(f"refused before training: {request.name} needs an estimated {' and '.join(over)}; "
                         "ask for fewer epochs, iterations or candidates, a time_budget_s, or a larger budget")
    return estimate


def train(request: AugmentRequest, ws: Workspace) -> Path:
    ws.model.mkdir(parents=True, exist_ok=True)
    return kind_for(request).train(request, ws)


def sample(request: AugmentRequest, ws: Workspace) -> Path:
    ws.draw.mkdir(parents=True, exist_ok=True)
    return kind_for(request).sample(request, ws)


def evaluate(request: AugmentRequest, ws: Workspace) -> Path:
    """Scores, gate decision, figures and the report; the gate decides, this stage only records."""
    return kind_for(request).evaluate(request, ws)


def package(request: AugmentRequest, ws: Workspace) -> Path:
    """The files a consumer gets: the synthetic part, optionally with the real training part, the scores
    and the report as the dataset's datasheet."""
    return kind_for(request).package(request, ws)
