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


# Lightning's messages that say nothing about the run: advertising for its cloud services, and
# the notice that the model's own callbacks (parameter counts, unfreezing) are attached again
# for the test pass, as they are every time.
LIGHTNING_NOISE = ("💡 Tip:", "The following callbacks returned in `LightningModule.configure_callbacks`")


class _DropMessages(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def silence_library_noise() -> None:
    """Warnings and messages of the libraries' own internals that nothing a user does can change."""
    # Lightning's use of a torch API deprecated under it.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessages) for f in lightning_info.filters):
        lightning_info.addFilter(_DropMessages(LIGHTNING_NOISE))
