"""Column kinds, inferred from a table and overridable by the caller.

Kinds: numeric, categorical, boolean, datetime, id. ID-like columns are never
modelled: a generator that learns them can only memorise or invent identifiers.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import pandas as pd
from pandas.api import types as ptypes

from synth.errors import InputError

KINDS = ("numeric", "categorical", "boolean", "datetime", "id")
DISCRETE_KINDS = ("categorical", "boolean")
ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|identifier|^record$|^mrn$)", re.IGNORECASE)
MAX_INTEGER_CODES = 10  # an integer column with at most this many values is a code, not a quantity


@dataclass
class Schema:
    """Kind of every column, in the table's order."""

    kinds: dict[str, str]
    target: str | None = None
    sensitive: list[str] = field(default_factory=list)

    @property
    def modelled(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k != "id"]

    @property
    def discrete(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k in DISCRETE_KINDS]

    @property
    def excluded(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k == "id"]

    def to_dict(self) -> dict:
        return {"kinds": dict(self.kinds), "target": self.target, "sensitive": list(self.sensitive)}

    @classmethod
    def from_dict(cls, data: dict) -> "Schema":
        return cls(kinds=dict(data["kinds"]), target=data.get("target"), sensitive=list(data.get("sensitive", [])))


def infer_schema(
    table: pd.DataFrame,
    target: str | None = None,
    overrides: dict[str, str] | None = None,
    discrete_columns: list[str] | None = None,
    sensitive: list[str] | None = None,
) -> Schema:
    """Guess each column's kind; `overrides` and `discrete_columns` win over the guess.

    `sensitive` columns are scored for attribute inference (they must be modelled columns).
    """
    overrides = dict(overrides or {})
    for column in discrete_columns or []:
        overrides.setdefault(column, "categorical")
    for column, kind in overrides.items():
        if column not in table.columns:
            raise InputError(f"column type override names unknown column {column!r}")
        if kind not in KINDS:
            raise InputError(f"unknown column kind {kind!r} for {column!r}; use one of {', '.join(KINDS)}")
    if target is not None:
        if target not in table.columns:
            raise InputError(f"target column {target!r} is not in the table; columns: {_preview(table.columns)}")
        if overrides.get(target, "categorical") not in DISCRETE_KINDS:
            raise InputError(f"target column {target!r} must be categorical or boolean")
        overrides.setdefault(target, "categorical")

    kinds = {}
    for column in table.columns:
        kind = overrides.get(column) or _guess_kind(table[column], column)
        if table[column].isna().all() and kind != "id":
            raise InputError(f"column {column!r} has no values (all missing); drop it or mark it id")
        kinds[column] = kind
    ids = [c for c, k in kinds.items() if k == "id"]
    if ids:
        warnings.warn(f"ID-like columns not modelled or published: {', '.join(ids)}", stacklevel=2)
    if len(ids) == len(kinds):
        raise InputError("every column is ID-like; nothing left to model")
    for column in sensitive or []:
        if kinds.get(column, "id") == "id":
            raise InputError(f"sensitive column {column!r} is not a modelled column of the table")
    return Schema(kinds=kinds, target=target, sensitive=list(sensitive or []))


def _guess_kind(series: pd.Series, name: str) -> str:
    values = series.dropna()
    n = len(values)
    unique = values.nunique()
    if ptypes.is_bool_dtype(series) or (n and set(values.unique()) <= {True, False} and not ptypes.is_numeric_dtype(series)):
        return "boolean"
    if ptypes.is_datetime64_any_dtype(series):
        return "datetime"
    if ptypes.is_float_dtype(series):
        return "id" if ID_NAME.search(name) and unique == n and _integral(values) else "numeric"
    if ptypes.is_integer_dtype(series):
        if unique == n and n > 20 and (ID_NAME.search(name) or values.is_monotonic_increasing):
            return "id"
        return "categorical" if unique <= MAX_INTEGER_CODES else "numeric"
    # strings and anything else
    if n > 20 and unique == n:
        return "id"
    if ID_NAME.search(name) and n and unique / n > 0.9:
        return "id"
    if _parses_as_datetime(values):
        return "datetime"
    return "categorical"


def _integral(values: pd.Series) -> bool:
    return bool(((values % 1) == 0).all())


def _parses_as_datetime(values: pd.Series) -> bool:
    sample = values.astype(str).head(200)
    if sample.empty or not sample.str.contains(r"\d{4}|\d{1,2}[/-]\d{1,2}", regex=True).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def _preview(columns, limit: int = 8) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")
