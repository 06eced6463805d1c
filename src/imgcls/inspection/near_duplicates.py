"""Near-duplicates across splits: images whose perceptual hashes (pHash, the ``imagehash``
library) differ in at most a few of their 64 bits.

Exact copies are found by content hashes (:mod:`imgcls.inspection.checks`); a copy that was
resized, re-encoded or slightly brightened has other bytes and pixels but nearly the same
pHash, so it scores the model on an image it trained on just as well. The hashes are of the
decoded images the model sees (about 0.1 ms an image). Every pair of splits is compared by
brute force on packed 64-bit hashes, in chunks: CIFAR-10's 5 * 10^8 comparisons take ~2 s
on one core, so a million-image dataset takes minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# index_*: the image's position in its split.
PAIR_COLUMNS = ["split_a", "item_a", "index_a", "split_b", "item_b", "index_b", "distance"]
# Rows of one split compared with another at once: the chunk's distance matrix stays ~64 MB.
_CHUNK_CELLS = 8_000_000


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """The 64-bit pHash of each uint8 ``[N, C, H, W]`` image (of its grayscale), as ``uint64 [N]``."""
    import imagehash
    from PIL import Image

    gray = images.mean(axis=1) if images.shape[1] == 3 else images[:, 0]
    gray = gray.round().astype(np.uint8)
    bits = np.zeros((len(gray), 64), dtype=bool)
    for row, image in enumerate(gray):
        bits[row] = imagehash.phash(Image.fromarray(image)).hash.reshape(-1)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def near_duplicate_pairs(
    hashes: Mapping[str, np.ndarray],
    items: Mapping[str, Sequence[str]],
    max_distance: int,
    max_pairs: int = 10_000,
) -> tuple[pd.DataFrame, int]:
    """Pairs of images in two different splits at most ``max_distance`` bits apart, the closest
    first, at most ``max_pairs`` of them; and how many pairs there are in all.

    ``hashes`` maps each split to its :func:`perceptual_hashes`, ``items`` to the names
    shown for its images (paths, or ``split[index]``)."""
    splits = list(hashes)
    found: list[tuple[int, int, int, int, int]] = []  # distance, split a, row a, split b, row b
    total = 0
    for a, first in enumerate(splits):
        for b in range(a + 1, len(splits)):
            other = hashes[splits[b]]
            rows = max(1, _CHUNK_CELLS // max(len(other), 1))
            for start in range(0, len(hashes[first]), rows):
                chunk = hashes[first][start : start + rows]
                distances = np.bitwise_count(chunk[:, None] ^ other[None, :])
                close_a, close_b = np.nonzero(distances <= max_distance)
                total += len(close_a)
                keep = np.argsort(distances[close_a, close_b], kind="stable")[:max_pairs]
                found += [
                    (int(distances[i, j]), a, start + int(i), b, int(j))
                    for i, j in zip(close_a[keep], close_b[keep], strict=True)
                ]
                found = sorted(found)[:max_pairs]
    table = pd.DataFrame(
        [
            (splits[a], items[splits[a]][i], i, splits[b], items[splits[b]][j], j, distance)
            for distance, a, i, b, j in found
        ],
        columns=PAIR_COLUMNS,
    )
    return table, total

