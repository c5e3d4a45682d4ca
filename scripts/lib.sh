# Shared by scripts/quickstart and scripts/test (sourced, not run).

# Runs apt-get as root, or through sudo when that needs no password; fails otherwise.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        return 1
    fi
}

# apt_install PACKAGE...: installs Debian packages, updating the lists first.
apt_install() {
    echo "==> apt-get install $*" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@"
}

# find_python: prints the first Python >= 3.11 on PATH ($PYTHON wins when set).
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 or newer is needed; on Debian: apt-get install python3" >&2
    return 1
}

# make_venv: creates ./.venv (installing Debian's python3-venv when it is missing).
make_venv() {
    if [ -x .venv/bin/python ] && .venv/bin/python -c 'import pip' 2>/dev/null; then
        return 0
    fi
    local python
    python=$(find_python)
    rm -rf .venv
    if ! "$python" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        local version
        version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python$version-venv" || {
            echo "error: '$python -m venv' failed; install python$version-venv as root" >&2
            return 1
        }
        "$python" -m venv .venv
    fi
}

pip_install() {
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"
}
