"""The model's layer summary at the start of training, in the console and ``train.log``."""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size

from imgcls import console

# Not shown: the row number, and FLOPs, which Lightning counts only for a model with an
# ``example_input_array`` and prints as 0 for every other one.
_HIDDEN_COLUMNS = (" ", "FLOPs")


class ModelSummaryLog(ModelSummary):
    """Lightning's summary (same layers, ``max_depth``), as plain text through imgcls's
    console; the parameter totals are the ``Parameters:`` line (training/finetuning.py)."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops=0, **summarize_kwargs) -> None:
        columns = [(name, values) for name, values in summary_data if name not in _HIDDEN_COLUMNS]
        widths = [max([len(name), *(len(str(v)) for v in values)]) for name, values in columns]
        rows = [[name for name, _ in columns], *zip(*(values for _, values in columns), strict=True)]
        lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        size = f"Model size: {get_formatted_model_size(model_size)} MB"
        console.info("\n".join(["Model summary:", *("  " + line for line in lines), size]))
