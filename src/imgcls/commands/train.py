"""``imgcls-train`` / ``python train.py``: see conf/train.yaml."""

import sys

import hydra
from omegaconf import DictConfig

from imgcls.commands import CONF_DIR
from imgcls.config import check_values, register_resolvers
from imgcls.errors import exit_on_user_error

register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    from imgcls.training.sweep import in_multirun

    if not in_multirun():
        # A bad value stops the run before torch and Lightning load (seconds); a sweep's
        # jobs are checked in train(), which records the bad one so that the sweep goes on.
        check_values(cfg)
    from imgcls.training.run import train

    return train(cfg)


def run() -> None:
    # resume=<run dir> becomes that run's own overrides, directory and last checkpoint;
    # what a resume cannot change is refused before Hydra writes anything into the run.
    # Imported only then: the module imports Lightning, which --help does not need (seconds).
    if any(argument.lstrip("+").startswith("resume=") for argument in sys.argv[1:]):
        from imgcls.training.resume import resume_arguments

        sys.argv[1:] = exit_on_user_error(resume_arguments)(sys.argv[1:])
    main()
