"""Messages for the user: printed on the console and written to the run's ``train.log``
(conf/hydra/default.yaml routes the ``imgcls`` logger to both), once per run, not once per
DDP process."""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("imgcls")


@rank_zero_only
def info(message: str) -> None:
    log.info(message)


@rank_zero_only
def warn(message: str) -> None:
    log.warning(message)


def silence_library_noise() -> None:
    """Warnings of the libraries' own internals that nothing a user does can change."""
    # Lightning's use of a torch API deprecated under it.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
