"""Train an image classifier: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for every option; ``python train.py --help`` lists the groups.
"""

import sys

import hydra
from omegaconf import DictConfig

from imgcls.config import register_resolvers
from imgcls.errors import exit_on_user_error
from imgcls.training.resume import resume_arguments

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    from imgcls.training.run import train

    return train(cfg)


if __name__ == "__main__":
    # resume=<run dir> becomes that run's own overrides, directory and last checkpoint.
    sys.argv[1:] = resume_arguments(sys.argv[1:])
    main()
