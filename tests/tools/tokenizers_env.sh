#!/usr/bin/env bash
# Runs a Python script of tests/tools in a virtual environment holding Hugging Face `tokenizers` (the reference
# for Lathe's WordPiece tokenizer; never a dependency of Lathe itself). The environment is made once under the
# user's cache from Debian's Python with its system packages visible (Debian's PyTorch for the MiniLM
# reference), and reused.
#   tests/tools/tokenizers_env.sh tests/tools/minilm_reference.py --check
set -euo pipefail

VENV=${LATHE_TOKENIZERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lathe/tokenizers-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import tokenizers" 2>/dev/null; then
    echo "tokenizers_env: making $VENV (tokenizers from PyPI)" >&2
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "tokenizers==0.19.1"
fi
[ $# -ge 1 ] || { echo "usage: $0 SCRIPT.py [args...]" >&2; exit 2; }
exec "$VENV/bin/python" "$@"
