"""Loading tables from files or built-in names, and the seeded holdout split."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from synth.errors import InputError

BUILTIN_PREFIX = "builtin:"
TABLE_SUFFIXES = {".csv", ".parquet", ".pq"}


def _breast_cancer() -> pd.DataFrame:
    """scikit-learn's Wisconsin diagnostic table; ships with the package, so works offline."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    table = bunch.data.copy()
    names = np.asarray(bunch.target_names)  # 0 = malignant, 1 = benign
    table["diagnosis"] = pd.Series(names[bunch.target.to_numpy()], dtype="string")
    return table


BUILTIN_TABLES = {"breast_cancer": _breast_cancer}


def load_table(source: str) -> pd.DataFrame:
    """Read a CSV or Parquet file, or a `builtin:NAME` table; refuse what cannot be a table."""
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_TABLES:
            raise InputError(f"unknown built-in table {name!r}; known: {', '.join(sorted(BUILTIN_TABLES))}")
        return BUILTIN_TABLES[name]()
    path = Path(source)
    if not path.is_file():
        raise InputError(f"data file not found: {source}")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unsupported table format {suffix or '(none)'!r} for {source}; use .csv or .parquet")
    try:
        table = _read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InputError(f"cannot read table {source}: {_first_line(exc)}") from exc
    if table.empty or table.shape[1] == 0:
        raise InputError(f"table {source} has no rows or no columns")
    if table.columns.duplicated().any():
        dupes = sorted(set(map(str, table.columns[table.columns.duplicated()])))
        raise InputError(f"table {source} has duplicated column names: {', '.join(dupes)}")
    table.columns = [str(c) for c in table.columns]
    return table


def _read_csv(path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(8192)
    if b"\x00" in head:
        raise InputError(f"cannot read table {path}: it looks binary, not CSV")
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        header = next(csv.reader(handle), [])  # the whole first record, however wide
    dupes = sorted(name for name, count in Counter(header).items() if count > 1)
    if dupes:  # pandas would silently rename them to "a.1"
        raise InputError(f"table {path} has duplicated column names: {', '.join(dupes[:8])}")
    try:
        return pd.read_csv(path)
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read table {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"table {path} is empty") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def split_train_holdout(
    table: pd.DataFrame, target: str | None, holdout_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split once, seeded and stratified on the target, before any training.

    The holdout never reaches a generator: privacy and utility scores compare
    the synthetic rows against it.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < holdout_fraction < 1:
        raise InputError(f"holdout fraction must be between 0 and 1, got {holdout_fraction}")
    n_holdout = int(np.ceil(len(table) * holdout_fraction))
    stratify = None
    if target is not None:
        counts = table[target].value_counts(dropna=False)
        if len(counts) < 2:
            raise InputError(f"target {target!r} has a single class ({counts.index[0]!r}); need at least two")
        if counts.min() < 2:
            raise InputError(
                f"target {target!r} class {counts.idxmin()!r} has {counts.min()} row; every class needs at least 2 to split"
            )
        if n_holdout < len(counts) or len(table) - n_holdout < len(counts):
            raise InputError(
                f"{len(table)} rows are too few to split {holdout_fraction:.0%} holdout across {len(counts)} classes"
            )
        stratify = table[target].astype("string").fillna("<NA>")
    if len(table) - n_holdout < 10 or n_holdout < 5:
        raise InputError(f"{len(table)} rows are too few: the split needs at least 10 training and 5 holdout rows")
    train, holdout = train_test_split(table, test_size=n_holdout, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)



def write_parquet_chunks(frames: Iterable[pd.DataFrame], path: Path, schema=None) -> int:
    """Write frames one after another into one Parquet file, so that a draw of millions of rows is
    never whole in memory. `schema` (pyarrow) fixes the file's types; by default the first frame's.
    Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False, schema=schema)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def read_parquet_sample(path: Path, rows: int, seed: int) -> tuple[pd.DataFrame, int]:
    """At most `rows` rows of a Parquet file, a seeded uniform subsample when it holds more, read batch
    by batch; and how many rows the file holds."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    total = file.metadata.num_rows
    if total <= rows:
        return file.read().to_pandas(), total
    keep = np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))
    parts, start = [], 0
    for batch in file.iter_batches(batch_size=65_536):
        stop = start + batch.num_rows
        inside = keep[(keep >= start) & (keep < stop)] - start
        if len(inside):
            parts.append(batch.take(inside).to_pandas())
        start = stop
    return pd.concat(parts, ignore_index=True), total
