# Shared by scripts/serve and scripts/test: make ./.venv hold hyprstream and the extras asked for.
# Sourced, not run. Needs only a POSIX shell and Python 3.11 or newer.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"

find_python() {
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "hyprstream needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

bootstrap() {
    extras=$1
    if [ ! -x "$venv/bin/python" ]; then
        python=$(find_python)
        echo "creating virtual environment in .venv with $python" >&2
        "$python" -m venv "$venv"
    fi
    # Reinstall only when what we depend on changed: the stamp is a hash of the inputs.
    stamp=$(cat pyproject.toml constraints.txt | "$venv/bin/python" -c \
        "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
    stamp_file="$venv/.hyprstream-installed-$extras"
    if [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp" ]; then
        echo "installing hyprstream[$extras] into .venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -c constraints.txt -e ".[$extras]"
        echo "$stamp" >"$stamp_file"
    fi
}
