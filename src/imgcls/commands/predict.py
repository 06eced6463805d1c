"""``imgcls-predict`` / ``python predict.py``: see conf/predict.yaml."""

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.config import check_required
    from imgcls.inference.predict import run_predict

    check_required(cfg)
    run_predict(cfg)
