"""``inspect_dataset(cfg)``: describe a configured dataset in its run directory and TensorBoard.

Writes ``report.md`` (everything below, readable on GitHub), ``summary.json`` (for
scripts), ``class_counts.csv``, ``image_sizes.csv``, ``image_modes.csv``, ``problems.csv``,
``catalog.csv`` (one row per image), ``bad_files.csv`` (file datasets: each file that does
not decode, and why; the rest is still described), ``near_duplicates.csv`` (images in two
splits that are nearly the same, :mod:`imgcls.inspection.near_duplicates`), the figures
``class_counts.png``, ``image_sizes.png``, ``samples.png`` and ``near_duplicates.png``, and
the same text and figures to TensorBoard.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgcls.data.datamodule import DatasetSplits
from imgcls.data.decode_cache import BadFile
from imgcls.data.file_datamodule import FileDataModule
from imgcls.display import display_name, display_names
from imgcls.errors import UserError
from imgcls.inspection.catalog import array_catalog, file_catalog, named_splits
from imgcls.inspection.checks import (
    PROBLEM_COLUMNS,
    class_counts,
    find_problems,
    imbalance_ratio,
    mode_counts,
    size_summary,
)
from imgcls.inspection.figures import class_count_chart, near_duplicate_grid, sample_grid, size_histograms
from imgcls.inspection.near_duplicates import near_duplicate_pairs, perceptual_hashes

# report.md lists this many problems; problems.csv has them all.
_LISTED_PROBLEMS = 50


class DatasetLoadError(UserError, RuntimeError):
    """The dataset could not be loaded; the report in the run directory says what was found."""

    kind = "Data error"


@dataclass
class Loaded:
    """What could be read of a dataset: its file listing, its arrays, or why not."""

    listing: object | None = None
    splits: DatasetSplits | None = None
    error: Exception | None = None
    bad_files: list[BadFile] = field(default_factory=list)  # set aside when decoding

    @property
    def class_names(self) -> list[str]:
        """As shown (:func:`~imgcls.display.display_name`), in class order."""
        source = self.splits or self.listing
        return display_names(source.class_names) if source is not None else []


def inspect_dataset(cfg: DictConfig) -> Path:
    """Inspect ``cfg.data`` with the options in ``cfg.inspect``; returns the report directory."""
    options = cfg.inspect
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    datamodule = instantiate(cfg.data)
    dataset = cfg.data.get("_target_", type(datamodule).__name__)
    loaded = load(datamodule)

    # Files are described as they are on disk; array datasets as they are held in memory.
    if loaded.listing is not None:
        catalog, source = file_catalog(loaded.listing, options.hash_contents), "original files"
    elif loaded.splits is not None:
        catalog, source = array_catalog(loaded.splits, options.hash_contents), "arrays in memory"
    else:
        catalog, source = None, None
    if catalog is not None:
        _mark_undecodable(catalog, loaded.bad_files)
    problems = find_problems(catalog) if catalog is not None else pd.DataFrame(columns=PROBLEM_COLUMNS)
    if loaded.error is not None:
        error = {"problem": "load_error", "split": "", "item": dataset, "detail": display_name(loaded.error)}
        problems = pd.concat([pd.DataFrame([error]), problems], ignore_index=True)
    labels = _labels_by_split(loaded, catalog)
    counts = class_counts(labels, loaded.class_names) if labels else None
    ratio = imbalance_ratio(counts["train"]) if counts is not None and "train" in counts else None

    figures = {}
    if counts is not None:
        counts.to_csv(run_dir / "class_counts.csv")
        figures["class_counts"] = class_count_chart(counts)
    if catalog is not None:
        catalog.to_csv(run_dir / "catalog.csv", index=False)
        size_summary(catalog).to_csv(run_dir / "image_sizes.csv")
        mode_counts(catalog).to_csv(run_dir / "image_modes.csv")
        figures["image_sizes"] = size_histograms(catalog, bins=options.histogram_bins)
    if loaded.splits is not None:
        samples = _samples_per_class(loaded.splits, options.samples_per_class, options.grid_classes, cfg.seed)
        figures["samples"] = sample_grid(samples)
    near, near_total, near_note = None, None, _near_duplicates_skipped(loaded, options)
    if near_note is None:
        near, near_total, shown = _near_duplicates(loaded, options)
        near.to_csv(run_dir / "near_duplicates.csv", index=False)
        if shown:
            figures["near_duplicates"] = near_duplicate_grid(shown)
    problems.to_csv(run_dir / "problems.csv", index=False)
    summary = {
        "dataset": dataset,
        "described_from": source,
        "num_classes": len(loaded.class_names),
        "class_names": loaded.class_names,
        "split_sizes": {split: len(values) for split, values in labels.items()},
        "imbalance_ratio": ratio,
        "problems": problems["problem"].value_counts().to_dict(),
        "bad_files": len(loaded.bad_files),
        "near_duplicates": near_total,
        "load_error": None if loaded.error is None else display_name(f"{type(loaded.error).__name__}: {loaded.error}"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    markdown = _markdown(summary, counts, catalog, problems, list(figures), (near, near_note), options)
    (run_dir / "report.md").write_text(markdown, encoding="utf-8")
    _write_figures_and_tensorboard(run_dir, markdown, figures, ratio)

    print(f"Dataset report: {run_dir / 'report.md'}")
    if loaded.error is not None:
        raise DatasetLoadError(
            f"{dataset} could not be loaded ({type(loaded.error).__name__}: {loaded.error}); "
            f"what could be inspected is in {run_dir}"
        ) from loaded.error
    return run_dir


def load(datamodule) -> Loaded:
    """List the files (file datasets), then load; a failure is kept, not raised.

    A file dataset sets its undecodable files aside, whatever ``data.skip_bad`` says (they
    are findings, listed in ``bad_files.csv``), so that the good ones are still described."""
    loaded = Loaded()
    if isinstance(datamodule, FileDataModule):
        datamodule.skip_bad, datamodule.max_bad_fraction = True, 1.0
    try:
        if callable(getattr(datamodule, "list_files", None)):
            loaded.listing = datamodule.list_files()
        datamodule.setup("fit")  # not reached when the listing fails: it would fail the same way
    except Exception as error:  # noqa: BLE001 - why a dataset does not load is the finding
        loaded.error = error
    loaded.splits = datamodule.splits
    loaded.bad_files = list(getattr(datamodule, "bad_files", []))
    return loaded


def _mark_undecodable(catalog: pd.DataFrame, bad_files: list[BadFile]) -> None:
    """The decode failures a header read did not see (a truncated image) as the files' errors."""
    reasons = {display_name(item.path): display_name(item.reason) for item in bad_files}
    unmarked = catalog["error"].isna() & catalog["item"].isin(reasons)
    catalog.loc[unmarked, "error"] = catalog.loc[unmarked, "item"].map(reasons)


