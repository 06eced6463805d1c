"""scripts/gpu_check.sh --smoke: the prepared GPU check runs on a CPU and prints one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

CHECKS = ("gpu_tests", "cifar_cnn_epoch", "resnet50_synthetic", "resnet50_decode_cache", "options", "ddp")
OPTIONS = ("precision_auto", "compile", "grouped_steps_on", "grouped_steps_off")


@pytest.mark.slow  # eight tiny train.py runs and a pytest: about 1.5 min on a quiet 2-core machine
def test_the_smoke_check_prints_one_json_with_every_check(tmp_path):
    result = subprocess.run(
        [str(REPO / "scripts" / "gpu_check.sh"), "--smoke", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # stdout is the JSON and nothing else
    assert report["mode"] == "smoke" and set(CHECKS) <= report.keys()
    assert report["gpu_tests"]["ok"] and report["gpu_tests"]["tests"] >= 1
    runs = [report[name] for name in CHECKS[1:] if name != "options"] + [report["options"][o] for o in OPTIONS]
    for run in runs:
        assert run["ok"], run.get("error")
        assert len(run["epoch_s"]) == 2 and run["images_per_s"] > 0
    assert report["options"]["grouped_steps_off"]["resolved"]["fused_steps"] == 1
    assert report["options"]["grouped_steps_on"]["resolved"]["fused_steps"] > 1
    assert report["options"]["compile"]["resolved"]["compile"] is True
    assert report["resnet50_synthetic"]["resolved"]["precision"] == "bf16-mixed"
    assert report["ddp"]["resolved"]["devices"] == 2
