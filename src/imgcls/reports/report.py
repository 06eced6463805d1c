"""The evaluation report: every table and figure of every test set, linked from one report.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import confusion_matrix

from imgcls.display import display_names
from imgcls.metrics import Predictions, split_metrics
from imgcls.reports.calibration import (
    SplitCalibration,
    plot_confidence_histogram,
    plot_reliability_diagram,
    split_calibration,
)
from imgcls.reports.classification_report import averages_table, per_class_table
from imgcls.reports.confusion_matrix import (
    MAX_ANNOTATED_CLASSES,
    confused_pair_indices,
    confused_pairs,
    plot_confused_pair_examples,
    plot_confusion_matrix,
)
from imgcls.reports.curves import CSV_METRICS, epoch_metrics, plot_training_curves
from imgcls.reports.error_gallery import plot_error_gallery
from imgcls.reports.figures import plt
from imgcls.reports.predictions_table import PREDICTIONS_FILE, write_predictions
from imgcls.reports.suspect_labels import SUSPECT_LABELS_FILE, plot_suspect_gallery, suspect_table, suspects
from imgcls.reports.tables import to_markdown

REPORT_FILE = "report.md"
# The report's figures as numbers; not the run's metrics.json, which training writes.
EVALUATION_FILE = "evaluation.json"


class ReportWriter:
    """Saves figures as PNGs under the report folder and, given a SummaryWriter, to TensorBoard."""

    def __init__(self, out_dir: Path, tensorboard=None, global_step: int = 0):
        self.out_dir, self.tensorboard, self.global_step = out_dir, tensorboard, global_step

    def figure(self, figure, relative_path: str) -> str:
        path = self.out_dir / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        if self.tensorboard is not None:
            # The saved PNG, not add_figure: drawing a large figure twice costs seconds.
            image = np.asarray(Image.open(path).convert("RGB"))
            tag = "report/" + relative_path.removesuffix(".png")
            self.tensorboard.add_image(tag, image, global_step=self.global_step, dataformats="HWC")
        return relative_path

    def table(self, table, relative_path: str) -> str:
        path = self.out_dir / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
        path.with_suffix(".md").write_text(to_markdown(table) + "\n")
        return relative_path


def write_report(
    predictions: Sequence[Predictions],
    out_dir: str | Path,
    *,
    metrics: dict[str, dict[str, float]] | None = None,
    ordinal: bool = False,
    run_dir: str | Path | None = None,
    tensorboard=None,
    global_step: int = 0,
    gallery_size: int = 16,
    confused_pairs_top: int = 20,
    confusion_classes: int = MAX_ANNOTATED_CLASSES,
    confused_pair_examples: int = 8,
    title: str = "Evaluation report",
    notes: Sequence[str] = (),
    labelled_splits: Sequence[Predictions] = (),
    suspect_min_confidence: float = 0.5,
    split_sections: Sequence[Callable[[Predictions, ReportWriter], list[str]]] = (),
    best: Mapping | None = None,
    calibration: Mapping[str, SplitCalibration] | None = None,
) -> Path:
    """Write tables, figures, ``evaluation.json`` and ``report.md`` into ``out_dir``; return report.md.

    ``metrics`` are each split's headline numbers as the test pass computed them (what
    ``metrics.json`` records); without them they are computed from ``predictions`` the same
    way (:func:`imgcls.metrics.split_metrics`).

    Above ``confusion_classes`` classes the confusion-matrix figures show the most confused
    classes only (the CSV has all); ``confused_pair_examples`` pairs are shown with images.

    ``run_dir`` (a training run's directory) adds its training curves; ``tensorboard`` (a
    ``SummaryWriter``) receives every figure under ``report/...`` too. ``labelled_splits``
    (predictions of the training and validation sets) add the suspect labels. ``split_sections``
    add parts to each test set's section: each gets its predictions and the writer, returns
    markdown lines. ``best`` (``epoch``, ``epochs``, ``monitor``, ``value``, ``checkpoint``)
    names the training run's best epoch, the one whose checkpoint was tested. ``calibration``
    (by split: :func:`~imgcls.reports.calibration.split_calibration`, what metrics.json records)
    is used as given; a split without one gets it computed here.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ReportWriter(out_dir, tensorboard, global_step)
    lines = [f"# {title}", "", *(f"> **Note:** {note}" for note in notes), *([""] if notes else [])]
    curves = run_dir and Path(run_dir) / CSV_METRICS
    if curves and curves.exists():
        epochs = epoch_metrics(curves)
        epochs.reset_index().to_csv(out_dir / "training_curves.csv", index=False)
        lines += [
            "## Training curves",
            "",
            f"![training curves]({writer.figure(plot_training_curves(epochs), 'training_curves.png')})",
            "",
        ]
    if best:
        checkpoint = f" (`{Path(best['checkpoint']).name}`, tested below)" if best.get("checkpoint") else ""
        lines += [
            f"Best epoch: {best['epoch']} of {best['epochs']}, {best['monitor']} {best['value']:.4f}{checkpoint}.",
            "",
        ]
    all_metrics = {}
    for split in predictions:
        headline = (metrics or {}).get(split.split) or split_metrics(split, ordinal)
        split_numbers, section = _split_section(
            split,
            headline,
            writer,
            gallery_size,
            confused_pairs_top,
            shown_classes=confusion_classes,
            pair_examples=confused_pair_examples,
            calibration=(calibration or {}).get(split.split) or split_calibration(split),
        )
        all_metrics[split.split] = split_numbers
        lines += section
        if len(split.labels):
            for extra in split_sections:
                lines += extra(split, writer)
    if labelled_splits:
        lines += _suspects_section(labelled_splits, writer, gallery_size, suspect_min_confidence)
    (out_dir / EVALUATION_FILE).write_text(json.dumps(all_metrics, indent=2))
    report = out_dir / REPORT_FILE
    report.write_text("\n".join(lines))
    if tensorboard is not None:
        tensorboard.add_text("report/summary", "\n".join(lines[:40]), global_step=global_step)
        tensorboard.flush()
    return report


