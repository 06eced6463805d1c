"""scripts/bench_time_to_accuracy.py: rounds of the three runs give per-round ratios of their
times, the right way up (the runs themselves are stubbed: each takes minutes)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_the_ratios_are_medians_of_per_round_time_ratios(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    bench = importlib.import_module("bench_time_to_accuracy")
    seconds = {"imgcls": [40.0, 44.0, 50.0], "handwritten": [38.0, 40.0, 40.0], "students": [80.0, 99.0, 90.0]}
    order = []

    def run(name, args, out_dir):
        order.append(name)
        return {"seconds": seconds[name][len([n for n in order if n == name]) - 1], "test_acc": 0.991,
                "epochs": 5, "reached": True}  # fmt: skip

    monkeypatch.setattr(bench, "run_variant", run)
    mnist = tmp_path / "mnist.pkl.gz"
    mnist.write_bytes(b"")
    report = bench.main(["--mnist", str(mnist), "--rounds", "3", "--out", str(tmp_path)])
    assert order == [*bench.VARIANTS] * 3  # one of each per round, interleaved
    assert report["students/imgcls"] == {"median": 2.0, "min": 1.8, "max": 2.25}
    assert report["imgcls/handwritten"]["median"] == 44.0 / 40.0
    assert (report["imgcls/handwritten"]["min"], report["imgcls/handwritten"]["max"]) == (40.0 / 38.0, 50.0 / 40.0)
    assert report["variants"]["imgcls"]["seconds"]["median"] == 44.0
    printed = capsys.readouterr().out
    assert "round 2/3: imgcls 44.0 s  handwritten 40.0 s  students 99.0 s" in printed
    assert "students/imgcls      2.00 (min 1.80, max 2.25)" in printed
    sys.modules.pop("bench_time_to_accuracy", None)
