"""Image ids and labels from CSV files, checked row by row before anything is decoded.

Two layouts: a pair of one-column files (ids in one, labels in the other, row for row;
with or without a header line) or one table with named id and label columns. Errors name
the file and its line numbers (line 1 is the first line of the file, header or not).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgcls.errors import MissingFileError, UserError

# An error lists at most this many rows per problem, then counts the rest.
_LISTED_ROWS = 50


class LabelCSVError(UserError, ValueError):
    """A label CSV is malformed; the message names the file and the offending lines."""

    kind = "Data error"


@dataclass
class LabelledIds:
    """Image ids with integer labels, and the CSV line each came from."""

    ids: list[str]
    labels: np.ndarray
    lines: np.ndarray
    source: str


def read_column_pair(
    ids_csv: Path,
    labels_csv: Path,
    header: str | bool = "auto",
    id_is_file: Callable[[str], bool] | None = None,
) -> LabelledIds:
    """Ids from ``ids_csv`` and labels from ``labels_csv``, one column each, row for row.

    ``header="auto"`` decides per file: the labels file has a header when its first value
    is not a number; the ids file when ``id_is_file`` says its first value names no file
    and dropping it leaves as many ids as labels. No data row is ever dropped otherwise
    (``pd.read_csv``'s default ``header=0`` silently eats the first row of header-less files).
    """
    ids = _one_column(ids_csv)
    labels = _one_column(labels_csv)
    label_header = _is_header(labels[0], header, lambda v: v != "" and not _is_number(v)) if labels else False
    labels_count = len(labels) - label_header

    def ids_look_like_header(value: str) -> bool:
        return (id_is_file is None or not id_is_file(value)) and len(ids) - 1 == labels_count

    id_header = _is_header(ids[0], header, ids_look_like_header) if ids else False
    ids, labels = ids[id_header:], labels[label_header:]
    if len(ids) != len(labels):
        raise LabelCSVError(
            f"{ids_csv} has {len(ids)} ids but {labels_csv} has {len(labels)} labels "
            f"(header lines detected: {int(id_header)} and {int(label_header)}; set data.header to override)"
        )
    first_line = 1 + int(id_header)
    lines = np.arange(first_line, first_line + len(ids))
    source = f"{ids_csv} + {labels_csv}"
    return _check(ids, labels, lines, source, blank_where={"id": ids_csv, "label": labels_csv})


def read_table(csv_path: Path, id_column: str, label_column: str) -> LabelledIds:
    """Ids and labels from two named columns of one CSV with a header (Kaggle's ``image,level``)."""
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    missing = [c for c in (id_column, label_column) if c not in frame.columns]
    if missing:
        raise LabelCSVError(f"{csv_path} has no column(s) {missing}; its columns are {list(frame.columns)}")
    ids = [value.strip() for value in frame[id_column]]
    labels = [value.strip() for value in frame[label_column]]
    lines = np.arange(2, 2 + len(ids))
    return _check(ids, labels, lines, str(csv_path), blank_where={"id": csv_path, "label": csv_path})


def check_labels_and_files(table: LabelledIds, num_classes: int, path_of: Callable[[str], Path]) -> list[str]:
    """Paths of the table's files; raises naming every line with an out-of-range label or a
    missing file."""
    problems = []
    out_of_range = table.lines[(table.labels < 0) | (table.labels >= num_classes)]
    if len(out_of_range):
        problems.append(f"labels outside 0..{num_classes - 1} on {_lines(out_of_range)}")
    paths = [str(path_of(image_id)) for image_id in table.ids]
    missing = [
        (line, path) for line, path in zip(table.lines, paths, strict=True) if not os.path.isfile(path)
    ]
    if missing:
        listed = "\n".join(f"    line {line}: {path}" for line, path in missing[:_LISTED_ROWS])
        more = f"\n    ... and {len(missing) - _LISTED_ROWS} more" if len(missing) > _LISTED_ROWS else ""
        problems.append(f"{len(missing)} rows name files that do not exist:\n{listed}{more}")
    if problems:
        raise LabelCSVError(f"{table.source}: " + "; ".join(problems))
    return paths


def _check(
    ids: list[str], labels: list[str], lines: np.ndarray, source: str, blank_where: dict
) -> LabelledIds:
    problems = []
    for kind, values in (("id", ids), ("label", labels)):
        blank = [
            line for line, value in zip(lines, values, strict=True) if value == "" or value.lower() == "nan"
        ]
        if blank:
            problems.append(f"blank or NaN {kind} in {blank_where[kind]} on {_lines(blank)}")
    not_integer = [
        line
        for line, value in zip(lines, labels, strict=True)
        if value and value.lower() != "nan" and not _is_integer(value)
    ]
    if not_integer:
        problems.append(f"labels that are not integers on {_lines(not_integer)}")
    seen: dict[str, list[int]] = defaultdict(list)
    for line, image_id in zip(lines, ids, strict=True):
        seen[image_id].append(int(line))
    duplicates = {image_id: rows for image_id, rows in seen.items() if len(rows) > 1 and image_id}
    if duplicates:
        listed = ", ".join(
            f"{image_id!r} on lines {rows}" for image_id, rows in list(duplicates.items())[:_LISTED_ROWS]
        )
        problems.append(f"duplicate ids: {listed}")
    if problems:
        raise LabelCSVError(f"{source}: " + "; ".join(problems))
    return LabelledIds(
        ids, np.array([int(float(v)) for v in labels], dtype=np.int64), np.asarray(lines), source
    )


def _one_column(path: Path) -> list[str]:
    if not Path(path).is_file():
        raise MissingFileError(f"label CSV {path} does not exist")
    try:
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError as error:
        raise LabelCSVError(f"{path} is empty") from error
    except pd.errors.ParserError as error:
        raise LabelCSVError(f"{path} is not a one-column CSV ({error})") from error
    if frame.shape[1] != 1:
        raise LabelCSVError(f"{path} must have one column, found {frame.shape[1]}")
    values = [value.strip() for value in frame[0]]
    # A final newline is not a blank row; trailing empty lines are dropped the same way.
    while values and values[-1] == "":
        values.pop()
    return values


def _is_header(first: str, header: str | bool, auto_rule: Callable[[str], bool]) -> bool:
    if header in (True, "true", "True"):
        return True
    if header in (False, "false", "False"):
        return False
    if header != "auto":
        raise ValueError(f"data.header must be auto, true or false, got {header!r}")
    return auto_rule(first)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_integer(value: str) -> bool:
    return _is_number(value) and float(value).is_integer()


def _lines(lines) -> str:
    lines = [int(line) for line in lines]
    shown = ", ".join(map(str, lines[:_LISTED_ROWS]))
    more = f" and {len(lines) - _LISTED_ROWS} more" if len(lines) > _LISTED_ROWS else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"
