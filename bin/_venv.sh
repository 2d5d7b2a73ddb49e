# Sourced by bin/quickstart and bin/test: make .venv (Python >= 3.11) and install the pinned
# requirements named in $1. Reinstalls only when a requirements file changed.
pinet_venv() {
    local requirements=$1
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "pinet needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)." >&2
        return 1
    fi
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -m venv .venv 2>/dev/null; then
            rm -rf .venv
            # Debian and Ubuntu ship venv separately.
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get install -y -q python3-venv >/dev/null || { apt-get update -q && apt-get install -y -q python3-venv; }
            elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
                sudo apt-get install -y -q python3-venv
            fi
            python3 -m venv .venv || { echo "Cannot create a virtualenv: install python3-venv." >&2; return 1; }
        fi
    fi
    local stamp
    stamp=".venv/.installed-$(cat requirements.txt "$requirements" | sha256sum | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
        rm -f .venv/.installed-*
        touch "$stamp"
    fi
    export PATH="$PWD/.venv/bin:$PATH"
}
