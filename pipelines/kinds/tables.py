"""Tables: a CSV, a Parquet file or a built-in table; published as Parquet."""

from __future__ import annotations

import itertools
import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluation.assessment import assess_tables, dp_utility_cost
from pipelines.kinds.base import Kind
from pipelines.settings import AugmentRequest
from pipelines.workspace import Workspace
from synth.codec import TableCodec
from synth.errors import InputError
from synth.generators import TabularGenerator, engine_class, engines_for, make_generator
from synth.resources import ResourceEstimate
from synth.schema import apply_schema, infer_schema
from synth.tables import load_table, read_parquet_sample, split_train_holdout, write_parquet_chunks

SYNTHETIC_FLAG = "is_synthetic"
DRAW_CHUNK_ROWS = 100_000  # a large draw is sampled, written and published this many rows at a time
# the scores read a seeded subsample of a larger draw (the report says so): their cost and memory
# then stay those of a draw this size, whatever the rows requested
SCORED_ROWS = 50_000


class Tables(Kind):
    name = "tables"
    file_format = "parquet"

    @staticmethod
    def accepts(data: str) -> bool:
        return True  # the fallback: whatever no other kind claims is read as a table

    def engine(self, request: AugmentRequest) -> str:
        return request.engine

    def training_settings(self, request: AugmentRequest) -> dict[str, int]:
        return {"epochs": request.epochs, "batch_size": request.batch_size}

    def load(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Read the table and fix its schema (ID-like columns are marked and later dropped)."""
        table = load_table(request.data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            schema = infer_schema(table, target=request.target, overrides=request.column_types,
                                  sensitive=request.sensitive)
            table = apply_schema(table, schema)  # identifiers never reach the disk
        for warning in caught:
            warnings.warn(str(warning.message), stacklevel=2)
        table.to_parquet(ws.table, index=False)
        ws.schema.write_text(json.dumps(schema.to_dict(), indent=1))
        return ws.table

    def add_to_fingerprint(self, ws: Workspace, digest) -> None:
        table = pd.read_parquet(ws.table)
        digest.update(json.dumps([list(table.columns), [str(t) for t in table.dtypes]]).encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        digest.update(ws.schema.read_bytes())

    def split(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Seeded, stratified split; conditions are checked against the training part."""
        if request.engine not in engines_for(self.name):
            raise InputError(f"engine {request.engine!r} is for image sets; tables take "
                             f"{', '.join(sorted(engines_for(self.name)))}")
        table = pd.read_parquet(ws.table)
        schema = ws.read_schema()
        train, holdout = split_train_holdout(table, request.target, request.holdout_fraction, request.seed)
        if request.target is not None and not schema.features:
            raise InputError(f"the table has no column besides the target {request.target!r} to learn from")
        TableCodec(schema).fit(train).encode_conditions(request.conditions)
        train.to_parquet(ws.train, index=False)
        holdout.to_parquet(ws.holdout, index=False)
        return ws.train

    def estimate(self, request: AugmentRequest, ws: Workspace) -> ResourceEstimate:
        one = engine_class(request.engine, self.name).estimate(pd.read_parquet(ws.train), ws.read_schema(),
                                                               request.epochs, request.batch_size)
        if request.time_budget_s:
            one = ResourceEstimate(one.memory_mb, min(one.train_s, request.time_budget_s))
        return one

    def train(self, request: AugmentRequest, ws: Workspace) -> Path:
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

    def sample(self, request: AugmentRequest, ws: Workspace) -> Path:
        generator = TabularGenerator.load(ws.generator)
        draw = generator.sample_chunks(request.rows, request.conditions, seed=request.draw_seed,
                                       chunk_rows=DRAW_CHUNK_ROWS)
        write_parquet_chunks(draw, ws.synthetic)
        if ws.twin_generator.is_dir():
            twin = TabularGenerator.load(ws.twin_generator)
            write_parquet_chunks(twin.sample_chunks(request.rows, request.conditions, seed=request.draw_seed,
                                                    chunk_rows=DRAW_CHUNK_ROWS), ws.twin_synthetic)
        ws.sampling.write_text(json.dumps({"sampling_acceptance_rate": generator.acceptance_rate_,
                                           "sampling_forced_rows": generator.forced_rows_}))
        return ws.synthetic

    def evaluate(self, request: AugmentRequest, ws: Workspace) -> Path:
        schema = ws.read_schema()
        train_rows, holdout = pd.read_parquet(ws.train), pd.read_parquet(ws.holdout)
        synthetic, drawn = read_parquet_sample(ws.synthetic, SCORED_ROWS, seed=request.draw_seed)
        extra = {}
        if ws.privacy_budget.is_file():
            twin = read_parquet_sample(ws.twin_synthetic, SCORED_ROWS, seed=request.draw_seed)[0]
            extra = {**json.loads(ws.privacy_budget.read_text()),
                     **dp_utility_cost(train_rows, holdout, synthetic, twin, schema)}
        assess_tables(train_rows, holdout, synthetic, schema, request.gate, ws.evaluation, name=request.name,
                      seed=request.seed, losses=pd.read_csv(ws.losses), extra_metrics=extra, drawn=drawn)
        return ws.metrics

    def package(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Synthetic rows, optionally real train + synthetic flagged; ID-like columns are never published."""
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
            batches = (b.to_pandas().assign(**{SYNTHETIC_FLAG: True})
                       for b in synthetic.iter_batches(DRAW_CHUNK_ROWS))
            write_parquet_chunks(itertools.chain([real], batches), ws.package / "augmented.parquet", schema=both)
        (ws.package / "metrics.json").write_text(ws.metrics.read_text())
        (ws.package / "datasheet.html").write_text(ws.report.read_text())
        return ws.package

    def fidelity(self, metrics: dict[str, float]) -> float:
        return metrics.get("fidelity_quality", 0.0)

    def description(self, ws: Workspace) -> Path:
        return ws.schema

    def mlflow_dataset(self, request: AugmentRequest, ws: Workspace, source):
        import mlflow

        return mlflow.data.from_pandas(pd.read_parquet(ws.train), source=source, name=request.name,
                                       targets=request.target)
