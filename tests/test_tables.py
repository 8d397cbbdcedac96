"""Loading, schema inference, the codec and the split: no Prefect, MLflow or DVC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth.codec import TableCodec
from synth.errors import InputError
from synth.schema import infer_schema
from synth.tables import load_table, split_train_holdout
from synth.simulated import simulated_admissions


def test_builtin_breast_cancer_has_named_diagnosis(breast_cancer):
    assert breast_cancer.shape == (569, 31)
    assert breast_cancer["diagnosis"].value_counts().to_dict() == {"benign": 357, "malignant": 212}


def test_csv_and_parquet_load_the_same_table(tmp_path):
    table = simulated_admissions(200)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, from_parquet = load_table(str(tmp_path / "t.csv")), load_table(str(tmp_path / "t.parquet"))
    assert list(from_csv.columns) == list(from_parquet.columns) == list(table.columns)
    assert len(from_csv) == len(from_parquet) == 200


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"a,b\n", "no rows"),
    (b"\x00\x01\x02binary\x00", "binary"),
    (b"a,a\n1,2\n", "duplicated column names: a"),
    ("x,y\n\xe9,1\n".encode("latin-1"), "not UTF-8"),
])
def test_unreadable_tables_are_refused_with_a_reason(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_table(str(path))


def test_missing_file_and_unknown_builtin_are_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_table(str(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="unknown built-in"):
        load_table("builtin:nope")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InputError, match="unsupported table format"):
        load_table(str(tmp_path / "t.xlsx"))


def test_schema_infers_kinds_and_excludes_id_columns():
    table = simulated_admissions(500)
    with pytest.warns(UserWarning, match="patient_id"):
        schema = infer_schema(table, target="outcome")
    assert schema.kinds == {
        "patient_id": "id", "age": "numeric", "sex": "categorical", "smoker": "boolean", "bmi": "numeric",
        "ward": "categorical", "admitted": "datetime", "systolic_bp": "numeric", "heart_rate": "numeric",
        "glucose": "numeric", "creatinine": "numeric", "diagnosis_group": "categorical",
        "insurance": "categorical", "length_of_stay": "numeric", "prior_admissions": "categorical",
        "outcome": "categorical"}
    assert "patient_id" not in schema.modelled


def test_schema_overrides_win_and_bad_ones_are_refused():
    table = simulated_admissions(100)
    schema = infer_schema(table, overrides={"age": "categorical", "sex": "id"})
    assert schema.kinds["age"] == "categorical" and schema.kinds["sex"] == "id"
    with pytest.raises(InputError, match="'patient_id' has 100 distinct values in 100 rows: as a category it would "
                                         "be memorised"):  # an identifier is never modelled, even when asked
        infer_schema(table, overrides={"patient_id": "categorical"})
    with pytest.raises(InputError, match="unknown column"):
        infer_schema(table, overrides={"nope": "numeric"})
    with pytest.raises(InputError, match="unknown column kind"):
        infer_schema(table, overrides={"age": "text"})
    with pytest.raises(InputError, match="target column 'nope' is not in the table"):
        infer_schema(table, target="nope")
    with pytest.raises(InputError, match="must be categorical"):
        infer_schema(table, target="bmi", overrides={"bmi": "numeric"})


def test_all_missing_column_is_refused():
    table = simulated_admissions(100).assign(empty=np.nan)
    with pytest.raises(InputError, match="'empty' has no values"):
        infer_schema(table)


def test_codec_round_trips_missing_values_dates_flags_and_integers():
    table = simulated_admissions(300)
    schema = infer_schema(table, target="outcome", overrides={"patient_id": "id"})
    codec = TableCodec(schema).fit(table)
    encoded = codec.encode(table)
    assert "bmi__missing" in encoded.columns and not encoded.isna().any().any()
    assert "patient_id" not in encoded.columns
    decoded = codec.decode(encoded)
    assert list(decoded.columns) == schema.modelled
    pd.testing.assert_series_equal(decoded["bmi"], table["bmi"], check_names=False)
    assert decoded["admitted"].tolist() == table["admitted"].tolist()  # same text format back
    assert decoded["smoker"].tolist() == table["smoker"].tolist()
    assert decoded["age"].dtype == table["age"].dtype


def test_conditions_are_checked_against_the_fitted_columns(breast_cancer):
    schema = infer_schema(breast_cancer, target="diagnosis")
    codec = TableCodec(schema).fit(breast_cancer)
    assert codec.encode_conditions({"diagnosis": "malignant"}) == {"diagnosis": "malignant"}
    with pytest.raises(InputError, match="not a modelled column"):
        codec.encode_conditions({"nope": "x"})
    with pytest.raises(InputError, match="continuous column 'mean radius'"):
        codec.encode_conditions({"mean radius": "3"})
    with pytest.raises(InputError, match="does not occur in column 'diagnosis'; values: benign, malignant"):
        codec.encode_conditions({"diagnosis": "unknown"})


def test_split_is_seeded_stratified_and_disjoint(breast_cancer):
    train, holdout = split_train_holdout(breast_cancer, "diagnosis", 0.3, seed=3)
    again, _ = split_train_holdout(breast_cancer, "diagnosis", 0.3, seed=3)
    assert len(train) + len(holdout) == len(breast_cancer) and len(holdout) == 171
    pd.testing.assert_frame_equal(train, again)
    share = lambda f: (f["diagnosis"] == "malignant").mean()  # noqa: E731
    assert abs(share(train) - share(holdout)) < 0.01
    keys = lambda f: set(map(tuple, f.round(8).astype(str).to_numpy()))  # noqa: E731
    assert not keys(train) & keys(holdout)


def test_split_refuses_what_cannot_be_split(breast_cancer):
    with pytest.raises(InputError, match="single class"):
        split_train_holdout(breast_cancer.assign(diagnosis="benign"), "diagnosis", 0.3, 0)
    one_row_class = breast_cancer.assign(diagnosis=["rare"] + ["benign"] * (len(breast_cancer) - 1))
    with pytest.raises(InputError, match="class 'rare' has 1 row"):
        split_train_holdout(one_row_class, "diagnosis", 0.3, 0)
    with pytest.raises(InputError, match="too few"):
        split_train_holdout(breast_cancer.head(12), None, 0.3, 0)


def test_decoded_numbers_keep_the_columns_range_and_precision():
    """Values outside the observed range, or with more decimals than the column has, give synthetic
    rows away to a detector: decoding clips to the range and rounds to the column's precision."""
    table = pd.DataFrame({"temp": [98.6, 99.1, 101.0, 97.5] * 10, "dose": [0.25, 0.5, 1.75, 2.0] * 10,
                          "outcome": ["a", "b"] * 20})
    codec = TableCodec(infer_schema(table, target="outcome")).fit(table)
    model = codec.encode(table)
    model["temp"] = [120.123456, 90.0, 99.14159, 98.66] * 10
    model["dose"] = [0.123456, 2.5, 1.3333, -1.0] * 10
    decoded = codec.decode(model)
    assert decoded["temp"].tolist()[:4] == [101.0, 97.5, 99.1, 98.7]
    assert decoded["dose"].tolist()[:4] == [0.25, 2.0, 1.33, 0.25]
