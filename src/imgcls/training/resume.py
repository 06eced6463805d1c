"""Continue a run in its own directory: ``python train.py resume=<run dir>``.

The command-line overrides of the checkpoint's run are replayed (those of the resume that
wrote ``last.ckpt``, else the run's own), so the config is the one it was trained with;
Hydra writes into the same directory (each resume's own config under
``.hydra/resume-<n>/``, the original left as it was), and Lightning loads
``checkpoints/last.ckpt``. TensorBoard continues the same run: events the
interrupted process logged after that checkpoint are purged, so no step appears twice.

Arguments given with ``resume=`` change the continued run only where it takes effect
(:data:`RESUMABLE`): the trainer, loggers, loader speed settings, and the optimizer's
hyper-parameters, which are set on the restored optimizer. Anything else would change
what the checkpoint is (model, data, seed, loss, schedule) or be overwritten by state the
checkpoint restores (callbacks, schedules), so it is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from imgcls import console
from imgcls.config import ConfigError

RESUME_KEY = "resume"
# Replaced on every resume, so they are not replayed from the saved overrides.
_NOT_REPLAYED = (f"{RESUME_KEY}=", "ckpt_path=", "+ckpt_path=", f"+{RESUME_KEY}=")
# Where a checkpoint keeps the overrides of the run that wrote it.
CHECKPOINT_KEY = "imgcls_overrides"
# Keys (and their sub-keys) a resume applies to the continued run.
RESUMABLE = (
    "trainer",  # the trainer is built anew: max_epochs, devices, precision, limits, ...
    "optimizer.*",  # a hyper-parameter, set on the restored optimizer (ResumeOverrides)
    "logger",
    "data.num_workers",
    "data.eval_batch_size",
    "data.decode_workers",
    "data.decoder",
    "data.cache_dir",
    "data.progress",
    "paths",
    "hydra",
    "print_config",
    "trust_checkpoint",
    "report",
    "test",
    "channels_last",
    "compile",
)


def resume_arguments(arguments: list[str]) -> list[str]:
    """Command-line ``arguments`` (without the program name) with ``resume=<run dir>`` expanded.

    ``resume=true`` takes the directory from ``hydra.run.dir=<run dir>``.
    """
    values = [a.split("=", 1)[1] for a in arguments if a.startswith(f"{RESUME_KEY}=")]
    if not values or values[-1].lower() in ("null", "none", "false", ""):
        return arguments
    if any(a in ("-m", "--multirun") for a in arguments):
        raise SystemExit("resume= continues one run; it cannot be combined with -m/--multirun")
    rest = [a for a in arguments if not a.startswith(f"{RESUME_KEY}=")]
    run_dir = values[-1].strip("'\"")
    if run_dir.lower() == "true":
        run_dirs = [a.split("=", 1)[1] for a in rest if a.startswith("hydra.run.dir=")]
        if not run_dirs:
            raise SystemExit(
                "resume=true needs the run: add hydra.run.dir=<run dir>, or use resume=<run dir>"
            )
        run_dir = run_dirs[-1].strip("'\"")
    saved = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise SystemExit(f"resume={run_dir}: not a run directory (no {saved})")
    trust = any(a.lower() == "trust_checkpoint=true" for a in rest)
    from imgcls.training.checkpointing import CheckpointReadError

    try:
        replayed = _checkpoint_overrides(Path(run_dir) / "checkpoints" / "last.ckpt", trust)
    except CheckpointReadError as error:
        raise SystemExit(f"resume={run_dir}: {error}") from None
    if replayed is None:  # no checkpoint of a resume yet: the run's own
        replayed = [str(o) for o in OmegaConf.load(saved)]
    replayed = [o for o in replayed if not o.startswith(_NOT_REPLAYED)]
    rest = [a for a in rest if not a.startswith("hydra.run.dir=")]
    refuse_unresumable(rest, replayed, run_dir)
    quoted = _quote(str(Path(run_dir)))
    # Hydra would write this start's config over the run's own .hydra/: the run's original
    # overrides stay as they were (a later plain resume replays them), and each resume's
    # config and overrides go beside them, in .hydra/resume-<n>/.
    previous = len(list((Path(run_dir) / ".hydra").glob("resume-*")))
    record = f"hydra.output_subdir=.hydra/resume-{previous + 1}"
    return [*replayed, *rest, f"hydra.run.dir={quoted}", record, f"{RESUME_KEY}={quoted}", "ckpt_path=last"]


def refuse_unresumable(arguments: list[str], replayed: list[str], run_dir: str) -> None:
    """ConfigError naming every argument a resume could not apply (see :data:`RESUMABLE`);
    an argument the run already has (``seed=7`` for a run with ``seed=7``) is fine."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        given, unchanged = parser.parse_overrides(arguments), parser.parse_overrides(replayed)
    except Exception:  # noqa: BLE001 - Hydra reports a malformed override itself, better
        return
    unchanged = {_canonical(o) for o in unchanged}
    refused = [
        argument
        for argument, override in zip(arguments, given, strict=True)
        if _canonical(override) not in unchanged and not _resumable(override.key_or_group)
    ]
    if refused:
        raise ConfigError(
            f"resume={run_dir} cannot change {', '.join(refused)}: a resume continues the checkpoint's "
            "model, data, seed, loss, schedule and callback state. Start a new run with these settings, "
            f"or resume without them. A resume can change {', '.join(RESUMABLE)} (each with its sub-keys)."
        )


