"""scripts/install_cjk_font.sh (run by `make install`): installs the font when it can, never fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_cjk_font.sh"


def run_script(tmp_path, *, installed: bool, apt_get: str | None, uid: int):
    """Run the script with stub dpkg-query/apt-get/id on PATH; returns (result, apt-get calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-get.calls"
    stubs = {
        "dpkg-query": f"echo '{'install ok installed' if installed else 'unknown ok not-installed'}'",
        "id": f"echo {uid}",
    }
    if apt_get is not None:
        stubs["apt-get"] = f'echo "$@" >> {calls}\n{apt_get}'
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    # Only the stubs and the shell's basics: the real apt-get must not be reachable.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("grep", "cat"):
        os.symlink(
            subprocess.check_output(["sh", "-c", f"command -v {tool}"], text=True).strip(), tools / tool
        )
    env = {"PATH": f"{bin_dir}:{tools}", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["/bin/sh", str(SCRIPT), "true"], env=env, capture_output=True, text=True, timeout=30
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_already_installed_does_nothing(tmp_path):
    result, calls = run_script(tmp_path, installed=True, apt_get="exit 0", uid=0)
    assert result.returncode == 0 and calls == [] and result.stderr == ""


def test_root_with_apt_get_installs_the_font(tmp_path):
    result, calls = run_script(tmp_path, installed=False, apt_get="exit 0", uid=0)
    assert result.returncode == 0
    assert calls == ["install -y -q --no-install-recommends fonts-wqy-microhei"]


def test_stale_package_lists_are_updated_once(tmp_path):
    # The first install fails (no package lists yet), update succeeds, the second install works.
    fail_first = f'[ "$1" = install ] && [ ! -e {tmp_path}/updated ] && exit 100\n[ "$1" = update ] && : > {tmp_path}/updated\nexit 0'
    result, calls = run_script(tmp_path, installed=False, apt_get=fail_first, uid=0)
    assert result.returncode == 0 and "warning" not in result.stderr
    assert [call.split()[0] for call in calls] == ["install", "update", "install"]


@pytest.mark.parametrize(
    ("apt_get", "uid", "warning"),
    [
        (None, 0, "no apt-get here"),
        ("exit 0", 1000, "not root; run: sudo apt-get install fonts-wqy-microhei"),
        ("exit 100", 0, "apt-get could not install fonts-wqy-microhei"),
    ],
)
def test_cannot_install_warns_and_succeeds(tmp_path, apt_get, uid, warning):
    result, calls = run_script(tmp_path, installed=False, apt_get=apt_get, uid=uid)
    assert result.returncode == 0
    assert warning in result.stderr
    if uid != 0:
        assert calls == []


@pytest.mark.skipif(
    not Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").exists(), reason="needs fonts-wqy-microhei"
)
@pytest.mark.e2e
def test_a_stale_matplotlib_font_cache_is_refreshed(tmp_path):
    """A font installed after matplotlib cached the font list is found after the install step."""
    python = sys.executable
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path)}
    sees_font = "from matplotlib import font_manager as fm; print(any(f.name == 'WenQuanYi Micro Hei' for f in fm.fontManager.ttflist))"
    forget_font = (
        "import glob, json; from matplotlib import font_manager; path, = glob.glob(sys.argv[1] + '/fontlist-*.json');"
        "cache = json.load(open(path)); cache['ttflist'] = [f for f in cache['ttflist'] if 'wqy' not in f['fname']];"
        "json.dump(cache, open(path, 'w'))"
    )
    subprocess.run([python, "-c", f"import sys; {forget_font}", str(tmp_path)], env=env, check=True)
    check = [python, "-c", sees_font]
    assert subprocess.run(check, env=env, capture_output=True, text=True).stdout.strip() == "False"
    subprocess.run(["sh", str(SCRIPT), python], env=env, check=True, timeout=120)
    assert subprocess.run(check, env=env, capture_output=True, text=True).stdout.strip() == "True"
