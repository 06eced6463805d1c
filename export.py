"""Export a checkpoint to ONNX: ``python export.py ckpt_path=... [output=model.onnx]``.

The exported model is run with onnxruntime and its outputs compared with PyTorch's.
See conf/export.yaml for the options.
"""

import hydra
from omegaconf import DictConfig

from imgcls.errors import exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.config import check_required
    from imgcls.inference.onnx_export import export_checkpoint

    check_required(cfg)
    export_checkpoint(cfg)


if __name__ == "__main__":
    main()
