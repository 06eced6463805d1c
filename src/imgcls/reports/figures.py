"""Matplotlib set up for files and TensorBoard: no display, fonts that cover CJK class names."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

# Tried in order; the first installed one that covers CJK is put before the default font,
# so Latin text keeps its look and Chinese class names (CASIA) render instead of boxes.
CJK_FONTS = [
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "AR PL UKai CN",
    "AR PL UMing CN",
    "Source Han Sans SC",
    "SimHei",
    "Microsoft YaHei",
]


def _use_cjk_font() -> None:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    available = [name for name in CJK_FONTS if name in installed]
    if available:
        plt.rcParams["font.sans-serif"] = available[:1] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False


_use_cjk_font()
