"""Seeded, stratified splits of a labelled sample set."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(labels, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split sample indices into named parts of the given fractions, stratified by label.

    ``fractions`` names the parts carved out (e.g. ``{"val": 0.15, "test": 0.2}``); what is
    left is returned as ``"train"``. The same labels and seed always give the same split.
    """
    labels = np.asarray(labels)
    remaining = np.arange(len(labels))
    left = 1.0
    parts: dict[str, np.ndarray] = {}
    for name, fraction in fractions.items():
        if not 0.0 <= fraction < left:
            raise ValueError(f"split fraction {name}={fraction} must be in [0, {left:.3f})")
        if fraction == 0:
            parts[name] = remaining[:0]
            continue
        stratify = labels[remaining] if _can_stratify(labels[remaining], fraction / left) else None
        remaining, taken = train_test_split(
            remaining, test_size=fraction / left, random_state=seed, stratify=stratify
        )
        parts[name] = np.sort(taken)
        left -= fraction
    parts["train"] = np.sort(remaining)
    return parts


def _can_stratify(labels: np.ndarray, fraction: float) -> bool:
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return counts.min() >= 2 and round(fraction * len(labels)) >= len(counts)