def _split_section(
    predictions: Predictions,
    headline: dict,
    writer: ReportWriter,
    gallery_size: int,
    top_pairs: int,
    *,
    shown_classes: int,
    pair_examples: int,
    calibration: SplitCalibration,
) -> tuple[dict, list[str]]:
    name, names = predictions.split, predictions.class_names
    samples = len(predictions.labels)
    metrics = {"samples": samples, **headline}
    lines = [f"## Test set `{name}` ({samples} images)", ""]
    if predictions.limited:
        metrics["evaluated_of"] = predictions.evaluated_of
        lines += [
            f"**Evaluated on {samples} of its {predictions.evaluated_of} images** "
            "(trainer.limit_test_batches), a shuffled sample: every number below is of those.",
            "",
        ]
    if not samples:
        return metrics, [*lines, "No images.", ""]
    # Calibrated by temperature scaling: the ECE of the raw softmax too, to show what it did.
    bins, raw_bins = calibration.bins, calibration.uncalibrated
    metrics["ece"] = bins.ece
    if raw_bins is not None:
        metrics.update(ece_uncalibrated=raw_bins.ece, temperature=predictions.temperature)
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4f} |" for key, value in metrics.items() if key not in ("samples", "evaluated_of")]

    per_image = f"{name}/{PREDICTIONS_FILE}"
    (writer.out_dir / name).mkdir(parents=True, exist_ok=True)
    write_predictions(predictions, writer.out_dir / per_image)
    per_class = writer.table(per_class_table(predictions), f"{name}/per_class.csv")
    averages = writer.table(averages_table(predictions), f"{name}/averages.csv")
    lines += ["", "### Per class, worst first", "", _read_md(writer, per_class), ""]
    lines += ["### Averages", "", _read_md(writer, averages), ""]
    lines += [
        f"Tables as CSV: [per class]({per_class}), [averages]({averages}), "
        f"[every image's prediction]({per_image})",
        "",
    ]

    matrix = confusion_matrix(predictions.labels, predictions.predicted, labels=range(len(names)))
    _write_matrix_csv(matrix, names, writer.out_dir / f"{name}/confusion_matrix.csv")
    raw = writer.figure(
        plot_confusion_matrix(matrix, names, title=f"Confusion matrix: {name}", max_classes=shown_classes),
        f"{name}/confusion_matrix.png",
    )
    normalized = writer.figure(
        plot_confusion_matrix(
            matrix,
            names,
            normalize=True,
            title=f"Confusion matrix (row-normalized): {name}",
            max_classes=shown_classes,
        ),
        f"{name}/confusion_matrix_normalized.png",
    )
    pairs = writer.table(confused_pairs(matrix, names, top_pairs), f"{name}/confused_pairs.csv")
    lines += [
        "### Confusion matrix",
        "",
        f"![confusion matrix]({raw})",
        f"![row-normalized]({normalized})",
        "",
    ]
    lines += [f"### Most confused pairs (top {top_pairs})", "", _read_md(writer, pairs), ""]
    if pair_examples:
        examples = writer.figure(
            plot_confused_pair_examples(
                predictions, confused_pair_indices(matrix, pair_examples), title=f"Most confused pairs: {name}"
            ),
            f"{name}/confused_pairs.png",
        )
        lines += [f"![confused pairs: true class, misread image, class read as]({examples})", ""]

    reliability = writer.figure(
        plot_reliability_diagram(bins, title=f"Reliability: {name}"), f"{name}/reliability_diagram.png"
    )
    histogram = writer.figure(
        plot_confidence_histogram(predictions, title=f"Confidence, correct vs wrong: {name}"),
        f"{name}/confidence_histogram.png",
    )
    if raw_bins is None:
        lines += [f"### Calibration (ECE = {bins.ece:.4f})", "", f"![reliability]({reliability})"]
    else:
        before = writer.figure(
            plot_reliability_diagram(raw_bins, title=f"Reliability before temperature scaling: {name}"),
            f"{name}/reliability_diagram_uncalibrated.png",
        )
        lines += [
            f"### Calibration: temperature scaling (T = {predictions.temperature:.3f}, fitted on the "
            f"validation set) took the ECE from {raw_bins.ece:.4f} to {bins.ece:.4f}",
            "",
            f"![reliability before temperature scaling]({before})",
            f"![reliability after temperature scaling]({reliability})",
        ]
    lines += [f"![confidence]({histogram})", ""]
    gallery = writer.figure(
        plot_error_gallery(predictions, gallery_size, title=f"Most confident mistakes: {name}"),
        f"{name}/error_gallery.png",
    )
    lines += ["### Most confident mistakes (true → predicted (p))", "", f"![error gallery]({gallery})", ""]
    return metrics, lines


