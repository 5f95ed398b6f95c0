#!/usr/bin/env bash
# Create bench/.venv-nautilus (CPython >= 3.12) and install bench/nautilus/requirements.txt into it.
# Idempotent: a stamp file holding the requirements' checksum skips the install when nothing changed.
# Exits 2 with one line on stderr when no CPython >= 3.12 can be found.
#   NAUTILUS_PYTHON=/path/to/python3.12 bash bench/nautilus/setup.sh   # to choose the interpreter
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
VENV="$BENCH/.venv-nautilus"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.installed"

# A candidate counts only if it really runs and is >= 3.12 (a pyenv shim may exist and still fail).
ok() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

want="$( (sha256sum "$REQ" 2>/dev/null || shasum -a 256 "$REQ") | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && ok "$VENV/bin/python" && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi

find_python() {
    local c
    local -a cands=()
    [ -n "${NAUTILUS_PYTHON:-}" ] && cands+=("$NAUTILUS_PYTHON")
    c="$(command -v python3.12 2>/dev/null || true)"; [ -n "$c" ] && cands+=("$c")
    for c in /root/.pyenv/versions/3.12.*/bin/python3.12; do [ -e "$c" ] && cands+=("$c"); done
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.12*/bin/python; do [ -e "$c" ] && cands+=("$c"); done
    fi
    # nautilus_trader 1.231.0 ships cp312 wheels; a newer CPython is only a last resort.
    c="$(command -v python3 2>/dev/null || true)"; [ -n "$c" ] && cands+=("$c")
    for c in "${cands[@]}"; do
        if ok "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

if ! PY="$(find_python)"; then
    echo "bench/nautilus/setup.sh: no CPython >= 3.12 found (tried NAUTILUS_PYTHON, python3.12 on PATH, /root/.pyenv/versions/3.12.*, \$(pyenv root)/versions/3.12*, python3); NautilusTrader side skipped" >&2
    exit 2
fi

if [ ! -x "$VENV/bin/python" ] || ! ok "$VENV/bin/python"; then
    rm -rf "$VENV"
    echo "bench/nautilus/setup.sh: creating $VENV with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))" >&2
    "$PY" -m venv "$VENV"
fi

echo "bench/nautilus/setup.sh: installing $(grep -v '^#' "$REQ" | tr '\n' ' ')into $VENV (one download, ~190 MB)" >&2
# (this machine's pip config adds local indexes that lack these names; drop pip's warnings about them)
set +o pipefail
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2>&1 | grep -v "^WARNING: Location" >&2
rc="${PIPESTATUS[0]}"
set -o pipefail
if [ "$rc" -ne 0 ]; then echo "bench/nautilus/setup.sh: pip install failed (exit $rc)" >&2; exit "$rc"; fi
"$VENV/bin/python" -c "import nautilus_trader; print('bench/nautilus/setup.sh: nautilus_trader', nautilus_trader.__version__, 'ready')" >&2
echo "$want" > "$STAMP"
