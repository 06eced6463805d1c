"""Train an image classifier: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for every option; ``python train.py --help`` lists the groups.
"""

import os
import sys

import hydra
from omegaconf import DictConfig

from imgcls.config import ConfigError, register_resolvers
from imgcls.training.resume import resume_arguments

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from imgcls.training.run import train

    try:
        return train(cfg)
    except ConfigError as error:  # the user's setting: its message, not a traceback
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.exit(f"Config error: {error}")


if __name__ == "__main__":
    # resume=<run dir> becomes that run's own overrides, directory and last checkpoint.
    try:
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    except ConfigError as error:  # refused before Hydra writes anything into the run
        sys.exit(f"Config error: {error}")
    main()
