"""Reading a ``root/<class>/<image>`` tree: class names from folder names, images inside.

Hidden entries (``.ipynb_checkpoints``, ``.DS_Store``, macOS ``._x.jpg``) are never classes
or samples. Only the two fixed levels are read (no recursion), so a symlink cycle cannot
make the listing run forever. A class "folder" link that loops or dangles is an error naming
it; an image link that does is a sample, which decoding reports as a bad file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgcls.data.file_datamodule import FileSamples
from imgcls.data.image_io import is_image_file
from imgcls.errors import UserError

# How many ignored entries a warning names before it just counts them.
_NAMED_IN_WARNING = 5


class ImageFolderError(UserError, ValueError):
    """A tree that is not ``root/<class>/<images>``: the message names the folder or entry."""

    kind = "Data error"


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def list_class_folders(root: str | Path) -> dict[str, list[str]]:
    """Class name -> its image files (sorted), classes sorted by name.

    Raises :class:`ImageFolderError` for a missing root, a tree without class folders, an
    empty class folder, or a class-folder link that loops or points nowhere. Non-image files
    and sub-folders inside class folders are skipped with a warning that names them; an image
    name whose link is broken is listed (decoding reports it, as any file it cannot read).
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"image folder {root} does not exist or is not a directory")
    classes: dict[str, list[str]] = {}
    ignored: list[str] = []
    for entry in visible_entries(root):
        if not entry.is_dir():
            ignored.append(entry.path)
            continue
        files = []
        for item in visible_entries(Path(entry.path), check_links=False):
            if is_image_file(item.name) and (_is_broken_link(item) or item.is_file()):
                files.append(item.path)
            else:
                ignored.append(item.path)
        if not files:
            raise ImageFolderError(f"class folder {entry.path} has no image files (suffixes: jpg, png, ...)")
        classes[entry.name] = files
    if not classes:
        raise ImageFolderError(f"{root} has no class folders: expected {root}/<class name>/<images>")
    if ignored:
        named = ", ".join(ignored[:_NAMED_IN_WARNING])
        more = f" and {len(ignored) - _NAMED_IN_WARNING} more" if len(ignored) > _NAMED_IN_WARNING else ""
        warnings.warn(
            f"{root}: skipped {len(ignored)} entries that are not images in class folders: {named}{more}",
            stacklevel=2,
        )
    return classes


def samples_of(folders: dict[str, list[str]], class_names: Sequence[str]) -> FileSamples:
    """The files of a class-folder listing, labelled by position in ``class_names``."""
    index = {name: i for i, name in enumerate(class_names)}
    paths = [path for name in folders for path in folders[name]]
    labels = np.array([index[name] for name in folders for _ in folders[name]], dtype=np.int64)
    return FileSamples(paths, labels)


def check_same_classes(expected: Sequence[str], found: Sequence[str], where: str | Path) -> None:
    """Raise naming the missing and extra classes when ``found`` differs from ``expected``."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise ImageFolderError(
            f"the classes of {where} do not match the training classes: "
            f"missing {missing or 'none'}, extra {extra or 'none'}"
        )


def visible_entries(directory: Path, check_links: bool = True) -> list[os.DirEntry]:
    """Visible entries sorted by name; with ``check_links``, a looping or dangling link
    raises, naming it."""
    with os.scandir(directory) as scan:
        entries = sorted((entry for entry in scan if not is_hidden(entry.name)), key=lambda e: e.name)
    for entry in entries if check_links else ():
        if (problem := _link_problem(entry)) is not None:
            raise ImageFolderError(f"{entry.path}: broken link or symlink loop ({problem})")
    return entries


def _is_broken_link(entry: os.DirEntry) -> bool:
    return _link_problem(entry) is not None


def _link_problem(entry: os.DirEntry) -> str | None:
    """Why ``entry``, a link, leads nowhere (its target is missing, or it loops); else None."""
    if not entry.is_symlink():
        return None
    try:
        os.stat(entry.path)
    except OSError as error:
        return error.strerror or str(error)
    return None
