"""Compare models and weights on one labelled image folder: accuracy, size, multiply-adds and speed.

``python -m imgcls.reports.model_comparison --images photos/ mobilenet_v2:IMAGENET1K_V1 resnet18:DEFAULT run/checkpoints/best.ckpt``

The folder holds one sub-folder per class, named exactly as the model names the class:
ImageNet weights use their ``meta["categories"]`` names (``photos/Egyptian cat/*.jpg``,
``photos/espresso/*.jpg``: zero-shot), a checkpoint its own class names. A model is scored on
the images of the folders that name one of its classes; the others are counted as
``skipped``, so one folder can hold classes for several models.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from imgcls.data.image_io import is_image_file
from imgcls.inference.loading import InferenceModel, load_inference_model
from imgcls.inference.predict import ERROR_COLUMN, predict_files
from imgcls.reports.figures import plt
from imgcls.reports.tables import to_markdown

TOP_K = 5
BAR_METRICS = {
    "acc1": "Acc@1",
    "acc5": "Acc@5",
    "params_m": "Parameters (M)",
    "gmacs": "GMACs per image (multiply-adds)",
    "latency_ms": "Latency, batch 1 (ms)",
    "throughput_ips": "Throughput (images/s)",
    "file_mb": "File size (MB)",
}


def labelled_images(root: str | Path) -> dict[str, list[Path]]:
    """Class folder name -> its image files (searched recursively, sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    folders = {
        folder.name: sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }
    if not any(folders.values()):
        raise ValueError(f"{root}: no images in class sub-folders (expected {root}/<class name>/<image>)")
    return folders


def score(model: InferenceModel, folders: dict[str, list[Path]], batch_size: int = 32) -> dict:
    """Top-1/top-5 accuracy on the folders named after the model's classes."""
    known = set(model.class_names)
    files = [(path, name) for name, paths in folders.items() if name in known for path in paths]
    skipped = sum(len(paths) for name, paths in folders.items() if name not in known)
    if not files:
        raise ValueError(f"no folder is named after one of its classes (folders: {', '.join(folders)})")
    table = predict_files(model, [path for path, _ in files], topk=TOP_K, batch_size=batch_size)
    truth = pd.Series([name for _, name in files])
    readable = table[ERROR_COLUMN] == ""
    labels = table[[c for c in table.columns if c.startswith("label_")]]
    hit1 = labels["label_1"] == truth
    hit5 = labels.eq(truth, axis=0).any(axis=1)
    return {
        "acc1": float(hit1[readable].mean()),
        "acc5": float(hit5[readable].mean()),
        "images": int(readable.sum()),
        "unreadable": int((~readable).sum()),
        "skipped": skipped,
    }


def count_macs(net: torch.nn.Module, input_shape) -> int:
    """Multiply-adds of one forward pass on one image: PyTorch's FLOP counter, which counts a
    multiply-add as 2 FLOPs, halved. The unit of torchvision's ``meta["_ops"]``, so this
    column and ``python -m imgcls.models.list``'s ``gmacs`` agree."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops()) // 2


def measure_speed(
    net: torch.nn.Module, input_shape, batch_size: int = 32, warmup: int = 3, repeats: int = 10
):
    """Median latency of one image (ms) and median throughput at ``batch_size`` (images/s),
    after warm-up runs, on this machine's default device and threads."""

    single, batch = torch.rand(1, *input_shape), torch.rand(batch_size, *input_shape)

    def median_seconds(images: torch.Tensor) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(images)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    with torch.inference_mode():
        # Both shapes warm (at least once) before either is timed: a cold first batched pass
        # (allocations, kernel choice) would read slower per image than batch 1.
        for _ in range(max(1, warmup)):
            net(single)
            net(batch)
        latency, batched = median_seconds(single), median_seconds(batch)
    return latency * 1e3, batch_size / batched


def compare_models(
    specs: list[str],
    image_root: str | Path,
    batch_size: int = 32,
    warmup: int = 3,
    repeats: int = 10,
    speed_batch_size: int | None = None,
) -> pd.DataFrame:
    """One row per model spec; a model that fails to load or score gets its error, not a crash.

    Throughput is timed at ``speed_batch_size`` images per batch (default ``batch_size``).
    """
    folders = labelled_images(image_root)
    rows = []
    for spec in specs:
        row: dict = {"model": spec}
        try:
            model = load_inference_model(spec)
            row["model"] = model.name
            net = model.net.eval()
            row.update(score(model, folders, batch_size))
            row["classes"] = len(model.class_names)
            row["input"] = "x".join(map(str, model.input_shape))
            row["params_m"] = sum(p.numel() for p in net.parameters()) / 1e6
            row["gmacs"] = count_macs(net, model.input_shape) / 1e9
            row["latency_ms"], row["throughput_ips"] = measure_speed(
                net, model.input_shape, speed_batch_size or batch_size, warmup, repeats
            )
            has_file = model.weights_file is not None and model.weights_file.exists()
            row["file_mb"] = model.weights_file.stat().st_size / 1e6 if has_file else float("nan")
        except (ValueError, RuntimeError, OSError, KeyError) as error:
            row[ERROR_COLUMN] = f"{type(error).__name__}: {error}"
        rows.append(row)
    columns = ["model", "acc1", "acc5", "images", "skipped", "unreadable", "classes", "input"]
    columns += ["params_m", "gmacs", "latency_ms", "throughput_ips", "file_mb", ERROR_COLUMN]
    table = pd.DataFrame(rows).reindex(columns=columns).fillna({ERROR_COLUMN: ""})
    for column in ("images", "skipped", "unreadable", "classes"):  # counts stay integers next to failed rows
        table[column] = table[column].astype("Int64")
    table.attrs["speed_batch_size"] = speed_batch_size or batch_size
    return table


def plot_comparison(table: pd.DataFrame):
    """One bar chart per measure, the models side by side."""
    metrics = [m for m in BAR_METRICS if table[m].notna().any()]
    columns = 4
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    names = [Path(m).name if m.endswith(".ckpt") else m for m in table["model"]]  # not the whole path
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ax.axis("on")
        ax.bar(range(len(table)), table[metric].fillna(0), color=plt.cm.tab10.colors[: len(table)])
        ax.set_xticks(range(len(table)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(BAR_METRICS[metric])
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_comparison(table: pd.DataFrame, out_dir: str | Path, image_root: str | Path) -> dict[str, Path]:
    """``comparison.csv``, ``comparison.md`` (the table, the charts, how it was measured) and ``comparison.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / f"comparison.{suffix}"
        for name, suffix in (("csv", "csv"), ("markdown", "md"), ("chart", "png"))
    }
    table.to_csv(paths["csv"], index=False)
    figure = plot_comparison(table)
    figure.savefig(paths["chart"], dpi=110, bbox_inches="tight")
    plt.close(figure)
    paths["markdown"].write_text(
        "\n".join(
            [
                "# Model comparison",
                "",
                f"Images: `{image_root}` (one folder per class, named as the model names it).",
                "",
                to_markdown(table),
                "",
                f"![comparison]({paths['chart'].name})",
                "",
                "Acc@1/Acc@5 over the readable images of the folders named after the model's classes "
                "(`skipped`: images of other folders). GMACs: multiply-adds of one forward pass on one "
                "image (`torch.utils.flop_counter`'s FLOPs / 2, torchvision's unit). Latency: median of batch-1 "
                f"forward passes after warm-up; throughput: batches of {table.attrs.get('speed_batch_size', '?')}, "
                f"median. Measured on this machine with {torch.get_num_threads()} threads.",
                "",
            ]
        )
    )
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", help="model specs: name[:weights], name:state_dict.pth, or a .ckpt"
    )
    parser.add_argument("--images", required=True, type=Path, help="folder with one sub-folder per class")
    parser.add_argument("--out", type=Path, default=Path("comparison"), help="output folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for PyTorch (default: its own choice)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        # On a shared machine fewer threads than cores give steadier timings (../BENCHMARKING.md).
        torch.set_num_threads(args.threads)
    table = compare_models(args.models, args.images, args.batch_size, args.warmup, args.repeats)
    paths = write_comparison(table, args.out, args.images)
    print(to_markdown(table))
    print(f"\nReport: {paths['markdown']}")


if __name__ == "__main__":
    main()
