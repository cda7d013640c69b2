# Sourced by python/tests/{vllm,sglang}/run.sh: builds libmaru and maru-devd (release)
# and makes a venv with an inference engine and this repository's `maru` package.
#
#   engine_venv VENV SPEC     # SPEC: a pip requirement, e.g. vllm or sglang==0.5.0
#
# Sets $repo (the repository root) and $py (the venv's python).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

engine_venv() {
    local venv=$1 spec=$2
    echo "== build libmaru and maru-devd"
    (cd "$repo" && cargo build --release -p libmaru -p maru-devd)
    echo "== venv $venv: $spec, maru"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    local pip=("$venv/bin/pip" install -q --disable-pip-version-check)
    "${pip[@]}" "$spec" numpy pytest
    "${pip[@]}" "$repo/python"
    py="$venv/bin/python"
}
