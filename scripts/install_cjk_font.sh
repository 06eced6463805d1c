#!/bin/sh
# Install a font that covers Chinese class names (CASIA) so figures show them, not boxes.
# Usage: install_cjk_font.sh [PYTHON]   (PYTHON: the venv's, whose matplotlib must find the font)
# Never fails: without root or apt-get it prints what to run instead. Fast when installed.
PACKAGE=fonts-wqy-microhei
FAMILY="WenQuanYi Micro Hei"
PYTHON="${1:-python3}"

if ! dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q "ok installed"; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "warning: no apt-get here; install a CJK font (e.g. Debian's $PACKAGE or Noto Sans CJK) so Chinese class names render in figures" >&2
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "warning: $PACKAGE is missing and this is not root; run: sudo apt-get install $PACKAGE" >&2
        exit 0
    fi
    echo "installing $PACKAGE (Chinese class names in figures)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "$PACKAGE" >/dev/null 2>&1 \
        && ! { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$PACKAGE" >/dev/null 2>&1; }; then
        echo "warning: apt-get could not install $PACKAGE; Chinese class names will show as boxes in figures" >&2
        exit 0
    fi
fi
# matplotlib caches the system's font list when first imported; a font installed later is
# invisible to it until that cache is dropped (it is rebuilt on the next import).
"$PYTHON" - "$FAMILY" <<'PY' 2>/dev/null
import glob, os, sys
import matplotlib
from matplotlib import font_manager
if not any(font.name == sys.argv[1] for font in font_manager.fontManager.ttflist):
    for path in glob.glob(os.path.join(matplotlib.get_cachedir(), "fontlist-*.json")):
        os.remove(path)
PY
exit 0
