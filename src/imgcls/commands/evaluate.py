"""``imgcls-evaluate`` / ``python evaluate.py``: see conf/evaluate.yaml."""

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.config import register_resolvers
from imgcls.errors import exit_on_user_error

register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.config import check_required
    from imgcls.inference.evaluate import evaluate

    check_required(cfg)
    evaluate(cfg)
