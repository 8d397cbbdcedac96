"""One synthetic set assessed end to end: scores, the gate's decision, figures and the report, written
to one folder. Every front calls these (a pipeline run, `synthaug evaluate` on rows made anywhere), so
what a reviewer reads is assembled in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from evaluation import plots
from evaluation.gate import GateThresholds, apply_gate
from evaluation.images import evaluate_images, translation_scores
from evaluation.report import IMAGES, TABLES, Voice, render_report, verdict
from evaluation.scores import evaluate_tabular
from evaluation.utility import utility_scores
from synth.errors import InputError
from synth.images import ImageSet
from synth.schema import Schema


def assess_tables(train_rows: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
                  thresholds: GateThresholds, out_dir: Path, name: str, seed: int = 0,
                  losses: pd.DataFrame | None = None, extra_metrics: dict[str, float] | None = None,
                  drawn: int | None = None) -> dict:
    """Score synthetic rows made anywhere; write metrics.json, figures/ and report.html to `out_dir`.

    `extra_metrics` are reported beside the scores (a DP run's budget and its utility cost);
    `drawn`: the rows of the whole draw when `synthetic` is a subsample of it."""
    missing = [c for c in schema.modelled if c not in synthetic.columns]
    if missing:
        raise InputError(f"synthetic data lacks columns of the real data: {', '.join(missing[:8])}")
    result = evaluate_tabular(train_rows, holdout, synthetic, schema.kinds, schema.target, seed=seed,
                              sensitive=schema.sensitive)
    result.metrics.update(extra_metrics or {})
    modelled = {c: k for c, k in schema.kinds.items() if k != "id"}
    figures = {
        "marginals": plots.marginals(train_rows, synthetic, modelled),
        "correlation_difference": plots.correlation_heatmap(result.correlation_difference),
        "dcr": plots.dcr_histograms(result.distances),
        "detection_roc": plots.roc_curves({"detector": result.detection_roc}, "Real vs synthetic detection"),
        "membership_roc": plots.roc_curves(result.membership_roc, "Membership inference"),
    }
    if losses is not None:
        figures["losses"] = plots.loss_curves(losses)
    rows = {"real_train": len(train_rows), "holdout": len(holdout), "synthetic": drawn or len(synthetic)}
    if rows["synthetic"] > len(synthetic):  # a large draw, scored on a subsample (the report says so)
        rows["synthetic_scored"] = len(synthetic)
    return _write(result.metrics, thresholds, figures, rows, out_dir, name, TABLES)


def dp_utility_cost(train_rows: pd.DataFrame, holdout: pd.DataFrame, private: pd.DataFrame,
                    nonprivate: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """Holdout AUCs from the non-private twin's rows, and what privacy cost against them."""
    if schema.target is None:
        return {}
    kinds = {c: k for c, k in schema.kinds.items() if k != "id"}
    twin = utility_scores(train_rows, holdout, nonprivate, kinds, schema.target)
    private = utility_scores(train_rows, holdout, private, kinds, schema.target)
    out = {}
    for key in (f"utility_{m}_{s}_auc" for m in ("gbm", "logistic") for s in ("synthetic", "augmented")):
        if key in twin and key in private:
            name = key.removeprefix("utility_").removesuffix("_auc")
            out[f"privacy_dp_nonprivate_{name}_auc"] = twin[key]
            out[f"privacy_dp_utility_cost_{name}"] = twin[key] - private[key]
    return out


def assess_images(train_set: ImageSet, holdout: ImageSet, synthetic: ImageSet, thresholds: GateThresholds,
                  out_dir: Path, name: str, seed: int = 0, losses: pd.DataFrame | None = None,
                  extra_metrics: dict[str, float] | None = None, show_real: bool = False,
                  source_indices: np.ndarray | None = None) -> dict:
    """The image scores, gate, figures and report in `out_dir`. Figures show real training images
    only with `show_real` (where real images are published anyway); else the closest synthetic
    images and their distances stand alone. `source_indices`: for translated images, the training
    image each was made from (their distances are scored, their pairs drawn)."""
    result = evaluate_images(train_set, holdout, synthetic, seed=seed)
    result.metrics.update(extra_metrics or {})
    if source_indices is not None:
        result.metrics.update(translation_scores(train_set, synthetic, source_indices))
    names = train_set.class_names
    shown = [k for k in range(len(names)) if (synthetic.labels == k).any()]
    figures = {
        "samples_per_class": plots.image_grid([(f"synthetic: {names[k]}", synthetic.images[synthetic.labels == k][:10])
                                               for k in shown], "Synthetic samples per class"),
        "dcr": plots.distance_histograms(result.feature_distances["feature_synthetic_to_train"],
                                         result.feature_distances["feature_holdout_to_train"],
                                         "Distance to closest training image (CNN feature space)"),
        "membership_roc": plots.roc_curves(result.membership_roc, "Membership inference"),
    }
    if losses is not None:
        figures["losses"] = plots.loss_curves(losses)
    if show_real:
        side_by_side = []
        for k in shown:
            side_by_side += [(f"real: {names[k]}", train_set.images[train_set.labels == k][:10]),
                             (f"synthetic: {names[k]}", synthetic.images[synthetic.labels == k][:10])]
        figures["real_vs_synthetic"] = plots.image_grid(side_by_side, "Real (train) vs synthetic")
    if source_indices is not None and show_real:
        figures["translation_pairs"] = plots.image_grid(
            [("source (real)", train_set.images[source_indices[:10]]), ("translated", synthetic.images[:10])],
            "Source → translated")
    figures["nearest_pairs"] = plots.nearest_pairs(synthetic.images, train_set.images if show_real else None,
                                                   result.nearest_pairs)
    rows = {"real_train": len(train_set), "holdout": len(holdout), "synthetic": len(synthetic)}
    return _write(result.metrics, thresholds, figures, rows, out_dir, name, IMAGES)


def _write(metrics: dict[str, float], thresholds: GateThresholds, figures: dict, rows: dict, out_dir: Path,
           name: str, voice: Voice) -> dict:
    """Gate the metrics; figures as PNGs, then metrics.json (with the verdict a reviewer reads first,
    in the report and on the MLflow run) and the HTML report that embeds them."""
    gate = apply_gate(metrics, thresholds)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for figure_name, figure in figures.items():
        figure.savefig(figures_dir / f"{figure_name}.png", dpi=80)
        plots.plt.close(figure)
    scores = {"metrics": metrics, "gate": gate.to_dict(), "rows": rows}
    scores["verdict"] = verdict(scores, voice)
    (out_dir / "metrics.json").write_text(json.dumps(scores, indent=1))
    (out_dir / "report.html").write_text(render_report(name, scores, figures_dir, voice))
    return scores


def best_candidate(scores: list[dict], fidelity: Callable[[dict], float]) -> int:
    """The candidate to publish: one the gate passed, then the highest `fidelity(metrics)`. With none
    passing, the best rejected one is tracked and reported."""
    return max(range(len(scores)), key=lambda i: (scores[i]["gate"]["passed"], fidelity(scores[i]["metrics"])))
