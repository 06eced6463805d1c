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
    available = _installed(CJK_FONTS)
    if not available:
        # matplotlib caches its font list on first use, so fonts installed later are
        # unknown to it: register the system's fonts that the cache lacks, then look again.
        known = {font.fname for font in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # an unreadable font file is not worth failing a plot for
        available = _installed(CJK_FONTS)
    if available:
        plt.rcParams["font.sans-serif"] = available[:1] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False


def _installed(names: list[str]) -> list[str]:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in names if name in installed]


_use_cjk_font()
