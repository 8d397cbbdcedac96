"""The shapes everything else relies on: an engine is one class, the request is declared once, and a
request reads and splits its data once."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synth.generators.tabular_base import TabularGenerator
from synth.resources import TabularCost
from tests.conftest import ROOT


class IndependentColumns(TabularGenerator):
    """A tiny engine, defined here only: each column drawn on its own (normal for numbers, category
    shares for the rest). It keeps summary statistics, never rows."""

    engine = "independent_columns"
    cost = TabularCost(table_copies=2, seconds_factor=0.01)

    def __init__(self, epochs: int = 1, batch_size: int = 500, seed: int = 0):
        super().__init__(epochs=epochs, batch_size=batch_size, seed=seed)

    def _fit(self, model_frame: pd.DataFrame, discrete_columns: list[str]) -> None:
        self.columns_ = {}
        for column in model_frame.columns:
            values = model_frame[column]
            if column in discrete_columns:
                shares = values.value_counts(normalize=True)
                self.columns_[column] = {"categories": shares.index.tolist(), "shares": shares.tolist()}
            else:
                self.columns_[column] = {"mean": float(values.mean()), "std": float(values.std(ddof=0))}
        self.loss_history_ = pd.DataFrame({"epoch": [0], "generator_loss": [0.0], "discriminator_loss": [0.0]})

    def _sample(self, n: int, conditions: dict[str, str]) -> pd.DataFrame:
        rng = np.random.default_rng(np.random.randint(2**31))
        out = {}
        for column, spec in self.columns_.items():
            if column in conditions:
                out[column] = np.full(n, conditions[column], dtype=object)
            elif "categories" in spec:
                out[column] = rng.choice(np.array(spec["categories"], dtype=object), size=n, p=spec["shares"])
            else:
                out[column] = rng.normal(spec["mean"], spec["std"], size=n)
        return pd.DataFrame(out)

    def _save_state(self, directory: Path) -> None:
        (directory / "columns.json").write_text(json.dumps(self.columns_))

    def _load_state(self, directory: Path) -> None:
        self.columns_ = json.loads((directory / "columns.json").read_text())


def test_an_engine_defined_in_one_class_runs_a_whole_request(state_dir):
    """Defining the class registers it; the request validates against it, trains it, saves and loads
    it by name, scores it, tracks it and publishes its rows: nothing else names it."""
    from mlflow import MlflowClient

    from pipelines.run import run_request
    from pipelines.settings import Settings, build_request
    from pipelines.workspace import Workspace
    from synth.generators import engines_for, load_generator

    assert engines_for("tables")["independent_columns"] is IndependentColumns
    settings = Settings.from_env()
    request = build_request(data="builtin:breast_cancer", target="diagnosis", rows=200, epochs=1,
                            engine="independent_columns", conditions={"diagnosis": "malignant"},
                            name="independent")
    ws = Workspace(state_dir / "runs" / "independent")
    summary = run_request(request, ws, settings)
    assert summary["status"] == "published", summary["gate"]
    assert isinstance(load_generator(ws.generator), IndependentColumns)
    published = pd.read_parquet(ws.package / "synthetic.parquet")
    assert len(published) == 200 and (published["diagnosis"] == "malignant").all()
    run = MlflowClient(settings.tracking_uri).get_run(summary["mlflow"]["run_id"])
    assert run.data.tags["synthaug.engine"] == "independent_columns" and run.data.params["engine"] == "independent_columns"
    assert summary["registry"]["rev"] == "independent-v1"


def test_request_fields_are_declared_once_and_every_front_lists_them_alike():
    """The CLI's options, the flow's parameters and params.yaml's groups all derive from AugmentRequest:
    same fields, same defaults."""
    import typer

    from pipelines.cli import app
    from pipelines.flow import augment_dataset
    from pipelines.settings import AugmentRequest, params_layout

    fields = AugmentRequest.model_fields
    defaults = {name: None if f.is_required() else f.get_default(call_default_factory=True) for name, f in fields.items()}

    flow_params = inspect.signature(augment_dataset.fn).parameters
    assert list(flow_params) == [*fields, "skip_unchanged", "prepared"]
    assert all(flow_params[name].default == defaults[name] for name in fields if not fields[name].is_required())
    assert set(augment_dataset.parameters.properties) == set(flow_params)

    command = next(c for c in typer.main.get_command(app).commands.values() if c.name == "augment")
    cli = {p.name: p for p in command.params if p.name != "as_json"}
    renamed = {"condition": "conditions", "column_type": "column_types", "synthetic_only": "publish"}
    offered = {name for name, f in fields.items() if f.json_schema_extra["cli"]}
    assert {renamed.get(name, name) for name in cli} == offered
    for name, option in cli.items():
        field = renamed.get(name, name)
        if field == "publish":
            assert option.default is False and defaults["publish"] == "augmented"
        elif field in ("conditions", "column_types"):
            assert option.multiple and defaults[field] == {}
        elif not fields[field].is_required():
            assert option.default == defaults[field], name
        assert option.help == fields[field].description

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    listed = {(group, key) for group, entries in params.items() for key in entries}
    assert listed == set(params_layout().values())


def test_a_request_loads_and_splits_its_data_once(state_dir, prefect_harness, monkeypatch, capsys):
    """The CLI's check before any server starts is the run's own load and split: the flow reuses it."""
    from prefect.settings import PREFECT_API_URL

    from pipelines import cli
    from pipelines.kinds.tables import Tables

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    calls = {"load": 0, "split": 0}
    for name in calls:
        original = getattr(Tables, name)

        def counted(self, request, ws, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, request, ws)

        monkeypatch.setattr(Tables, name, counted)
    cli.run_request({"data": "builtin:breast_cancer", "target": "diagnosis", "rows": 50, "epochs": 2,
                     "name": "once"}, as_json=True)
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "published" and calls == {"load": 1, "split": 1}
    assert {"load", "split", "train", "evaluate"} <= set(summary["timings"])
    assert not list((state_dir / "tmp").glob("prepare-*/*"))  # the prepared folder moved into the run's


@pytest.mark.parametrize("engine", ["tabgan", "ctgan", "image_gan"])
def test_engine_parameters_are_read_from_the_signature(engine):
    from synth.generators import ENGINES

    cls = ENGINES[engine]
    params = cls().get_params()
    assert list(params) == [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert cls(**params).get_params() == params


@pytest.mark.parametrize("kind", ["tables", "images"])
def test_the_served_model_answers_for_either_kind_without_asking_which(kind, tmp_path):
    """The MLflow model's predict draws each input row's block and lets the generator join them."""
    from types import SimpleNamespace

    from pipelines.generator_model import SyntheticDataModel
    from synth.generators import ConditionalImageGAN, TabGAN
    from synth.images import ImageSet
    from synth.tables import load_table

    if kind == "tables":
        generator = TabGAN(epochs=1).fit(load_table("builtin:breast_cancer"))
        conditions = '{"diagnosis": "benign"}'
    else:
        rng = np.random.default_rng(0)
        images = ImageSet(rng.integers(0, 255, (32, 28, 28), dtype=np.uint8), np.arange(32) % 2, ["a", "b"])
        generator = ConditionalImageGAN(iterations=2).fit(images)
        conditions = '{"label": "b"}'
    generator.save(tmp_path / "generator")
    model = SyntheticDataModel()
    model.load_context(SimpleNamespace(artifacts={"generator": str(tmp_path / "generator")}))
    out = model.predict(None, pd.DataFrame({"n": [3, 4], "conditions": [conditions, None]}))
    assert len(out) == 7
    if kind == "tables":
        assert (out["diagnosis"].iloc[:3] == "benign").all()
    else:
        assert out.shape == (7, 28, 28) and out.dtype == np.uint8
