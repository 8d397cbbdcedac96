"""The generator interface, for both tabular engines: exact conditions, seeds, saved state."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from synth.errors import InputError
from synth.generators import CTGANGenerator, TabGAN, TabularGenerator, make_generator
from synth.generators.base import frozen
from synth.schema import infer_schema
from synth.simulated import simulated_admissions


ENGINES = [CTGANGenerator, TabGAN]


@pytest.fixture(scope="module", params=ENGINES, ids=lambda e: e.engine)
def clinic_model(request):
    table = simulated_admissions(600, seed=1)
    schema = infer_schema(table, target="outcome")
    return table, request.param(epochs=5, batch_size=200, seed=7).fit(table, schema=schema)


def test_fit_returns_self_and_sample_keeps_modelled_columns(clinic_model):
    table, model = clinic_model
    rows = model.sample(50)
    assert len(rows) == 50
    assert list(rows.columns) == [c for c in table.columns if c != "patient_id"]
    assert set(rows["sex"]) <= {"female", "male"}
    assert rows["age"].dtype == table["age"].dtype
    assert pd.to_datetime(rows["admitted"], format="%Y-%m-%d").notna().all()  # same text format as the input


def test_missing_values_are_modelled_and_restored(clinic_model):
    _, model = clinic_model
    bmi = model.sample(1000)["bmi"]
    assert 0 < bmi.isna().mean() < 1  # the training table has 8 % missing; a 5-epoch model is rough


@pytest.mark.parametrize("conditions", [{"ward": "oncology"}, {"outcome": "readmitted", "sex": "male"},
                                        {"smoker": True}])
def test_conditions_on_any_discrete_column_hold_for_every_row(clinic_model, conditions):
    _, model = clinic_model
    rows = model.sample(300, conditions)
    assert len(rows) == 300
    for column, value in conditions.items():
        assert (rows[column] == value).all()
    assert 0 < model.acceptance_rate_ <= 1


def test_impossible_or_invalid_requests_are_clear_errors(clinic_model):
    _, model = clinic_model
    with pytest.raises(InputError, match="continuous column 'bmi'"):
        model.sample(10, {"bmi": 3})
    with pytest.raises(InputError, match="does not occur"):
        model.sample(10, {"ward": "maternity"})
    with pytest.raises(InputError, match="positive integer"):
        model.sample(-5)
    with pytest.raises(InputError, match="unknown engine"):
        make_generator("nope")


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.engine)
def test_same_seed_same_output_on_cpu(engine):
    table = simulated_admissions(300, seed=2)
    first = engine(epochs=2, batch_size=100, seed=11).fit(table).sample(40)
    second = engine(epochs=2, batch_size=100, seed=11).fit(table).sample(40)
    pd.testing.assert_frame_equal(first, second)
    third = engine(epochs=2, batch_size=100, seed=12).fit(table).sample(40)
    assert not first.equals(third)


def _arrays(obj, seen=None):
    """Every numpy array and tensor reachable from a loaded object."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _arrays(value, seen)
    elif isinstance(obj, (list, tuple, set)):
        for value in obj:
            yield from _arrays(value, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from _arrays(vars(obj), seen)


def test_saved_model_holds_no_rows_or_row_indices(clinic_model, tmp_path):
    table, model = clinic_model
    model.save(tmp_path / "gen")
    loaded = TabularGenerator.load(tmp_path / "gen")
    assert type(loaded) is type(model)
    row_shaped = [a.shape for a in _arrays(loaded) if a.ndim >= 1 and a.shape[0] in (len(table), 480)]
    assert row_shaped == []  # neither the 600 rows nor the 480 a split would leave
    pd.testing.assert_frame_equal(loaded.sample(20, seed=3), model.sample(20, seed=3))
    for saved in (tmp_path / "gen").iterdir():
        raw = saved.read_bytes()
        assert b"P100000" not in raw and pickle.dumps("P100000") not in raw  # no identifiers either


def test_a_large_draw_comes_in_chunks_of_one_schema(clinic_model, tmp_path):
    """`sample_chunks` bounds memory for millions of rows: the first chunk is `sample`'s draw, every
    chunk has the same column types (a column that can miss keeps its missing-capable type), and
    the chunks write into one Parquet file that a seeded subsample is read back from."""
    import pyarrow.parquet as pq

    from synth.tables import read_parquet_sample, write_parquet_chunks

    _, model = clinic_model
    chunks = list(model.sample_chunks(2_500, {"outcome": "readmitted"}, seed=3, chunk_rows=1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    assert all((c["outcome"] == "readmitted").all() for c in chunks)
    assert all(dict(c.dtypes) == dict(chunks[0].dtypes) for c in chunks)
    pd.testing.assert_frame_equal(chunks[0], model.sample(1_000, {"outcome": "readmitted"}, seed=3),
                                  check_dtype=False)
    path = tmp_path / "draw.parquet"
    assert write_parquet_chunks(iter(chunks), path) == 2_500 and pq.ParquetFile(path).metadata.num_rows == 2_500
    subsample, total = read_parquet_sample(path, 700, seed=0)
    assert total == 2_500 and len(subsample) == 700
    whole = pd.concat(chunks, ignore_index=True)
    assert len(subsample.merge(whole.drop_duplicates(), how="left", indicator=True).query("_merge == 'both'")) == 700
    assert subsample.equals(read_parquet_sample(path, 700, seed=0)[0])  # seeded


def test_frozen_skips_weight_gradients_and_restores_each_parameter_as_it_was():
    critic, generator = torch.nn.Linear(3, 1), torch.nn.Linear(2, 3)
    critic.bias.requires_grad_(False)  # frozen before: must stay frozen after
    with frozen(critic, None):
        critic(generator(torch.randn(4, 2))).sum().backward()
    assert critic.weight.grad is None and critic.bias.grad is None
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
    assert critic.weight.requires_grad and not critic.bias.requires_grad
