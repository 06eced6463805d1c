"""What the inspection reports, computed from a catalog (see :mod:`imgcls.inspection.catalog`)."""

from __future__ import annotations

import math

import pandas as pd

PROBLEM_COLUMNS = ["problem", "split", "item", "detail"]


def class_counts(labels_by_split: dict[str, list[str]], class_names: list[str]) -> pd.DataFrame:
    """Images per class (rows, in class order) and split (columns), with a ``total`` column."""
    table = pd.DataFrame(
        {split: pd.Series(labels, dtype=object).value_counts() for split, labels in labels_by_split.items()},
        index=pd.Index(class_names, name="class"),
    )
    table = table.fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    return table


def imbalance_ratio(counts: pd.Series) -> float:
    """Largest class count over smallest (1 = balanced); infinite when a class is empty."""
    smallest = counts.min()
    return math.inf if smallest == 0 else float(counts.max() / smallest)


def size_summary(catalog: pd.DataFrame) -> pd.DataFrame:
    """Height and width statistics per split (readable images only)."""
    readable = catalog[catalog["error"].isna()].astype({"height": float, "width": float})
    stats = readable.groupby("split", sort=False)[["height", "width"]].describe()
    stats.columns = [f"{dim}_{stat}" for dim, stat in stats.columns]
    keep = [f"{dim}_{stat}" for dim in ("height", "width") for stat in ("min", "50%", "mean", "max")]
    return stats[["height_count", *keep]].rename(columns={"height_count": "images"}).round(1)


def mode_counts(catalog: pd.DataFrame) -> pd.DataFrame:
    """Images per PIL mode (L, RGB, RGBA, P, I;16 ...) and split."""
    readable = catalog[catalog["error"].isna()]
    return pd.crosstab(readable["mode"], readable["split"]).reindex(
        columns=catalog["split"].unique(), fill_value=0
    )


def find_problems(catalog: pd.DataFrame) -> pd.DataFrame:
    """Unreadable or missing files, files listed twice, and the same image in two splits."""
    rows = [
        {
            "problem": "missing_file" if error == "missing file" else "unreadable_file",
            "split": split,
            "item": item,
            "detail": error,
        }
        for split, item, error in catalog.loc[
            catalog["error"].notna(), ["split", "item", "error"]
        ].itertuples(index=False)
    ]
    listed_again = catalog[catalog.duplicated("item", keep=False)]
    for item, group in listed_again.groupby("item", sort=False):
        splits = list(group["split"])
        if len(set(splits)) > 1:
            rows.append(
                {
                    "problem": "leakage_same_file",
                    "split": ",".join(dict.fromkeys(splits)),
                    "item": item,
                    "detail": f"listed in {len(set(splits))} splits",
                }
            )
        for split in {s for s in splits if splits.count(s) > 1}:
            rows.append(
                {
                    "problem": "duplicate_id",
                    "split": split,
                    "item": item,
                    "detail": f"listed {splits.count(split)} times",
                }
            )
    hashed = catalog[catalog["hash"].notna()].drop_duplicates(["split", "item"])
    for _, group in hashed[hashed.duplicated("hash", keep=False)].groupby("hash", sort=False):
        if group["item"].nunique() < 2:
            continue
        kind = "leakage_same_content" if group["split"].nunique() > 1 else "duplicate_content"
        for split, item in group[["split", "item"]].itertuples(index=False):
            others = [f"{s}:{i}" for s, i in group[["split", "item"]].itertuples(index=False) if i != item]
            rows.append(
                {
                    "problem": kind,
                    "split": split,
                    "item": item,
                    "detail": "same bytes as " + ", ".join(others[:5]),
                }
            )
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)
