# Shared set-up for scripts/bench and scripts/test: system packages and huge pages.
# Sourced, not run.

VQB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VQB_PACKAGES=(liburing-dev libhugetlbfs-dev pkg-config valgrind)

log() { printf '[vqbench] %s\n' "$*" >&2; }

# ensure_packages [PACKAGE...]: installs what is missing of the packages named (default
# VQB_PACKAGES: the C libraries and tools the package needs) with apt when root; otherwise
# says what to install and fails.
ensure_packages() {
    local missing=()
    local wanted=("$@")
    [ ${#wanted[@]} -eq 0 ] && wanted=("${VQB_PACKAGES[@]}")
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing packages: ${missing[*]} — install them as root: apt-get install -y ${missing[*]}"
        return 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Reserves N 2 MiB huge pages, best effort: never fails, says what it got.
reserve_hugepages() {
    local want=${1:-512}
    local f=/proc/sys/vm/nr_hugepages
    local have
    have=$(cat "$f" 2>/dev/null || echo 0)
    if [ "$have" -lt "$want" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            echo "$want" > "$f" 2>/dev/null || true
            have=$(cat "$f" 2>/dev/null || echo 0)
        fi
    fi
    if [ "$have" -ge "$want" ]; then
        log "2 MiB huge pages reserved: $have"
    else
        log "only $have of $want 2 MiB huge pages reserved; regions fall back to THP or 4 KiB pages (as root: echo $want > $f)"
    fi
}

swift_build_release() {
    log "building (release)"
    (cd "$VQB_ROOT" && swift build -c release --product vqbench)
}
