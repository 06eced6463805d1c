"""``imgcls-export`` / ``python export.py``: see conf/export.yaml."""

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.config import check_required
    from imgcls.inference.onnx_export import export_checkpoint

    check_required(cfg)
    export_checkpoint(cfg)
