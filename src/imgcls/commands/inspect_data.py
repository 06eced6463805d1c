"""``imgcls-inspect`` / ``python inspect_data.py``: see conf/inspect.yaml."""

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.config import register_resolvers
from imgcls.errors import exit_on_user_error

register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="inspect")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.inspection.report import inspect_dataset

    inspect_dataset(cfg)
