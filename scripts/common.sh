# Sourced by scripts/*.sh: finding cargo and asking for root only where it is needed.
# Set `me` (the script's name for messages) and `self` (its absolute path, for
# maru_reexec_as_root) before sourcing.

# Puts ~/.cargo/bin on PATH when cargo is not on it (rustup's default place).
maru_find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
}

maru_is_root() { [ "$(id -u)" -eq 0 ]; }

# maru_sudo WHY CMD...: runs CMD as root: directly when root, else through sudo (saying
# why first); fails with a clear message when neither is possible.
maru_sudo() {
    local why="$1"
    shift
    if maru_is_root; then
        "$@"
        return
    fi
    if ! command -v sudo >/dev/null 2>&1; then
        echo "$me: $why needs root, and sudo is not installed: run this as root (or install sudo)" >&2
        exit 1
    fi
    echo "$me: $why needs root: running 'sudo $*'" >&2
    sudo "$@"
}

# maru_reexec_as_root WHY [ARGS...]: unless already root, runs this script ($self) again as
# root through sudo and does not return. The root process keeps the caller's Rust
# toolchain (PATH, CARGO_HOME, RUSTUP_HOME: rustup installs per user) and the
# CARGO_*/MARU_*/LIBMARU_* settings, and gets MARU_ELEVATED=1 so the script can skip
# what the caller already did. HOME stays root's: nothing root writes lands in the
# caller's home.
maru_reexec_as_root() {
    local why="$1"
    shift
    maru_is_root && return 0
    if ! command -v sudo >/dev/null 2>&1; then
        echo "$me: $why needs root, and sudo is not installed: run this as root (or install sudo)" >&2
        exit 1
    fi
    local keep=("PATH=$PATH" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" MARU_ELEVATED=1)
    local v
    while IFS= read -r v; do
        case "$v" in
            CARGO_HOME | RUSTUP_HOME | MARU_ELEVATED) ;;
            CARGO_* | RUSTUP_* | RUSTFLAGS | MARU_* | LIBMARU_*) keep+=("$v=${!v}") ;;
        esac
    done < <(compgen -e)
    echo "$me: $why needs root: continuing through sudo" >&2
    exec sudo env "${keep[@]}" "${self:-$0}" "$@"
}