def _suspects_section(splits, writer: ReportWriter, gallery_size: int, min_confidence: float) -> list[str]:
    found = suspects(splits, min_confidence)
    suspect_table(found).to_csv(writer.out_dir / SUSPECT_LABELS_FILE, index=False, encoding="utf-8",
                                errors="backslashreplace")
    gallery = writer.figure(plot_suspect_gallery(found, gallery_size), "suspect_labels.png")
    names = " and ".join(f"`{split.split}`" for split in splits)
    return [
        f"## Suspect labels ({len(found)} images of {names})",
        "",
        f"Images whose given label the model contradicts with p ≥ {min_confidence:g}, the highest "
        f"loss first: [{SUSPECT_LABELS_FILE}]({SUSPECT_LABELS_FILE}) (split, file or index, given and "
        "predicted label, probability, loss), to check and relabel from.",
        "",
        f"![suspect labels]({gallery})",
        "",
    ]


def _read_md(writer: ReportWriter, relative_csv: str) -> str:
    return (writer.out_dir / relative_csv).with_suffix(".md").read_text().rstrip()


def _write_matrix_csv(matrix, class_names: list[str], path: Path) -> None:
    import pandas as pd

    names = display_names(class_names)
    pd.DataFrame(matrix, index=names, columns=names).rename_axis("true \\ predicted").to_csv(path)


