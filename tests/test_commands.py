"""The installed commands and the root scripts are the same programs; --help lists only what
a user can choose."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module

import pytest
import tomllib
from conftest import REPO


def _entry_points() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_command_points_at_a_function_the_root_script_calls():
    points = _entry_points()
    assert set(points) == {"imgcls-train", "imgcls-evaluate", "imgcls-predict", "imgcls-export", "imgcls-inspect"}
    for target in points.values():
        module, function = target.split(":")
        assert callable(getattr(import_module(module), function))
        script = REPO / f"{module.rsplit('.', 1)[1]}.py"
        assert f"from {module} import {function}" in script.read_text(), script


def _call(target: str, *args: str, cwd) -> subprocess.CompletedProcess:
    module, function = target.split(":")
    code = f"import sys; sys.argv = ['cmd', *sys.argv[1:]]; from {module} import {function}; {function}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_train_command_finds_its_configs_from_any_directory_and_hides_internal_ones(tmp_path):
    result = _call(_entry_points()["imgcls-train"], "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    options = sorted(path.stem for path in (REPO / "conf" / "data").glob("*.yaml"))
    assert f"data: {', '.join(options)}" in groups
    assert "_files" not in groups and "image_files" not in groups
    assert not any(option.strip().startswith("_") for line in groups.splitlines() for option in line.split(",")[1:])


@pytest.mark.parametrize(
    ("command", "args"), [("imgcls-evaluate", ["ckpt_path=x.ckpt"]), ("imgcls-predict", ["ckpt_path=x.ckpt", "input=a"])]
)
def test_other_commands_compose_their_configs_from_any_directory(command, args, tmp_path):
    result = _call(_entry_points()[command], "--cfg", "job", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ckpt_path: x.ckpt" in result.stdout


@pytest.mark.parametrize("arguments", [["--help"], ["trainer.max_epochs=abc"]])
def test_train_help_and_config_errors_import_neither_torch_nor_lightning(arguments, tmp_path):
    # Seconds of start-up (scripts/bench_startup.py) that --help and a bad value do not need.
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['train.py', *{arguments!r}, 'hydra.run.dir={tmp_path}']\n"
        "try:\n"
        "    runpy.run_path('train.py', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print(exit.code)\n"
        "print('heavy:', sorted(m for m in ('torch', 'lightning') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    expected = "Powered by Hydra" if arguments == ["--help"] else "trainer.max_epochs='abc' must be an integer"
    assert expected in result.stdout + result.stderr
    assert "heavy: []" in result.stdout, result.stdout[-500:]
