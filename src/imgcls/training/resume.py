"""Continue a run in its own directory: ``python train.py resume=<run dir>``.

The run's saved command-line overrides are replayed, so the config is the one it started
with (later arguments still win), Hydra writes into the same directory (each resume's own
config under ``.hydra/resume-<n>/``, the original left as it was), and Lightning loads
``checkpoints/last.ckpt``. TensorBoard continues the same run: events the
interrupted process logged after that checkpoint are purged, so no step appears twice.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

RESUME_KEY = "resume"
# Replaced on every resume, so they are not replayed from the saved overrides.
_NOT_REPLAYED = (f"{RESUME_KEY}=", "ckpt_path=", "+ckpt_path=", f"+{RESUME_KEY}=")


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
    replayed = [o for o in OmegaConf.load(saved) if not str(o).startswith(_NOT_REPLAYED)]
    rest = [a for a in rest if not a.startswith("hydra.run.dir=")]
    quoted = _quote(str(Path(run_dir)))
    # Hydra would write this start's config over the run's own .hydra/: the run's original
    # overrides stay as they were (a later plain resume replays them), and each resume's
    # config and overrides go beside them, in .hydra/resume-<n>/.
    previous = len(list((Path(run_dir) / ".hydra").glob("resume-*")))
    record = f"hydra.output_subdir=.hydra/resume-{previous + 1}"
    return [*replayed, *rest, f"hydra.run.dir={quoted}", record, f"{RESUME_KEY}={quoted}", "ckpt_path=last"]


def last_global_step(checkpoint_path: Path) -> int | None:
    """The optimizer step a checkpoint was taken at (read without loading the tensors)."""
    if not checkpoint_path.is_file():
        return None
    from imgcls.training.checkpointing import read_checkpoint

    return int(read_checkpoint(checkpoint_path, mmap=True)["global_step"])


def _quote(value: str) -> str:
    """A Hydra override value that keeps ``=`` and ``,`` (common in run-directory names)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
