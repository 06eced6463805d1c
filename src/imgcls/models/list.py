"""List torchvision's (or timm's) classification models and their weights, from their metadata.

    python -m imgcls.models.list                 # every torchvision model and weight
    python -m imgcls.models.list resnet          # names containing "resnet"
    python -m imgcls.models.list --timm convnext # timm's pretrained weights whose name contains "convnext"
    python -m imgcls.models.list --format csv    # table | markdown | csv

torchvision columns: ImageNet-1K Acc@1/Acc@5, parameters (millions), GMACs (billions of
multiply-adds per image: torchvision's ``_ops``, which its docs call GFLOPS; the model
comparison counts the same unit), the input (crop) size, the file torchvision caches
(``$TORCH_HOME/hub/checkpoints/<file>``) and whether it is already there (``cached``). timm
columns: the name to pass as ``model.name``, its Hugging Face repository, input size and
whether the weights are in the hub cache (``cached``).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd


def weights_table(pattern: str = "") -> pd.DataFrame:
    """One row per (model, weights) whose model name contains ``pattern``."""
    from imgcls.models.weights import available_models, weights_choices, weights_file

    rows = []
    for name in available_models():
        if pattern.lower() not in name.lower():
            continue
        choices = weights_choices(name)
        for weights in choices:
            meta = weights.meta
            metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
            rows.append(
                {
                    "model": name,
                    "weights": f"{type(weights).__name__}.{weights.name}",
                    "default": weights is choices.DEFAULT,
                    "acc@1": metrics.get("acc@1"),
                    "acc@5": metrics.get("acc@5"),
                    "params_M": round(meta["num_params"] / 1e6, 1),
                    "gmacs": meta.get("_ops"),
                    "input_size": weights.transforms().crop_size[0],
                    "file": weights_file(weights).name,
                    "cached": weights_file(weights).is_file(),
                }
            )
    return pd.DataFrame(rows)


def timm_table(pattern: str = "") -> pd.DataFrame:
    """One row per timm pretrained weights (``name.tag``) whose name contains ``pattern``."""
    import timm

    from imgcls.models.timm_weights import cached_weights_file

    rows = []
    for name in timm.list_models(f"*{pattern}*" if pattern else "", pretrained=True):
        config = timm.models.get_pretrained_cfg(name)
        rows.append(
            {
                "model": name,
                "hub": config.hf_hub_id,
                "input_size": config.input_size[-1],
                "num_classes": config.num_classes,
                "cached": cached_weights_file(name) is not None,
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("filter", nargs="?", default="", help="only models whose name contains this")
    parser.add_argument(
        "--timm", action="store_true", help="timm's pretrained models instead of torchvision's"
    )
    parser.add_argument("--format", choices=("table", "markdown", "csv"), default="table")
    args = parser.parse_args(argv)
    table = timm_table(args.filter) if args.timm else weights_table(args.filter)
    if table.empty:
        library = "timm" if args.timm else "torchvision"
        print(f"no {library} classification model matches {args.filter!r}", file=sys.stderr)
        return 1
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "markdown":
        print(to_markdown(table))
    else:
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
