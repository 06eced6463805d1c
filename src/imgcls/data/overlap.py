"""Samples that are in two splits at once: the same file, or the same decoded pixels.

A test CSV that lists training images, or a photo copied into two split folders, scores
the model on what it trained on. Found before epoch 1 and refused, naming the files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import numpy as np

from imgcls.errors import UserError

# How many overlapping pairs an error message lists.
SHOWN = 10


class OverlapError(UserError, ValueError):
    """The same sample is in two splits."""

    kind = "Data error"


def find_overlaps(
    paths: Mapping[str, Sequence[str]], images: Mapping[str, np.ndarray] | None = None
) -> list[str]:
    """One line per sample found in two splits: ``split:path = split:path (same file|same pixels)``.

    ``paths`` maps each split to its files; ``images`` (optional, uint8 ``[N, ...]`` in the
    same order) adds the content check."""
    found, seen_files, seen_pixels = [], {}, {}
    for split, split_paths in paths.items():
        pixels = images.get(split) if images else None
        for index, path in enumerate(split_paths):
            keys = [("same file", os.path.realpath(path), seen_files)]
            if pixels is not None:
                digest = hashlib.blake2b(np.ascontiguousarray(pixels[index]).tobytes(), digest_size=16).digest()
                keys.append(("same pixels", digest, seen_pixels))
            for kind, key, seen in keys:
                first = seen.setdefault(key, (split, path))
                if first[0] != split:
                    found.append(f"{first[0]}:{first[1]} = {split}:{path} ({kind})")
                    break
    return found


def check_overlaps(found: list[str], allow: bool) -> None:
    if found and not allow:
        listed = "\n  ".join(found[:SHOWN]) + (f"\n  ... and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
        raise OverlapError(
            f"{len(found)} samples are in two splits, so the evaluation would score images the model "
            f"trained on (or selected its checkpoint with):\n  {listed}\n"
            "Remove them from one split, or set data.allow_overlap=true to accept it (the report then says so)."
        )
