"""The checks of scripts/gpu_check.sh: each is a real ``train.py`` run (or pytest) in a
subprocess, timed from its own epoch lines; the results are printed as one JSON on stdout.

Sizes are chosen so that the whole check ends in under 8 minutes on one GPU; ``--smoke``
shrinks them so that it runs on a CPU in about a minute (what tests/test_gpu_check.py runs).
Each run has a timeout, and a failed run is recorded with its error, not raised: one JSON
always comes back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# "epoch 2/2  train/loss ...  12.3 s": training/epoch_log.py's line per epoch.
EPOCH_LINE = re.compile(r"epoch (\d+)/\d+\s.*?([\d.]+) s(?:\s|$)")
QUIET = ("print_config=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "report=false", "logger=csv")  # fmt: skip

SIZES = {
    # CIFAR-shaped epoch; ResNet-50 images per epoch at 224 px; JPEGs for the decode cache.
    "full": {"cifar": 50_000, "resnet": 4096, "jpegs": 2048, "px": 224, "options": 20_000, "timeout": 150},
    "smoke": {"cifar": 512, "resnet": 16, "jpegs": 40, "px": 32, "options": 256, "timeout": 120},
}


# The whole check's budget: each run's timeout is cut to what is left of it (full mode).
BUDGET_S = {"full": 460, "smoke": 1800}
_deadline = float("inf")


def remaining(timeout: float) -> float:
    return max(1.0, min(timeout, _deadline - time.perf_counter()))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def train_run(name: str, out: Path, overrides: list[str], images: int, timeout: float) -> dict:
    """``train.py`` with ``overrides``: status, wall seconds, epoch seconds, images/s of the last epoch."""
    run_dir = out / name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    # The run directory itself (not paths.output_dir): Hydra writes train.log there.
    command = [sys.executable, str(REPO / "train.py"), *overrides, *QUIET, f"hydra.run.dir={run_dir}"]
    log(f"[gpu_check] {name}: {' '.join(overrides)}")
    start, timeout = time.perf_counter(), remaining(timeout)
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s", "wall_s": round(time.perf_counter() - start, 1)}
    wall = time.perf_counter() - start
    log_file = run_dir / "train.log"
    epochs = [float(s) for _, s in EPOCH_LINE.findall(log_file.read_text())] if log_file.is_file() else []
    record_file = run_dir / "metrics.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    entry = {"ok": result.returncode == 0 and record.get("status") == "ok", "wall_s": round(wall, 1),
             "epoch_s": epochs, "resolved": record.get("resolved")}  # fmt: skip
    if epochs:
        entry["images_per_s"] = round(images / epochs[-1], 1)  # the last epoch: after warm-up / compile
    if not entry["ok"]:
        entry["error"] = (record.get("error") or result.stderr[-1500:]).strip()
    return entry


def gpu_tests(smoke: bool, out: Path, timeout: float) -> dict:
    """``pytest -m gpu``: counts from its JUnit XML. Smoke: tests/test_gpu.py only (collecting
    the whole suite takes longer than the rest of the smoke check)."""
    junit = out / "gpu_tests.xml"
    target = ["tests/test_gpu.py"] if smoke else ["tests"]
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", f"--junitxml={junit}", *target]
    log(f"[gpu_check] gpu tests: {' '.join(command[1:])}")
    start, timeout = time.perf_counter(), remaining(timeout)
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s"}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if junit.is_file():
        suite = ElementTree.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in counts}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    # pytest exits 5 when every gpu test was deselected; 0 or 5 is a clean run.
    return {"ok": result.returncode in (0, 5), "exit_code": result.returncode, **counts,
            "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def write_jpegs(root: Path, count: int, px: int, classes: int = 4) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8)).save(folder / f"{index}.jpg", quality=90)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, on whatever device there is")
    parser.add_argument("--out", type=Path, default=None, help="where the runs write (default: a temporary folder)")
    args = parser.parse_args(argv)
    size = SIZES["smoke" if args.smoke else "full"]
    gpus = gpu_count()
    if not gpus and not args.smoke:
        parser.error("no CUDA device: run with --smoke on a CPU")
    accelerator = "gpu" if gpus else "cpu"
    device = [f"trainer.accelerator={accelerator}", "trainer.devices=1"]
    global _deadline
    started = time.perf_counter()
    _deadline = started + BUDGET_S[report_mode := "smoke" if args.smoke else "full"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        timeout = size["timeout"]
        cifar = ["model=cnn", "data=photo_crops", f"data.train_size={size['cifar']}", "data.val_size=512",
                 "data.test_size=512", "data.resident=true", "trainer.max_epochs=2", "test=false"]  # fmt: skip
        synthetic = ["data=photo_crops", "data._target_=gpu_check_data.SyntheticImages", f"+data.side={size['px']}",
                     f"data.train_size={size['resnet']}", "data.val_size=64", "data.test_size=64", "data.batch_size=64",
                     "model=resnet50", "trainer.precision=bf16-mixed", "channels_last=true", "trainer.max_epochs=2", "test=false"]  # fmt: skip
        jpegs = out / "jpegs"
        write_jpegs(jpegs, size["jpegs"], size["px"])
        folder = ["data=folder", f"data.root={jpegs}", f"data.image_size=[{size['px']},{size['px']}]",
                  f"data.cache_dir={out / 'decoded'}", "data.batch_size=64", "data.val_fraction=0.05", "data.test_fraction=0.05",
                  "model=resnet50", "trainer.precision=bf16-mixed", "channels_last=true", "trainer.max_epochs=2", "test=false"]  # fmt: skip
        options_data = [*cifar[:2], f"data.train_size={size['options']}", *cifar[3:]]
        train_images = int(size["jpegs"] * 0.9)
        report = {
            "mode": report_mode,
            "device": _device_name(gpus),
            "gpu_count": gpus,
            "gpu_tests": gpu_tests(args.smoke, out, 120 if not args.smoke else timeout),
            "cifar_cnn_epoch": train_run("cifar_cnn", out, [*cifar, *device], size["cifar"], timeout),
            "resnet50_synthetic": train_run("resnet50_synthetic", out, [*synthetic, *device], size["resnet"], timeout),
            "resnet50_decode_cache": train_run("resnet50_decode_cache", out, [*folder, *device], train_images, timeout),
            "options": {
                "precision_auto": train_run("precision_auto", out, [*options_data, *device, "trainer.precision=auto"], size["options"], timeout),
                "compile": train_run("compile", out, [*options_data, *device, "compile=true"], size["options"], timeout),
                "grouped_steps_on": train_run("grouped_on", out, [*options_data, *device, "fused_steps=auto"], size["options"], timeout),
                "grouped_steps_off": train_run("grouped_off", out, [*options_data, *device, "fused_steps=1"], size["options"], timeout),
            },  # fmt: skip
            "ddp": train_run("ddp", out, [*options_data, "trainer=ddp", f"trainer.accelerator={accelerator}",
                                          f"trainer.devices={max(gpus, 1) if gpus else 2}"], size["options"], timeout),  # fmt: skip
        }
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return report


def _device_name(gpus: int) -> str:
    import platform

    import torch

    return torch.cuda.get_device_name(0) if gpus else platform.processor() or "cpu"


if __name__ == "__main__":
    main()
