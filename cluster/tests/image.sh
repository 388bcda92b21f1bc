#!/usr/bin/env bash
# What the container image and its build context hold, built from the repository root as the
# Dockerfile says (cluster/tests/image-lib.sh):
#   1. Files that must never reach a build are placed where people put them: a key where the
#      README puts the Kubernetes keys (cluster/k8s/keys/), a key among the sources, a fuzz
#      build folder, demo, study and run outputs, a virtualenv; the repository's own .build
#      and .git are there already. The context as the build stage sees it (the Dockerfile's
#      "sources" stage) holds none of them, and holds the package.
#   2. The image holds no key (its content is searched for, wherever it might be) and no
#      build folder, and carries the OCI labels with this checkout's git revision.
# Every file placed is removed again. Exit 0: passed; 77: skipped (reason on stderr).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/image-lib.sh"
why=$(image_available) || { echo "SKIP: $why" >&2; exit 77; }
[ -x "$BIN/medmaml-coordinator" ] || { echo "no $BIN/medmaml-coordinator: build first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/medmaml-image.XXXXXX)
IMAGE=localhost/medmaml:image-test-$$
SOURCES=localhost/medmaml-sources:image-test-$$
MARKER=medmaml-image-test-secret-$$-$RANDOM$RANDOM
PLACED=()      # files placed in the repository
MADE_DIRS=()   # folders made for them (removed if empty), deepest last
MOUNTS=()
cleanup() {
    status=$?
    for m in "${MOUNTS[@]}"; do "${P[@]}" image unmount "$m" >/dev/null 2>&1 || true; done
    "${P[@]}" rmi -f "$IMAGE" "$SOURCES" >/dev/null 2>&1 || true
    for f in "${PLACED[@]}"; do rm -f "$f"; done
    for ((i = ${#MADE_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${MADE_DIRS[$i]}" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT INT TERM

# Places a file holding the marker at $1 (relative to the repository), making its folders.
place() {
    local path=$REPO/$1 dir
    dir=$(dirname "$path")
    local missing=()
    while [ ! -d "$dir" ]; do missing=("$dir" "${missing[@]}"); dir=$(dirname "$dir"); done
    for d in "${missing[@]}"; do mkdir "$d"; MADE_DIRS+=("$d"); done
    [ ! -e "$path" ] || { echo "FAIL: $1 exists already; not touching it" >&2; exit 1; }
    printf '# MedMAML CURVE key pair (test)\nsecret-key = "%s"\n' "$MARKER" > "$path"
    chmod 600 "$path"
    PLACED+=("$path")
}
PROBES=(
    "cluster/k8s/keys/image-test-$$.key"
    "keys/image-test-$$.key"
    "Sources/image-test-$$.key"
    "Fuzz/.build/image-test-$$"
    ".build-image-test-$$/release/image-test"
    "demo-output/image-test-$$/final.safetensors"
    "out/image-test-$$"
    "study-image-test-$$/state.json"
    "run-image-test-$$/checkpoint-00000001.safetensors"
    "venv/image-test-$$/pyvenv.cfg"
    ".venv/image-test-$$"
)
for p in "${PROBES[@]}"; do place "$p"; done
# The search must find the marker where it is, or finding none in the image proves nothing.
grep -rlF "$MARKER" "$REPO/cluster/k8s/keys" | grep -q "image-test-$$.key" \
    || { echo "FAIL: the marker search does not find the placed key" >&2; exit 1; }

image_base "$WORK"

# 1. The build context as the build stage sees it.
image_build "$SOURCES" --target sources
src=$("${P[@]}" image mount "$SOURCES"); MOUNTS+=("$SOURCES")
[ -f "$src/src/Package.swift" ] && [ -f "$src/src/Sources/Coordinator/Coordinator.swift" ] \
    && [ -d "$src/src/Tests/IntegrationTests" ] && [ -x "$src/src/prebuilt/medmaml-coordinator" ] \
    || { echo "FAIL: the build context lacks the package or prebuilt/: $(ls -A "$src/src" | tr '\n' ' ')" >&2; exit 1; }
for p in "${PROBES[@]}"; do
    [ ! -e "$src/src/$p" ] || { echo "FAIL: $p is in the build context" >&2; exit 1; }
done
leaked=$(cd "$src/src" && find . \( -name '.git' -o -name '.build*' -o -name '*.key' -o -name 'venv' -o -name '.venv' \
                                   -o -name 'demo-output' -o -name '*.pyc' \) -print | head -5)
[ -z "$leaked" ] || { echo "FAIL: the build context holds $leaked" >&2; exit 1; }
! grep -rqF "$MARKER" "$src/src" || { echo "FAIL: a placed key's content is in the build context" >&2; exit 1; }
echo "build context: $(find "$src/src" -type f | wc -l) files, no key, build folder, output, virtualenv or .git" >&2

# 2. The image.
image_build "$IMAGE"
root=$("${P[@]}" image mount "$IMAGE"); MOUNTS+=("$IMAGE")
[ -x "$root/usr/local/bin/medmaml-coordinator" ] && [ -x "$root/usr/local/bin/medmaml-worker" ] \
    || { echo "FAIL: the image lacks the executables" >&2; exit 1; }
! grep -rqF "$MARKER" "$root" --exclude-dir=proc --exclude-dir=sys \
    || { echo "FAIL: a placed key's content is in the image" >&2; exit 1; }
builds=$(find "$root" -xdev -name '.build*' -print | head -3)
[ -z "$builds" ] || { echo "FAIL: the image holds build folders: $builds" >&2; exit 1; }
label() { "${P[@]}" image inspect --format "{{index .Labels \"org.opencontainers.image.$1\"}}" "$IMAGE"; }
revision=$(git -C "$REPO" rev-parse HEAD)
[ "$(label revision)" = "$revision" ] || { echo "FAIL: revision label '$(label revision)', git $revision" >&2; exit 1; }
[ "$(label version)" = "$(git -C "$REPO" describe --always --dirty)" ] || { echo "FAIL: version label '$(label version)'" >&2; exit 1; }
[ "$(label title)" = medmaml ] && [ -n "$(label description)" ] && [ -n "$(label licenses)" ] \
    || { echo "FAIL: title/description/licenses labels: $(label title) / $(label description) / $(label licenses)" >&2; exit 1; }
"${P[@]}" image inspect --format '{{json .Labels}}' "$IMAGE" | grep -q '"org.opencontainers.image.source"' \
    || { echo "FAIL: no source label" >&2; exit 1; }
echo "image: no key, no build folder; labels $(label title) $(label version) revision $(label revision | cut -c1-12)" >&2
echo "image test passed" >&2
