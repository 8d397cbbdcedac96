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
ID_NAME = re.compile(r"(^id$|_id$|^id_|uuid|guid|identifier|^record|^mrn$|e-?mail|phone|^ssn$|passport)",
                     re.IGNORECASE)
# values shaped like identifiers: e-mail addresses, phone numbers, record numbers (MRN-001234, P100231)
ID_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}|\+?[\d(][\d\s().-]{6,}\d|[A-Za-z]{0,5}[-_/ ]?\d{5,}")
MAX_INTEGER_CODES = 10  # an integer column with at most this many values is a code, not a quantity
NEAR_UNIQUE = 0.9  # a category with a distinct value in this share of rows would be memorised, not modelled
MIN_ROWS_FOR_ID = 20
NUMERIC_TEXT = 0.95  # a text column whose values are numbers but for this share is a numeric column


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
    def features(self) -> list[str]:
        """Modelled columns other than the target: what a generator learns the target from."""
        return [c for c in self.modelled if c != self.target]

    @property
    def excluded(self) -> list[str]:
        """Identifier columns: dropped at load, before anything is written."""
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
    for column, kind in kinds.items():
        if kind == "categorical" and column != target and _near_unique(table[column]):
            values = table[column].dropna()
            raise InputError(f"column {column!r} has {values.nunique()} distinct values in {len(values)} rows: as a "
                             f"category it would be memorised, not modelled; mark it id (--column-type {column}=id)")
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
    named = bool(ID_NAME.search(name))
    if ptypes.is_float_dtype(series):
        return "id" if named and n and unique / n >= NEAR_UNIQUE and _integral(values) else "numeric"
    if ptypes.is_integer_dtype(series):
        if n > MIN_ROWS_FOR_ID and (named and unique / n >= NEAR_UNIQUE or unique == n and values.is_monotonic_increasing):
            return "id"
        return "categorical" if unique <= MAX_INTEGER_CODES else "numeric"
    # strings and anything else: dates first (each row may have its own), then identifiers by name,
    # by shape (a repeated e-mail is still an e-mail) or by a distinct value in nearly every row
    if named and n and unique / n >= NEAR_UNIQUE:
        return "id"
    if _parses_as_datetime(values):
        return "datetime"
    numbers = pd.to_numeric(values, errors="coerce")
    if n and numbers.notna().mean() >= NUMERIC_TEXT and numbers.nunique() > MAX_INTEGER_CODES:
        return "numeric"  # numbers written as text among a few stray tokens ('\t?', '-')
    if n >= MIN_ROWS_FOR_ID and values.astype(str).str.fullmatch(ID_VALUE).mean() >= NEAR_UNIQUE:
        return "id"
    if _near_unique(series):
        return "id"
    return "categorical"


def apply_schema(table: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The table as the schema reads it: identifier columns dropped (before anything is written),
    numbers stored as text parsed, their stray tokens missing (with a warning that counts them)."""
    table = table.drop(columns=schema.excluded)
    for column in schema.modelled:
        if schema.kinds[column] == "numeric" and not ptypes.is_numeric_dtype(table[column]):
            numbers = pd.to_numeric(table[column], errors="coerce")
            stray = int((numbers.isna() & table[column].notna()).sum())
            if stray:
                warnings.warn(f"column {column!r}: {stray} value(s) that are not numbers read as missing", stacklevel=2)
            table[column] = numbers
    return table


def _near_unique(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) > MIN_ROWS_FOR_ID and values.nunique() >= NEAR_UNIQUE * len(values)


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
