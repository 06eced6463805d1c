"""Start-up time of ``python train.py``: to ``--help``'s end, to a config error's message, and
to the first training step.

    python scripts/bench_startup.py --runs 3

Each is a fresh process, timed on the wall clock from just before it starts; the report is
the median (and min, max) over ``--runs``. The first step is seen by a callback added with
``+callbacks.first_step._target_=bench_startup.FirstStep`` (this folder on PYTHONPATH), which
prints the seconds since the benchmark started the process; the run is data=digits (in the
package, nothing to download) with one step, no test pass and no report.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

REPO = Path(__file__).resolve().parents[1]
STARTED_ENV = "IMGCLS_BENCH_STARTED"  # time.time() when the benchmark started the process
MARK = "first training step after"


class FirstStep(Callback):
    """Prints the seconds from the process's start (by the benchmark's clock) to the first step."""

    def __init__(self):
        self.seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.seen:
            self.seen = True
            print(f"{MARK} {time.time() - float(os.environ[STARTED_ENV]):.3f} s", flush=True)


def _run(arguments: list[str], env: dict, expect_ok: bool = True) -> tuple[float, str]:
    env = {**env, STARTED_ENV: repr(time.time())}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", *arguments], cwd=REPO, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if expect_ok and result.returncode != 0:
        raise RuntimeError(f"train.py {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "scripts"), os.environ.get("PYTHONPATH")])),
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    seconds: dict[str, list[float]] = {"--help": [], "config error": [], "first step": []}
    with tempfile.TemporaryDirectory(prefix="imgcls_startup_") as out:
        for run in range(args.runs):
            seconds["--help"].append(_run(["--help"], env)[0])
            seconds["config error"].append(_run(["trainer.max_epochs=abc"], env, expect_ok=False)[0])
            _, output = _run(
                [
                    "data=digits",
                    "trainer.max_steps=1",
                    "test=false",
                    "report=false",
                    "+callbacks.first_step._target_=bench_startup.FirstStep",
                    f"hydra.run.dir={Path(out) / str(run)}",
                    f"paths.data_dir={Path(out) / 'data'}",
                ],
                env,
            )
            found = re.search(rf"{MARK} ([0-9.]+) s", output)
            if not found:
                raise RuntimeError(f"no first step seen:\n{output[-3000:]}")
            seconds["first step"].append(float(found.group(1)))
    report = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for name, v in seconds.items()
    }
    print(f"\n{'python train.py ...':<22} {'median s':>9} {'min':>7} {'max':>7}  ({args.runs} runs)")
    for name, r in report.items():
        print(f"{name:<22} {r['median']:>9.2f} {r['min']:>7.2f} {r['max']:>7.2f}")
    return report


if __name__ == "__main__":
    main()
