"""``inspect_dataset(cfg)``: describe a configured dataset in its run directory and TensorBoard.

Writes ``report.md`` (everything below, readable on GitHub), ``summary.json`` (for
scripts), ``class_counts.csv``, ``image_sizes.csv``, ``image_modes.csv``, ``problems.csv``,
``catalog.csv`` (one row per image), the figures ``class_counts.png``,
``image_sizes.png`` and ``samples.png``, and the same text and figures to TensorBoard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgcls.inspection.catalog import array_catalog, file_catalog
from imgcls.inspection.checks import (
    PROBLEM_COLUMNS,
    class_counts,
    find_problems,
    imbalance_ratio,
    mode_counts,
    size_summary,
)
from imgcls.inspection.figures import class_count_chart, sample_grid, size_histograms

# report.md lists this many problems; problems.csv has them all.
_LISTED_PROBLEMS = 50


class DatasetLoadError(RuntimeError):
    """The dataset could not be loaded; the report in the run directory says what was found."""


def inspect_dataset(cfg: DictConfig) -> Path:
    """Inspect ``cfg.data`` with the options in ``cfg.inspect``; returns the report directory."""
    options = cfg.inspect
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    datamodule = instantiate(cfg.data)
    dataset = cfg.data.get("_target_", type(datamodule).__name__)

    listing, load_error = None, None
    if callable(getattr(datamodule, "list_files", None)):
        try:
            listing = datamodule.list_files()
        except Exception as error:  # noqa: BLE001 - the reason is the finding
            load_error = error
    if load_error is None:
        try:
            datamodule.setup("fit")
        except Exception as error:  # noqa: BLE001
            load_error = error
    splits = datamodule.splits

    if listing is not None:
        catalog, source = file_catalog(listing, options.hash_contents), "original files"
    elif splits is not None:
        catalog, source = array_catalog(splits, options.hash_contents), "arrays in memory"
    else:
        catalog, source = None, None
    class_names = list(splits.class_names if splits is not None else listing.class_names if listing else [])
    problems = find_problems(catalog) if catalog is not None else pd.DataFrame(columns=PROBLEM_COLUMNS)
    if load_error is not None:
        problem = pd.DataFrame(
            [{"problem": "load_error", "split": "", "item": dataset, "detail": str(load_error)}]
        )
        problems = pd.concat([problem, problems], ignore_index=True)

    if splits is not None:
        labels = {
            name: [class_names[i] for i in part.labels.tolist()]
            for name, part in datamodule.test_sets.items()
        }
        labels = {
            "train": [class_names[i] for i in splits.train.labels.tolist()],
            "val": [class_names[i] for i in splits.val.labels.tolist()],
            **labels,
        }
    elif catalog is not None:
        labels = {split: list(group["label"]) for split, group in catalog.groupby("split", sort=False)}
    else:
        labels = {}
    counts = class_counts(labels, class_names) if labels else None
    ratio = imbalance_ratio(counts["train"]) if counts is not None and "train" in counts else None

    writer = _tensorboard(run_dir)
    figures = {}
    if counts is not None:
        counts.to_csv(run_dir / "class_counts.csv")
        figures["class_counts"] = class_count_chart(counts)
    if catalog is not None:
        catalog.to_csv(run_dir / "catalog.csv", index=False)
        size_summary(catalog).to_csv(run_dir / "image_sizes.csv")
        mode_counts(catalog).to_csv(run_dir / "image_modes.csv")
        figures["image_sizes"] = size_histograms(catalog, bins=options.histogram_bins)
    if splits is not None:
        figures["samples"] = sample_grid(
            _samples_per_class(splits, options.samples_per_class, options.grid_classes, seed=cfg.seed)
        )
    problems.to_csv(run_dir / "problems.csv", index=False)

    summary = {
        "dataset": dataset,
        "described_from": source,
        "num_classes": len(class_names),
        "class_names": class_names,
        "split_sizes": {split: len(values) for split, values in labels.items()},
        "imbalance_ratio": ratio,
        "problems": problems["problem"].value_counts().to_dict(),
        "load_error": None if load_error is None else f"{type(load_error).__name__}: {load_error}",
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    markdown = _markdown(summary, counts, catalog, problems, list(figures))
    (run_dir / "report.md").write_text(markdown, encoding="utf-8")

    writer.add_text("inspection/report", markdown)
    if ratio is not None and math.isfinite(ratio):
        writer.add_scalar("inspection/imbalance_ratio", ratio)
    for name, fig in figures.items():
        fig.savefig(run_dir / f"{name}.png", dpi=100)
        writer.add_figure(f"inspection/{name}", fig)  # closes the figure
    writer.close()

    print(f"Dataset report: {run_dir / 'report.md'}")
    if load_error is not None:
        raise DatasetLoadError(
            f"{dataset} could not be loaded ({type(load_error).__name__}: {load_error}); "
            f"what could be inspected is in {run_dir}"
        ) from load_error
    return run_dir


def _samples_per_class(splits, per_class: int, max_classes: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``per_class`` random training images of each of the first ``max_classes`` classes."""
    rng = np.random.default_rng(seed)
    labels = splits.train.labels.numpy()
    samples = {}
    for index, name in enumerate(splits.class_names[:max_classes]):
        members = np.flatnonzero(labels == index)
        pick = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        samples[name] = splits.train.images[pick].numpy()
    return samples


def _markdown(summary: dict, counts, catalog, problems: pd.DataFrame, figures: list[str]) -> str:
    lines = [f"# Dataset inspection: `{summary['dataset']}`", ""]
    if summary["load_error"]:
        lines += [f"**The dataset could not be loaded:** {summary['load_error']}", ""]
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
        lines.append(problems.head(_LISTED_PROBLEMS).to_markdown(index=False))
    lines += [""] + [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def _tensorboard(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
