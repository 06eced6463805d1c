"""The command-line programs, each a Hydra main function: the installed commands
(``imgcls-train``, ``imgcls-evaluate``, ... in pyproject.toml's [project.scripts]) and the thin
root scripts (``python train.py``) call the same ones. Each lives in a module named after its
program, which Hydra takes as the job's name (``train.log``)."""

from __future__ import annotations

from pathlib import Path

# The config tree, at the root of the checkout (an editable install's too), absolute so that
# it resolves wherever the command is started from.
CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")
