"""Top-k predictions for image files, one CSV row per file; a bad file gets an error, not a crash."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imgcls.data.image_io import IMAGE_SUFFIXES, ImageDecodeError, is_image_file
from imgcls.display import display_name
from imgcls.errors import MissingFileError
from imgcls.inference.loading import InferenceModel
from imgcls.metrics import Predictions, split_metrics
from imgcls.reports.tables import to_markdown
from imgcls.temp_files import temporary_path

ERROR_COLUMN = "error"
CAM_COLUMN = "cam"


def list_inputs(source: str | Path, path_column: str = "path") -> list[Path]:
    """The files to predict: one file, every non-hidden file under a folder (sorted), or the
    ``path_column`` of a CSV (relative paths are taken from the CSV's folder)."""
    source = Path(source)
    if source.is_dir():
        files = (p for p in source.rglob("*") if p.is_file())
        return sorted(
            p for p in files if not any(part.startswith(".") for part in p.relative_to(source).parts)
        )
    if not source.is_file():
        raise MissingFileError(f"input not found: {source}")
    if source.suffix.lower() != ".csv":
        return [source]
    table = pd.read_csv(source)
    if path_column not in table:
        raise ValueError(
            f"{source}: no column {path_column!r} (columns: {', '.join(map(str, table.columns))})"
        )
    return [p if p.is_absolute() else source.parent / p for p in map(Path, table[path_column].astype(str))]


def input_labels(source: str | Path, files: list[Path], class_names: list[str], label_column: str | None):
    """Each file's true class, where the input tells it: the CSV's ``label_column`` (class
    names), or a folder whose files all lie in sub-folders named after the model's classes.
    None for unlabelled input; a label that is not a class is an error naming its row."""
    source, index = Path(source), {name: i for i, name in enumerate(class_names)}
    if source.is_file() and source.suffix.lower() == ".csv":
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
        if not label_column or label_column not in table:
            return None
        unknown = [(row, name) for row, name in enumerate(table[label_column], start=2) if name not in index]
        if unknown:
            row, name = unknown[0]
            raise ValueError(
                f"{source}, row {row}: {label_column}={name!r} is not one of the model's classes "
                f"({', '.join(class_names[:10])}{', ...' if len(class_names) > 10 else ''}); "
                f"{len(unknown)} such rows"
            )
        return [index[name] for name in table[label_column]]
    if source.is_dir() and files:
        folders = [p.relative_to(source).parts[0] if len(p.relative_to(source).parts) > 1 else None for p in files]
        if all(folder in index for folder in folders):
            return [index[folder] for folder in folders]
    return None


def score_predictions(probabilities: dict[int, np.ndarray], labels: list[int], class_names: list[str]):
    """The metrics evaluate.py reports (imgcls.metrics.split_metrics) and the per-class table,
    over the files that could be predicted."""
    from imgcls.reports.classification_report import per_class_table

    predicted = sorted(probabilities)
    predictions = Predictions(
        split="input",
        probabilities=np.stack([probabilities[i] for i in predicted]).astype(np.float64),
        labels=np.array([labels[i] for i in predicted]),
        class_names=list(class_names),
    )
    return split_metrics(predictions), per_class_table(predictions)


def predict_files(
    model: InferenceModel,
    files: list[Path],
    topk: int = 5,
    batch_size: int = 32,
    probabilities: dict[int, np.ndarray] | None = None,
    tta: str = "none",
) -> pd.DataFrame:
    """One row per file in order: ``path``, ``label_i``/``prob_i`` for i = 1..k, and ``error``.
    ``probabilities``, when given, receives each predicted file's class probabilities by index;
    ``tta``: the probabilities averaged over test-time views (inference/tta.py)."""
    topk = min(topk, len(model.class_names))
    rows: list[dict] = [{"path": display_name(path)} for path in files]
    pending: list[tuple[int, torch.Tensor]] = []
    for index, path in enumerate(files):
        try:
            pending.append((index, _decode(model, path)))
        except (ImageDecodeError, ValueError, OSError, RuntimeError) as error:
            rows[index][ERROR_COLUMN] = display_name(
                getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
            )
        if len(pending) == batch_size or (index == len(files) - 1 and pending):
            _predict_batch(model, pending, rows, topk, probabilities, tta)
            pending = []
    columns = (
        ["path"] + [f"{kind}_{i}" for i in range(1, topk + 1) for kind in ("label", "prob")] + [ERROR_COLUMN]
    )
    return pd.DataFrame(rows).reindex(columns=columns).fillna({ERROR_COLUMN: ""})


def _decode(model: InferenceModel, path: Path) -> torch.Tensor:
    if not is_image_file(path):
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ImageDecodeError(
            path, f"unsupported file type {path.suffix or '(none)'!r}; images are {suffixes}"
        )
    return model.preprocess(path)


def _predict_batch(
    model: InferenceModel, pending, rows: list[dict], topk: int, kept: dict | None, tta: str = "none"
) -> None:
    probabilities = model.probabilities(torch.stack([image for _, image in pending]), tta)
    if kept is not None:
        kept.update({index: row for (index, _), row in zip(pending, probabilities.cpu().numpy(), strict=True)})
    values, classes = probabilities.topk(topk, dim=1)
    for (index, _), top_values, top_classes in zip(pending, values.tolist(), classes.tolist(), strict=True):
        for rank, (value, cls) in enumerate(zip(top_values, top_classes, strict=True), start=1):
            rows[index][f"label_{rank}"] = display_name(model.class_names[cls])
            rows[index][f"prob_{rank}"] = value


def run_predict(cfg) -> Path:
    """``python predict.py``: the configured model on the configured input, written as CSV."""
    from imgcls.config import ConfigError
    from imgcls.inference.loading import load_inference_model
    from imgcls.inference.tta import check_mode

    if bool(cfg.ckpt_path) == bool(cfg.model_name):
        raise ConfigError(
            "set exactly one of ckpt_path=<file.ckpt> or model_name=<torchvision model> [weights=...]"
        )
    tta = check_mode(cfg.get("tta"))
    spec = cfg.ckpt_path or f"{cfg.model_name}:{cfg.weights}"
    model = load_inference_model(
        str(spec), trust_checkpoint=cfg.get("trust_checkpoint", False), calibrated=cfg.get("calibrated", True)
    )
    if cfg.get("cam"):
        from imgcls.models.grad_cam import check_layer_name

        check_layer_name(model.net, cfg.get("cam_layer"), key="cam_layer")
    files = list_inputs(cfg.input, cfg.path_column)
    labels = input_labels(cfg.input, files, model.class_names, cfg.get("label_column"))
    probabilities: dict[int, np.ndarray] = {}
    table = predict_files(model, files, cfg.topk, cfg.batch_size, probabilities, tta)
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if cfg.get("cam"):
        table = write_cam_overlays(model, files, table, cam_dir(output), cfg.get("cam_layer"), cfg.batch_size)
    # Written whole or not at all; names that are not valid UTF-8 are escaped (display_name).
    temporary = temporary_path(output)
    try:
        table.to_csv(temporary, index=False, encoding="utf-8")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    _print_first(table, cfg.input, labels, model.class_names, cfg.get("show", 10))
    failed = int((table[ERROR_COLUMN] != "").sum())
    print(f"{len(table)} files, {failed} with errors -> {output}")
    if labels is not None and probabilities:
        metrics, per_class = score_predictions(probabilities, labels, model.class_names)
        print(f"\nScored against the input's labels ({len(probabilities)} of {len(table)} files):")
        print(to_markdown(pd.DataFrame([{"files": len(probabilities), **metrics}])))
        shown = per_class if len(per_class) <= 20 else per_class.head(10)
        title = "Per class" if len(per_class) <= 20 else f"The 10 worst of {len(per_class)} classes"
        print(f"\n{title}:\n{to_markdown(shown.drop(columns='class_id'))}")
    return output


def _print_first(table: pd.DataFrame, source, labels, class_names, count: int) -> None:
    """The first ``count`` predictions as a table: file, top-1 class and probability, label."""
    if not count:
        return
    first = table.head(count)
    folder = Path(source) if Path(source).is_dir() else None
    names = [str(Path(p).relative_to(folder)) if folder else Path(p).name for p in first["path"]]
    shown = pd.DataFrame({"file": names})
    shown["predicted"], shown["probability"] = first["label_1"].fillna(""), first["prob_1"]
    if labels is not None:
        shown["label"] = [class_names[labels[i]] for i in first.index]
    shown["error"] = first[ERROR_COLUMN]
    more = f" (the first {count} of {len(table)})" if len(table) > count else ""
    print(f"Predictions{more}:\n{to_markdown(shown)}")


def cam_dir(output: Path) -> Path:
    """Where ``cam=true`` puts the overlays: ``<csv stem>_cam/`` beside the CSV."""
    return output.with_name(f"{output.stem}_cam")


def write_cam_overlays(
    model: InferenceModel, files: list[Path], table: pd.DataFrame, out_dir: Path, layer_name=None, batch_size=32
) -> pd.DataFrame:
    """A Grad-CAM overlay PNG of its top-1 class per predicted file, ``<row>_<file stem>.png`` in
    ``out_dir``; ``table`` gains a ``cam`` column with its path ("" for files with an error).
    A model without convolutions writes none and says so."""
    from PIL import Image

    from imgcls.models.grad_cam import class_activation_maps, find_target_layer, overlay

    table = table.assign(**{CAM_COLUMN: ""})
    rows = [i for i in range(len(files)) if table.at[i, ERROR_COLUMN] == ""]
    if not rows:
        return table
    layer = None
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = torch.stack([model.preprocess(files[i]) for i in chunk])
        if layer is None:
            layer = find_target_layer(model.net, batch, layer_name, key="cam_layer")
            if layer is None:
                print(f"cam: {model.name} has no convolutional layer to explain; no overlays written")
                return table
            out_dir.mkdir(parents=True, exist_ok=True)
        classes = model.probabilities(batch).argmax(dim=1)
        heat = class_activation_maps(model.net, layer[1], batch, classes)
        for i, image, cam in zip(chunk, model.pixels(batch).numpy(), heat, strict=True):
            path = out_dir / f"{i:05d}_{files[i].stem}.png"
            temporary = temporary_path(path)
            try:
                Image.fromarray(overlay(image, cam, enlarge=True)).save(temporary, format="PNG")
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
            table.at[i, CAM_COLUMN] = str(path)
    print(f"cam: {len(rows)} Grad-CAM overlays ({layer[0]}) -> {out_dir}")
    return table
