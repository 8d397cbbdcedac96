"""Reversible translation between a user's table and what an engine models.

Engines see only float columns and string categories with no missing values:
missing numbers become a filled value plus a `<col>__missing` indicator,
missing categories a sentinel, datetimes seconds since the epoch. `decode`
restores dtypes, missing values and datetime text formats. ID columns are
dropped and never come back.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.api import guess_datetime_format

from synth.errors import InputError
from synth.schema import Schema

MISSING_CATEGORY = "__missing__"
MISSING_SUFFIX = "__missing"
MISSING_FLAG = "yes"  # the indicator's value for a row whose number is missing (and filled)


MAX_DECIMALS = 6


def _decimals(values: np.ndarray) -> int:
    """The fewest decimals that write every value of the column exactly (at most MAX_DECIMALS)."""
    for places in range(MAX_DECIMALS):
        if np.allclose(np.round(values, places), values, rtol=0, atol=1e-9 * max(1.0, np.abs(values).max())):
            return places
    return MAX_DECIMALS


def placeholders_as_missing(model_frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` of a model-space frame with their filled values (where the indicator reads
    MISSING_FLAG) back to NaN: statistics over them are then of the values present, not of the fill."""
    out = model_frame[columns].copy()
    for column in columns:
        indicator = column + MISSING_SUFFIX
        if indicator in model_frame:
            out[column] = out[column].mask(model_frame[indicator].astype(str).to_numpy() == MISSING_FLAG)
    return out


