"""The run summary: the CLI's `--json` contract and the Prefect markdown artifact."""

from __future__ import annotations

import json

from pipelines.kinds import kind_for
from pipelines.publishing import PublishedVersion
from pipelines.settings import AugmentRequest
from pipelines.workspace import Workspace
from pipelines.tracking import Publication, TrackedRun


class GateRejected(Exception):
    """A rejected request's outcome: the failed flow run's data, read back by `synthaug augment` and
    `synthaug request` (Prefect's own clients expect an exception, not a dict, in a failed state)."""

    def __init__(self, summary: dict):
        super().__init__("publish gate rejected: " + "; ".join(summary["gate"]["reasons"]))
        self.summary = summary

    def __reduce__(self):
        return GateRejected, (self.summary,)


def run_summary(request: AugmentRequest, ws: Workspace, tracked: TrackedRun,
                published: PublishedVersion | None, candidates: list[dict] | None = None,
                timings: dict[str, float] | None = None) -> dict:
    """`candidates`: one line per candidate generator when several were trained (`track_candidates`);
    `timings`: seconds per stage (load, split, train, sample, evaluate, track, publish)."""
    scores = json.loads(ws.metrics.read_text())
    metrics = {k: v for k, v in scores["metrics"].items() if v == v}  # NaN is not JSON
    return {
        "status": "published" if scores["gate"]["passed"] else "rejected",
        **_dataset(request),
        "rows": scores["rows"],
        "metrics": metrics,
        "gate": scores["gate"],
        "mlflow": {"tracking_uri": tracked.tracking_uri, "run_id": tracked.run_id, "model_uri": tracked.model_uri,
                   "registered_model": tracked.registered_model, "registered_version": tracked.registered_version},
        "registry": published.to_dict() if published else None,
        "workspace": str(ws.root),
        "timings": {k: round(v, 3) for k, v in (timings or {}).items()},
        **({"candidates": candidates} if candidates else {}),
    }


def unchanged_summary(request: AugmentRequest, previous: Publication, tracking_uri: str, noop_run_id: str) -> dict:
    """A scheduled run that found the data and settings of the newest published version: that version."""
    return {
        "status": "unchanged",
        **_dataset(request),
        "rows": previous.rows,
        "metrics": previous.metrics,
        "gate": {"passed": True, "reasons": []},
        "mlflow": {"tracking_uri": tracking_uri, "run_id": previous.run_id, "noop_run_id": noop_run_id,
                   "registered_model": request.name},
        "registry": previous.registry,
        "workspace": None,
    }


def _dataset(request: AugmentRequest) -> dict:
    return {"name": request.name, "publish": request.publish, "format": kind_for(request).file_format}


def where_to_look(summary: dict) -> list[str]:
    lines = [f"MLflow: mlflow ui --backend-store-uri {summary['mlflow']['tracking_uri']}  (run {summary['mlflow']['run_id']})"]
    registry = summary.get("registry")
    if registry:
        stem = "augmented" if summary.get("publish", "augmented") == "augmented" else "synthetic"
        files = f"{stem}.{summary.get('format', 'parquet')}"
        lines.append(f"DVC:    dvc get {registry['url']} {registry['path']}/{files} --rev {registry['rev']}")
    return lines


def markdown_summary(summary: dict) -> str:
    head = f"# {summary['name']}: {summary['status']}\n\n"
    if summary["gate"]["reasons"]:
        head += "".join(f"- {reason}\n" for reason in summary["gate"]["reasons"]) + "\n"
    keys = ["fidelity_quality", "fidelity_detection_auc", "privacy_exact_copies", "privacy_near_copy_ratio_to_chance",
            "privacy_dcr_pvalue", "utility_gbm_real_auc", "utility_gbm_augmented_auc", "utility_gbm_lift"]
    rows = "".join(f"| {k} | {summary['metrics'][k]:.4g} |\n" for k in keys if k in summary["metrics"])
    table = "| metric | value |\n|---|---|\n" + rows + "\n"
    return head + table + _candidates_markdown(summary.get("candidates")) + "\n".join(
        f"`{line}`  " for line in where_to_look(summary))


def _candidates_markdown(candidates: list[dict] | None) -> str:
    """Each candidate as the gate saw it; the scores above are the selected one's fresh draw."""
    if not candidates:
        return ""
    chosen = next(c["index"] for c in candidates if c["selected"])
    def cell(value) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    rows = "".join(f"| {c['index']} | {c['seed']} | {'passed' if c['gate_passed'] else 'rejected'} "
                   f"| {cell(c['fidelity_quality'])} | {cell(c['fidelity_fid'])} |\n" for c in candidates)
    return (f"Candidates (the scores above are a fresh draw from candidate {chosen}'s generator, scored anew):\n\n"
            "| candidate | seed | gate | SDMetrics quality | FID |\n|---|---|---|---|---|\n" + rows + "\n")