def with_images(predictions: Predictions, datamodule) -> Predictions:
    """``predictions`` of one of ``datamodule``'s test sets, able to show its images."""
    data = datamodule.test_sets[predictions.split]
    predictions.image_source, predictions.evaluated_of = data.images, len(data)
    predictions.sample_paths = datamodule.sample_paths(predictions.split)
    return predictions


def write_evaluation_report(
    model,
    datamodule,
    out_dir: str | Path,
    warnings: Sequence[str] = (),
    cam: Mapping | None = None,
    projector: Mapping | None = None,
    **kwargs,
) -> Path:
    """The report of ``model``'s last test pass (``trainer.test``) over ``datamodule``'s test
    sets: the same predictions and metrics the test pass logged; ``warnings`` (the run's data
    warnings) are shown at its top. ``cam`` (the ``cam`` config: ``mistakes``, ``correct``,
    ``target_layer``) adds Grad-CAM overlays; ``projector`` (``enabled``, ``max_images``,
    ``thumbnail_size``) TensorBoard's embedding projector."""
    predictions = [with_images(p, datamodule) for p in model.test_predictions.values()]
    if cam and (cam.get("mistakes") or cam.get("correct")):
        from functools import partial

        from imgcls.reports.cam_gallery import cam_section

        explain = partial(
            cam_section,
            model,
            mistakes=int(cam.get("mistakes") or 0),
            correct=int(cam.get("correct") or 0),
            target_layer=cam.get("target_layer"),
        )
        kwargs["split_sections"] = [*kwargs.get("split_sections", ()), explain]
    if projector and projector.get("enabled", False):
        from functools import partial

        from imgcls.reports.projector import projector_section

        project = partial(
            projector_section,
            model,
            max_images=int(projector.get("max_images")),
            thumbnail_size=int(projector.get("thumbnail_size")),
        )
        kwargs["split_sections"] = [*kwargs.get("split_sections", ()), project]
    kwargs.setdefault("ordinal", bool(getattr(datamodule, "ordinal", False)))
    notes = list(kwargs.pop("notes", ()))  # the caller's (e.g. evaluate's TTA figures) after this one
    if datamodule.overlaps:  # accepted with data.allow_overlap=true
        shown = "; ".join(datamodule.overlaps[:5]) + (" ..." if len(datamodule.overlaps) > 5 else "")
        notes.insert(
            0,
            f"{len(datamodule.overlaps)} samples are in two splits (data.allow_overlap=true), so "
            f"these numbers include images the model trained on: {shown}",
        )
    notes += [f"Data warning: {message}" for message in warnings]
    return write_report(predictions, out_dir, metrics=model.test_results, notes=notes, **kwargs)


def write_run_report(
    model,
    datamodule,
    run_dir: Path,
    loggers=(),
    global_step: int = 0,
    cam: Mapping | None = None,
    projector: Mapping | None = None,
    **options,
) -> str | None:
    """The report a training run writes at its end, into ``<run_dir>/report``, figures to TensorBoard too.

    A failing report warns instead of raising: the run's training and checkpoints are
    already done and must not be recorded as failed for it.
    """
    import logging
    import traceback

    from lightning.pytorch.loggers import TensorBoardLogger

    tensorboard = next((lg.experiment for lg in loggers if isinstance(lg, TensorBoardLogger)), None)
    try:
        report = write_evaluation_report(
            model,
            datamodule,
            run_dir / "report",
            run_dir=run_dir,
            tensorboard=tensorboard,
            global_step=global_step,
            cam=cam,
            projector=projector,
            **options,
        )
    except Exception:  # noqa: BLE001 - reported, and the run's results stay valid
        logging.getLogger(__name__).warning("the evaluation report failed:\n%s", traceback.format_exc())
        return None
    return str(report)
