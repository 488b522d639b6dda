# Sourced by tools/*.sh: sets PYTHON (the environment variable, else the
# `python` on PATH) and stops with the fix when that interpreter lacks torch.
PYTHON=${PYTHON:-python}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: no Python interpreter '$PYTHON' on PATH. Enter the" \
        "environment mmpsp is installed in (in a clone:" \
        "'source .venv/bin/activate') or set PYTHON=/path/to/bin/python." >&2
    exit 2
fi
if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "error: $PYTHON ($(command -v "$PYTHON")) cannot import torch, so" \
        "it is not the environment mmpsp is installed in. Enter that" \
        "environment (in a clone: 'source .venv/bin/activate', after" \
        "'make venv') or set PYTHON=/path/to/.venv/bin/python." >&2
    exit 2
fi
