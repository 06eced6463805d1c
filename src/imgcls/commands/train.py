"""``imgcls-train`` / ``python train.py``: see conf/train.yaml."""

import os
import sys

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from imgcls.config import ConfigError
    from imgcls.training.run import train

    try:
        return train(cfg)
    except ConfigError as error:  # the user's setting: its message, not a traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(f"Config error: {error}")


def run() -> None:
    from imgcls.training.resume import resume_arguments

    # resume=<run dir> becomes that run's own overrides, directory and last checkpoint.
    sys.argv[1:] = resume_arguments(sys.argv[1:])
    main()
