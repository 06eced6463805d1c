"""Train an image classifier: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for every option; ``python train.py --help`` lists the groups.
"""

import hydra
from omegaconf import DictConfig

from imgcls.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from imgcls.training.run import train

    return train(cfg)


if __name__ == "__main__":
    main()
