#!/usr/bin/env bash
# Runs a Python script of tests/tools in a virtual environment holding ONNX Runtime and onnx (the CPU speed
# reference; never a dependency of Lathe itself). The environment is made once under the user's cache from
# Debian's Python with its system packages visible (Debian's PyTorch for the cross-checks), and reused.
#   tests/tools/onnxruntime_env.sh tests/tools/bench_vs_onnxruntime.py --threads 1
set -euo pipefail

VENV=${LATHE_ORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lathe/onnxruntime-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnxruntime, onnx" 2>/dev/null; then
    echo "onnxruntime_env: making $VENV (onnxruntime, onnx from PyPI)" >&2
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check onnxruntime onnx
fi
[ $# -ge 1 ] || { echo "usage: $0 SCRIPT.py [args...]" >&2; exit 2; }
exec "$VENV/bin/python" "$@"
