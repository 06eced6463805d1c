"""Tables as GitHub markdown. Light: the sweep summary uses it without torch."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub table: floats to 4 decimals, everything else (override values too) as written."""

    def cell(value) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float | np.floating):
            return f"{value:.4f}"
        return str(value).replace("\n", " ").replace("|", "\\|")  # one table row per record

    return table.map(cell).to_markdown(index=False, disable_numparse=True)


def headline_table(results: dict[str, dict[str, float]], images: dict[str, int]) -> str:
    """One row per test set: its image count and headline metrics (imgcls.metrics.split_metrics),
    as train.py and evaluate.py print them."""
    rows = [{"test set": name, "images": images.get(name), **metrics} for name, metrics in results.items()]
    return to_markdown(pd.DataFrame(rows))