def task_overrides() -> list[str] | None:
    """This process's command-line overrides that a later resume replays (None outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return [o for o in HydraConfig.get().overrides.task if not o.startswith(_NOT_REPLAYED)]


class ResumeOverrides(Callback):
    """Makes a resume's settings real and remembered.

    The optimizer's hyper-parameters in the config replace those the restored optimizer
    brought back from the checkpoint (a new ``lr`` rescales the schedule with it), and each
    checkpoint records the overrides of the run that wrote it, which the next resume replays.
    """

    def __init__(self, overrides: list[str] | None = None) -> None:
        self.overrides = overrides
        self._restored: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self.overrides is not None:
            checkpoint[CHECKPOINT_KEY] = list(self.overrides)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._restored = dict((checkpoint.get("hyper_parameters") or {}).get("optimizer") or {})

    def on_train_start(self, trainer, pl_module) -> None:
        restored, self._restored = self._restored, None
        # Only a fit that resumed from a checkpoint; not one that follows the Tuner's own
        # restore of its temporary checkpoint (lr_find=apply).
        if not restored or not trainer.ckpt_path:
            return
        from imgcls.training.optimization import rescale_learning_rates

        wanted = dict(pl_module.hparams.optimizer)
        changed = {
            key: (restored.get(key), value)
            for key, value in wanted.items()
            if not key.startswith("_") and restored.get(key) != value
        }
        schedulers = [config.scheduler for config in trainer.lr_scheduler_configs]
        for optimizer in trainer.optimizers:
            for key, (old, new) in changed.items():
                if key == "lr":
                    rescale_learning_rates(optimizer, schedulers, float(new) / float(old))
                    continue
                # Groups that follow the config's value; a group with its own keeps it.
                for group in optimizer.param_groups:
                    if key not in group or group[key] == old or old is None:
                        group[key] = new
        if changed:
            console.info(
                "Resume changes the restored optimizer: "
                + ", ".join(f"optimizer.{key} {old} -> {new}" for key, (old, new) in changed.items())
            )


def last_global_step(checkpoint_path: Path) -> int | None:
    """The optimizer step a checkpoint was taken at (read without loading the tensors)."""
    if not checkpoint_path.is_file():
        return None
    from imgcls.training.checkpointing import read_checkpoint

    return int(read_checkpoint(checkpoint_path, mmap=True)["global_step"])


def _checkpoint_overrides(path: Path, trust: bool) -> list[str] | None:
    """The overrides recorded in the checkpoint (by :class:`ResumeOverrides`), if any."""
    if not path.is_file():
        return None
    from imgcls.training.checkpointing import read_checkpoint

    overrides = read_checkpoint(path, trust=trust, mmap=True).get(CHECKPOINT_KEY)
    return [str(o) for o in overrides] if overrides is not None else None


def _canonical(override) -> tuple:
    return (override.type, override.get_key_element(), override.get_value_element_as_str())


def _resumable(key: str) -> bool:
    for allowed in RESUMABLE:
        if allowed.endswith(".*"):
            group = allowed[:-2]
            if key.startswith(f"{group}.") and not key.startswith(f"{group}._"):
                return True
        elif key == allowed or key.startswith(f"{allowed}."):
            return True
    return False


def _quote(value: str) -> str:
    """A Hydra override value that keeps ``=`` and ``,`` (common in run-directory names)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
