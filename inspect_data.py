"""Inspect a dataset: ``python inspect_data.py data=<name> [data.key=value ...]``.

Composes the same conf/ tree as train.py (conf/inspect.yaml); writes the report to
outputs/inspect/runs/<time>_<overrides>/ and its TensorBoard folder. See
imgcls/inspection/report.py for what it contains.
"""

import hydra
from omegaconf import DictConfig

from imgcls.config import register_resolvers
from imgcls.errors import exit_on_user_error

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="inspect")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from imgcls.inspection.report import inspect_dataset

    inspect_dataset(cfg)


if __name__ == "__main__":
    main()
