"""Predict image files: ``python predict.py ckpt_path=... input=<file|folder|csv> [topk=5] [output=preds.csv]``.

With ``model_name=mobilenet_v2 weights=IMAGENET1K_V1`` instead of a checkpoint it predicts
ImageNet classes. See conf/predict.yaml for the options.
"""

import hydra
from omegaconf import DictConfig

from imgcls.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.config import check_required
    from imgcls.inference.predict import run_predict

    check_required(cfg)
    run_predict(cfg)


if __name__ == "__main__":
    main()