def _labels_by_split(loaded: Loaded, catalog: pd.DataFrame | None) -> dict[str, list[str]]:
    """Each split's class names, from the arrays trained on, else from the file listing."""
    if loaded.splits is not None:
        names = loaded.class_names
        return {
            split: [names[i] for i in data.labels.tolist()]
            for split, data in named_splits(loaded.splits).items()
        }
    if catalog is not None:
        return {split: list(group["label"]) for split, group in catalog.groupby("split", sort=False)}
    return {}


def _write_figures_and_tensorboard(run_dir: Path, markdown: str, figures: dict, ratio: float | None) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    writer.add_text("inspection/report", markdown)
    if ratio is not None and math.isfinite(ratio):
        writer.add_scalar("inspection/imbalance_ratio", ratio)
    for name, fig in figures.items():
        fig.savefig(run_dir / f"{name}.png", dpi=100)
        writer.add_figure(f"inspection/{name}", fig)  # closes the figure
    writer.close()


def _near_duplicates_skipped(loaded: Loaded, options) -> str | None:
    """Why near-duplicates are not searched, or None when they are."""
    if options.get("near_duplicate_distance") is None:
        return "not searched (inspect.near_duplicate_distance=null)."
    if loaded.splits is None:
        return "not searched: the images could not be loaded."
    height, width = loaded.splits.train.images.shape[-2:]
    if min(height, width) < options.near_duplicate_min_side:
        return (
            f"not searched: the images are {height}x{width}, under inspect.near_duplicate_min_side="
            f"{options.near_duplicate_min_side}; a 64-bit hash of so few pixels matches different "
            "images of one class."
        )
    return None