class TableCodec:
    """Fitted on the training table; holds column metadata only, never rows."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.columns: dict[str, dict] = {}

    def fit(self, table: pd.DataFrame) -> "TableCodec":
        for column in self.schema.modelled:
            kind = self.schema.kinds[column]
            series = table[column]
            info: dict = {"kind": kind, "dtype": str(series.dtype)}
            if kind in ("numeric", "datetime"):
                numbers = self._to_number(series, info)
                info["has_missing"] = bool(numbers.isna().any())
                info["fill"] = float(numbers.median())
                info["integer"] = kind == "numeric" and bool(((numbers.dropna() % 1) == 0).all())
                if kind == "numeric" and numbers.notna().any():
                    # decoded values keep the column's range and precision: a value outside the observed
                    # range or with more decimals than the column has gives synthetic rows away
                    info["min"], info["max"] = float(numbers.min()), float(numbers.max())
                    info["decimals"] = _decimals(numbers.dropna().to_numpy())
            else:
                info["has_missing"] = bool(series.isna().any())
                info["categories"] = sorted(self._to_category(series).unique().tolist())
            self.columns[column] = info
        return self

    @property
    def model_columns(self) -> list[str]:
        names = []
        for column, info in self.columns.items():
            names.append(column)
            if info["kind"] in ("numeric", "datetime") and info["has_missing"]:
                names.append(column + MISSING_SUFFIX)
        return names

    @property
    def discrete_model_columns(self) -> list[str]:
        discrete = [c for c, i in self.columns.items() if i["kind"] not in ("numeric", "datetime")]
        indicators = [c + MISSING_SUFFIX for c, i in self.columns.items()
                      if i["kind"] in ("numeric", "datetime") and i["has_missing"]]
        return discrete + indicators

    def encode(self, table: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for column, info in self.columns.items():
            series = table[column]
            if info["kind"] in ("numeric", "datetime"):
                numbers = self._to_number(series, dict(info))
                if info["has_missing"]:
                    out[column + MISSING_SUFFIX] = np.where(numbers.isna(), MISSING_FLAG, "no")
                out[column] = numbers.fillna(info["fill"]).astype(float).to_numpy()
            else:
                out[column] = self._to_category(series).to_numpy()
        return pd.DataFrame(out)[self.model_columns]

    def encode_conditions(self, conditions: dict) -> dict[str, str]:
        """Check `column: value` conditions against the fitted columns; return them in model space."""
        out = {}
        for column, value in conditions.items():
            info = self.columns.get(column)
            if info is None:
                raise InputError(f"condition column {column!r} is not a modelled column; known: {', '.join(self.columns)}")
            if "categories" not in info:
                raise InputError(f"cannot condition on continuous column {column!r}; conditions take discrete columns")
            encoded = self._to_category(pd.Series([value], dtype=object))[0]
            if encoded not in info["categories"]:
                allowed = ", ".join(info["categories"][:20])
                raise InputError(f"condition value {value!r} does not occur in column {column!r}; values: {allowed}")
            out[column] = encoded
        return out

    def decode(self, model_frame: pd.DataFrame, stable_types: bool = False) -> pd.DataFrame:
        """The user's columns back. `stable_types`: a column that may hold missing values takes its
        missing-capable type even where this frame has none, so that every chunk of a large draw
        has the same types (one Parquet schema)."""
        out = {}
        for column, info in self.columns.items():
            if info["kind"] in ("numeric", "datetime"):
                numbers = pd.to_numeric(model_frame[column], errors="coerce").astype(float)
                if "min" in info:
                    numbers = numbers.clip(info["min"], info["max"]).round(info["decimals"])
                if info["integer"]:
                    numbers = numbers.round()
                if info["has_missing"]:
                    numbers = numbers.mask(model_frame[column + MISSING_SUFFIX].astype(str) == MISSING_FLAG)
                out[column] = self._from_number(numbers, info, stable_types)
            else:
                out[column] = self._from_category(model_frame[column].astype(str), info, stable_types)
        return pd.DataFrame(out)

    def to_dict(self) -> dict:
        return {"schema": self.schema.to_dict(), "columns": self.columns}

    @classmethod
    def from_dict(cls, data: dict) -> "TableCodec":
        codec = cls(Schema.from_dict(data["schema"]))
        codec.columns = {k: dict(v) for k, v in data["columns"].items()}
        return codec

    @staticmethod
    def _to_number(series: pd.Series, info: dict) -> pd.Series:
        if info["kind"] == "numeric":
            return pd.to_numeric(series, errors="coerce").astype(float)
        if not ptypes.is_datetime64_any_dtype(series):
            first = series.dropna().astype(str)
            fmt = guess_datetime_format(first.iloc[0]) if len(first) else None
            info.setdefault("format", fmt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                series = pd.to_datetime(series, errors="coerce", format=info.get("format") or "mixed")
        stamps = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        seconds = stamps.astype("datetime64[ns]").astype("int64").astype(float) / 1e9
        return seconds.mask(stamps.isna())

    @staticmethod
    def _from_number(numbers: pd.Series, info: dict, stable_types: bool = False) -> pd.Series:
        if info["kind"] == "numeric":
            may_miss = numbers.isna().any() or (stable_types and info["has_missing"])
            if info["integer"] and not may_miss and info["dtype"].startswith(("int", "Int")):
                return numbers.astype(info["dtype"])
            return numbers
        stamps = pd.to_datetime(numbers * 1e9, unit="ns").dt.floor("s")
        if info.get("format"):
            return stamps.dt.strftime(info["format"]).where(stamps.notna(), None)
        return stamps

    @staticmethod
    def _to_category(series: pd.Series) -> pd.Series:
        return series.map(lambda v: MISSING_CATEGORY if pd.isna(v) else str(v)).astype(object)

    @staticmethod
    def _from_category(values: pd.Series, info: dict, stable_types: bool = False) -> pd.Series:
        restored = values.where(values != MISSING_CATEGORY, None)
        dtype = info["dtype"]
        if info["kind"] == "boolean":
            return restored.map({"True": True, "False": False, None: None})
        may_miss = restored.isna().any() or (stable_types and info["has_missing"])
        if dtype.startswith(("int", "Int", "float")) and not may_miss:
            return pd.to_numeric(restored).astype(dtype)
        if dtype == "string":
            return restored.astype("string")
        return restored
