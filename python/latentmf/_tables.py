"""Tables in files for the command line: CSV, TSV and Parquet in, CSV and JSON out.

CSV and TSV are read with pandas when it is installed (faster) and with the csv module
otherwise; Parquet needs pandas and pyarrow. Columns come back as NumPy arrays: integers where
every entry is one, else floats where every entry is one, else strings.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
#: Column names tried, in order, when none is given.
COLUMN_ALIASES = {
    "user": ("user", "userId", "user_id", "userID", "UserID"),
    "item": ("item", "itemId", "item_id", "movieId", "movie_id", "MovieID"),
    "rating": ("rating", "ratings", "score", "value", "Rating"),
    "timestamp": ("timestamp", "time", "Timestamp"),
}


def read_table(path: str, header: bool = True) -> dict[str, np.ndarray]:
    """The columns of a .csv, .tsv (.tab) or .parquet file, by name; without a header the columns
    are named by position: user, item, rating, timestamp."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix not in DELIMITERS:
        raise ValueError(f"{path}: unknown file type {suffix or '(none)'}; use .csv, .tsv or .parquet")
    try:
        import pandas
    except ImportError:
        return _read_delimited(path, DELIMITERS[suffix], header)
    frame = pandas.read_csv(path, sep=DELIMITERS[suffix], header=0 if header else None)
    if not header:
        frame.columns = _positional_names(frame.shape[1], path)
    return {str(name): _typed(frame[name].to_numpy()) for name in frame.columns}


def _read_parquet(path: str) -> dict[str, np.ndarray]:
    try:
        import pandas
        import pyarrow  # noqa: F401  (pandas reads Parquet through it)
    except ImportError:
        raise ImportError("reading Parquet needs pandas and pyarrow: pip install 'latentmf[parquet]'") from None
    frame = pandas.read_parquet(path)
    return {str(name): _typed(frame[name].to_numpy()) for name in frame.columns}


def _read_delimited(path: str, delimiter: str, header: bool) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file, delimiter=delimiter) if row]
    if not rows:
        raise ValueError(f"{path} is empty")
    names = rows.pop(0) if header else _positional_names(len(rows[0]), path)
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"{path}: every row must have {len(names)} fields")
    return {name: _typed(np.array([row[k] for row in rows], dtype=str)) for k, name in enumerate(names)}


def _positional_names(count: int, path: str) -> list[str]:
    names = ["user", "item", "rating", "timestamp"]
    if not 2 <= count <= 4:
        raise ValueError(f"{path}: without a header the columns are user, item[, rating[, timestamp]]; found {count}")
    return names[:count]


def _typed(column: np.ndarray) -> np.ndarray:
    """Numbers as they are; text as integers if every entry is one, else floats, else strings."""
    if column.dtype.kind in "iuf":
        return column
    text = column.astype(str)
    for dtype in (np.int64, np.float64):
        try:
            return text.astype(dtype)
        except ValueError:
            continue
    return text


def numbers(values: np.ndarray, role: str, path: str, header: bool) -> np.ndarray:
    """A column that must hold numbers, or ValueError naming the first cell that is not one (its
    line in the file, counting the header)."""
    if values.dtype.kind in "iufb":
        return values
    for k, cell in enumerate(values):
        try:
            float(cell)
        except (TypeError, ValueError):
            line = k + 1 + int(header)
            raise ValueError(f"{path}, line {line}: the {role} {str(cell)!r} is not a number") from None
    return values.astype(np.float64)


def column(table: dict[str, np.ndarray], role: str, name: str | None, path: str, required: bool = True) -> Any:
    """The column for `role` (user, item, rating, timestamp): the named one, or the first alias found."""
    if name is not None:
        if name not in table:
            raise ValueError(f"{path} has no column {name!r} (columns: {', '.join(table)})")
        return table[name]
    for alias in COLUMN_ALIASES[role]:
        if alias in table:
            return table[alias]
    if required:
        raise ValueError(f"{path} has no {role} column: name it with --{role}-col (columns: {', '.join(table)})")
    return None


def write_rows(names: Sequence[str], columns: Sequence[Any], output: str | None, form: str) -> None:
    """Rows of equal-length columns as CSV or JSON (a list of objects), to `output` or stdout."""
    values = [np.asarray(c).tolist() for c in columns]
    file = sys.stdout if output is None else open(output, "w", newline="", encoding="utf-8")
    try:
        if form == "json":
            json.dump([dict(zip(names, row)) for row in zip(*values)], file, indent=1)
            file.write("\n")
        else:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(names)
            writer.writerows(zip(*values))
    finally:
        if output is not None:
            file.close()