def _near_duplicates(loaded: Loaded, options) -> tuple[pd.DataFrame, int, list]:
    """The near-duplicate pairs table, their total count, and the pairs the figure shows."""
    arrays = {split: data.images.numpy() for split, data in named_splits(loaded.splits).items()}
    items = {split: _item_names(loaded.listing, split, len(images)) for split, images in arrays.items()}
    hashes = {split: perceptual_hashes(images) for split, images in arrays.items()}
    table, total = near_duplicate_pairs(hashes, items, int(options.near_duplicate_distance))
    shown = [
        (arrays[a][i], f"{a}: {_short(item_a)}", arrays[b][j], f"{b}: {_short(item_b)}", distance)
        for a, item_a, i, b, item_b, j, distance in table.head(options.near_duplicate_examples).itertuples(index=False)
    ]
    return table, total, shown


def _item_names(listing, split: str, count: int) -> list[str]:
    """The listed files of a split when they are the images held (same count), else ``split[i]``."""
    parts = {} if listing is None else {
        "train": listing.train, "val": listing.val, "test": listing.test, **dict(getattr(listing, "extra_tests", None) or {})
    }
    paths = [str(p) for p in parts[split].paths] if split in parts else []
    return paths if len(paths) == count else [f"{split}[{i}]" for i in range(count)]


def _short(item: str, keep: int = 32) -> str:
    return item if len(item) <= keep else "…" + item[-keep:]


def _near_duplicate_lines(near: pd.DataFrame, total: int, options) -> list[str]:
    limit = options.near_duplicate_distance
    lines = ["", f"## Near-duplicates across splits (pHash at most {limit} of 64 bits apart)", ""]
    if not total:
        return [*lines, "None found."]
    listed = f"; the closest {len(near)} in `near_duplicates.csv`" if len(near) < total else " (`near_duplicates.csv`)"
    lines += [f"{total} pairs{listed}. Exact copies are also in the problems above.", ""]
    return [*lines, near.head(_LISTED_PROBLEMS).drop(columns=["index_a", "index_b"]).to_markdown(index=False)]


def _samples_per_class(splits, per_class: int, max_classes: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``per_class`` random training images of each of the first ``max_classes`` classes."""
    rng = np.random.default_rng(seed)
    labels = splits.train.labels.numpy()
    samples = {}
    for index, name in enumerate(display_names(splits.class_names[:max_classes])):
        members = np.flatnonzero(labels == index)
        pick = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        samples[name] = splits.train.images[pick].numpy()
    return samples


def _markdown(
    summary: dict, counts, catalog, problems: pd.DataFrame, figures: list[str], near=(None, None), options=None
) -> str:
    lines = [f"# Dataset inspection: `{summary['dataset']}`", ""]
    if summary["load_error"]:
        lines += ["**The dataset could not be loaded:**", "", "```", summary["load_error"], "```", ""]
    sizes = ", ".join(f"{split} {n:,}" for split, n in summary["split_sizes"].items())
    lines += [f"- classes: {summary['num_classes']}", f"- images: {sizes or 'none'}"]
    if summary["imbalance_ratio"] is not None and counts is not None:
        train = counts["train"]
        lines.append(
            f"- imbalance ratio (train, largest/smallest class): {summary['imbalance_ratio']:.2f} "
            f"({train.idxmax()}: {train.max():,}; {train.idxmin()}: {train.min():,})"
        )
    if counts is not None:
        lines += ["", "## Class counts", "", counts.to_markdown()]
    if catalog is not None:
        lines += [
            "",
            f"## Image sizes and modes ({summary['described_from']})",
            "",
            size_summary(catalog).to_markdown(),
            "",
            mode_counts(catalog).to_markdown(),
        ]
    lines += ["", "## Problems", ""]
    if problems.empty:
        lines.append("None found: no missing, unreadable or duplicated files, and no image in two splits.")
    else:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in summary["problems"].items())
        lines += [f"{len(problems)} found ({kinds}); all in `problems.csv`.", ""]
        if summary["bad_files"]:
            lines += [
                f"{summary['bad_files']} files do not decode: left out of the figures and tables "
                "above, listed with the reason in `bad_files.csv`.",
                "",
            ]
        listed = problems.head(_LISTED_PROBLEMS)
        # A cell cannot hold a line break; the full text is in problems.csv.
        listed = listed.assign(detail=listed["detail"].astype(str).str.replace(r"\s*\n\s*", " ", regex=True))
        lines.append(listed.to_markdown(index=False))
    table, note = near
    if note is not None:
        lines += ["", "## Near-duplicates across splits", "", f"Near-duplicates {note}"]
    elif table is not None:
        lines += _near_duplicate_lines(table, summary["near_duplicates"], options)
    lines += [""] + [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"
