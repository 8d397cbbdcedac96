"""The pipeline's stages as plain functions over a work folder.

Prefect tasks (`pipelines.flow`) and `dvc.yaml` stages (`synthaug stage NAME`)
both call these: one implementation, two fronts. Each stage reads its inputs
from and writes its outputs to `Workspace` paths, and returns a path, never a
frame, so persisted task results hold no private rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluation import plots
from evaluation.gate import GateThresholds, apply_gate
from evaluation.scores import evaluate_tabular
from evaluation.utility import utility_scores
from pipelines import image_stages
from pipelines.settings import AugmentRequest, Settings
from pipelines.workspace import Workspace, write_scores
from synth.codec import TableCodec
from synth.errors import InputError
from synth.generators import TabularGenerator, make_generator
from synth.images import ImageSet
from synth.resources import ResourceEstimate, estimate_images, estimate_tabular
from synth.schema import Schema, apply_schema, infer_schema
from synth.tables import load_table, read_parquet_sample, split_train_holdout, write_parquet_chunks

SYNTHETIC_FLAG = "is_synthetic"
DRAW_CHUNK_ROWS = 100_000  # a large draw is sampled, written and published this many rows at a time
# the scores read a seeded subsample of a larger draw (the report says so): their cost and memory
# then stay those of a draw this size, whatever the rows requested
SCORED_ROWS = 50_000


def load(request: AugmentRequest, ws: Workspace) -> Path:
    """Read the table and fix its schema (ID-like columns are marked and later dropped), or read the images."""
    if request.is_images:
        return image_stages.load(request, ws)
    table = load_table(request.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema = infer_schema(table, target=request.target, overrides=request.column_types,
                              sensitive=request.sensitive)
        table = apply_schema(table, schema)  # identifiers never reach the disk
    for warning in caught:
        warnings.warn(str(warning.message), stacklevel=2)
    ws.root.mkdir(parents=True, exist_ok=True)
    table.to_parquet(ws.table, index=False)
    ws.schema.write_text(json.dumps(schema.to_dict(), indent=1))
    return ws.table


def fingerprint(request: AugmentRequest, ws: Workspace) -> str:
    """What a scheduled run compares with the last published version: the loaded data's content and the
    request's settings. Hashes values, not files (a zip written twice differs in its timestamps)."""
    digest = hashlib.sha256(request.model_dump_json().encode())
    if request.is_images:
        for path in (ws.train_images, ws.holdout_images):
            images = ImageSet.load_npz(path)
            for part in (images.images, images.labels, np.array(images.class_names)):
                digest.update(np.ascontiguousarray(part).tobytes())
    else:
        table = pd.read_parquet(ws.table)
        digest.update(json.dumps([list(table.columns), [str(t) for t in table.dtypes]]).encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        digest.update(ws.schema.read_bytes())
    return digest.hexdigest()


def split(request: AugmentRequest, ws: Workspace) -> Path:
    """Seeded, stratified split; conditions are checked against the training part now, before training."""
    if request.is_images:
        return image_stages.split(request, ws)
    table = pd.read_parquet(ws.table)
    schema = ws.read_schema()
    train, holdout = split_train_holdout(table, request.target, request.holdout_fraction, request.seed)
    if request.target is not None and not schema.features:
        raise InputError(f"the table has no column besides the target {request.target!r} to learn from")
    TableCodec(schema).fit(train).encode_conditions(request.conditions)
    train.to_parquet(ws.train, index=False)
    holdout.to_parquet(ws.holdout, index=False)
    return ws.train


def estimate_resources(request: AugmentRequest, ws: Workspace, parallel: int = 1) -> ResourceEstimate:
    """Peak memory and training time of the request as split, before any training: every candidate
    and a DP run's non-private twin counted, `parallel` candidates training at once."""
    candidates = len(request.candidate_requests())
    at_once = min(parallel, candidates)
    if request.is_images:
        train_set = ImageSet.load_npz(ws.train_images)
        one = estimate_images(len(train_set), int(train_set.images.shape[-1]), request.iterations)
    else:
        one = estimate_tabular(pd.read_parquet(ws.train), ws.read_schema(), request.engine, request.epochs,
                               request.batch_size)
        if request.time_budget_s:
            one = ResourceEstimate(one.memory_mb, min(one.train_s, request.time_budget_s))
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
    if request.is_images:
        return image_stages.train(request, ws)
    options = {k: v for k, v in (("time_budget_s", request.time_budget_s), ("patience", request.patience)) if v}
    train_rows, schema = pd.read_parquet(ws.train), ws.read_schema()

    def fit(**extra):
        return make_generator(request.engine, epochs=request.epochs, batch_size=request.batch_size,
                              seed=request.seed, **options, **extra).fit(train_rows, schema=schema)

    generator = fit(dp_epsilon=request.dp_epsilon) if request.dp_epsilon else fit()
    generator.save(ws.generator)
    generator.loss_history_.to_csv(ws.losses, index=False)
    if request.dp_epsilon:  # the non-private twin prices the privacy in the report; it is never published
        ws.privacy_budget.write_text(json.dumps({"privacy_dp_epsilon": generator.epsilon_,
                                                 "privacy_dp_delta": generator.dp_delta}))
        fit().save(ws.twin_generator)
    return ws.generator


def sample(request: AugmentRequest, ws: Workspace) -> Path:
    if request.is_images:
        return image_stages.sample(request, ws)
    generator = TabularGenerator.load(ws.generator)
    draw = generator.sample_chunks(request.rows, request.conditions, seed=request.draw_seed, chunk_rows=DRAW_CHUNK_ROWS)
    write_parquet_chunks(draw, ws.synthetic)
    if ws.twin_generator.is_dir():
        twin = TabularGenerator.load(ws.twin_generator)
        write_parquet_chunks(twin.sample_chunks(request.rows, request.conditions, seed=request.draw_seed,
                                                chunk_rows=DRAW_CHUNK_ROWS), ws.twin_synthetic)
    ws.sampling.write_text(json.dumps({"sampling_acceptance_rate": generator.acceptance_rate_,
                                       "sampling_forced_rows": generator.forced_rows_}))
    return ws.synthetic


def evaluate(request: AugmentRequest, ws: Workspace) -> Path:
    """Scores, gate decision, figures and the report; the gate decides, this stage only records."""
    if request.is_images:
        return image_stages.evaluate(request, ws)
    schema = ws.read_schema()
    train_rows, holdout = pd.read_parquet(ws.train), pd.read_parquet(ws.holdout)
    synthetic, drawn = read_parquet_sample(ws.synthetic, SCORED_ROWS, seed=request.draw_seed)
    extra = {}
    if ws.privacy_budget.is_file():
        twin = read_parquet_sample(ws.twin_synthetic, SCORED_ROWS, seed=request.draw_seed)[0]
        extra = {**json.loads(ws.privacy_budget.read_text()),
                 **dp_utility_cost(train_rows, holdout, synthetic, twin, schema)}
    assess(train_rows, holdout, synthetic, schema, request.gate.thresholds(), ws.evaluation,
           name=request.name, seed=request.seed, losses=pd.read_csv(ws.losses), extra_metrics=extra, drawn=drawn)
    return ws.metrics


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


def assess(train_rows: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
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
    gate = apply_gate(result.metrics, thresholds)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
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
    for figure_name, figure in figures.items():
        figure.savefig(figures_dir / f"{figure_name}.png", dpi=80)
        plots.plt.close(figure)
    rows = {"real_train": len(train_rows), "holdout": len(holdout), "synthetic": drawn or len(synthetic)}
    if rows["synthetic"] > len(synthetic):  # a large draw, scored on a subsample (the report says so)
        rows["synthetic_scored"] = len(synthetic)
    scores = {"metrics": result.metrics, "gate": gate.to_dict(), "rows": rows}
    return write_scores(scores, out_dir, name)


def package(request: AugmentRequest, ws: Workspace) -> Path:
    """The files a consumer gets: synthetic rows, optionally real train + synthetic, the scores and
    the report as the dataset's datasheet.

    ID-like columns are never published.
    """
    if request.is_images:
        return image_stages.package(request, ws)
    schema = ws.read_schema()
    synthetic = pq.ParquetFile(ws.synthetic)
    if synthetic.schema_arrow.names != schema.modelled:
        raise InputError("synthetic columns do not match the schema's modelled columns")
    ws.package.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ws.synthetic, ws.package / "synthetic.parquet")
    if request.publish == "augmented":  # real rows, then the draw batch by batch: never whole in memory
        real = pd.read_parquet(ws.train)[schema.modelled].assign(**{SYNTHETIC_FLAG: False})
        flagged = synthetic.schema_arrow.append(pa.field(SYNTHETIC_FLAG, pa.bool_()))
        both = pa.unify_schemas([pa.Schema.from_pandas(real, preserve_index=False), flagged],
                                promote_options="permissive")
        batches = (b.to_pandas().assign(**{SYNTHETIC_FLAG: True}) for b in synthetic.iter_batches(DRAW_CHUNK_ROWS))
        write_parquet_chunks(itertools.chain([real], batches), ws.package / "augmented.parquet", schema=both)
    (ws.package / "metrics.json").write_text(ws.metrics.read_text())
    (ws.package / "datasheet.html").write_text(ws.report.read_text())
    return ws.package


def best_candidate(scores: list[dict], images: bool) -> int:
    """The candidate to publish: one the gate passed, then the best fidelity (SDMetrics quality for
    tables, the lowest FID for images). With none passing, the best rejected one is tracked and reported."""
    def rank(index: int):
        metrics = scores[index]["metrics"]
        fidelity = -metrics.get("fidelity_fid", float("inf")) if images else metrics.get("fidelity_quality", 0.0)
        return scores[index]["gate"]["passed"], fidelity

    return max(range(len(scores)), key=rank)


STAGES = {"load": load, "split": split, "train": train, "sample": sample, "evaluate": evaluate, "package": package}
