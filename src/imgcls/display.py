"""How names from the file system (class folders, file paths) are shown to the user.

A name that is not valid UTF-8 (common in unzipped CASIA archives: GBK bytes) reaches
Python as lone surrogates (``os.fsdecode``), which UTF-8 files, fonts and TensorBoard
refuse. Every table, figure, report and message shows such a name through
:func:`display_name`, with its odd bytes as ``\\xb0`` escapes; the name itself (what the
files and checkpoints hold) is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable


def display_name(name: object) -> str:
    """``name`` with bytes that are not UTF-8 shown as ``\\xNN`` (valid names unchanged)."""
    text = str(name)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def display_names(names: Iterable[object]) -> list[str]:
    return [display_name(name) for name in names]
