# Shared by the container tests (podman.sh, image.sh, k8s-play.sh): podman set up for this
# machine, and MedMAML's image built from the repository root as a user would build it.
#
# No image registry is reachable here, so the base image comes from the Debian mirror
# (mmdebstrap, then podman import) and the binaries are the host's release build with their
# Swift runtime libraries (the Dockerfile's "prebuilt" stage).
#
# Source it after setting REPO and BIN; it defines P (podman with this machine's settings),
# LIMITS (the run/build options), IMAGE_PACKAGES, image_available, image_base and
# image_build.

# This machine's kernel has hybrid cgroups (crun refuses them) and refuses podman's default
# rlimits: runc, cgroupfs and explicit ulimits, on every command. `podman kube play` takes no
# --ulimit and no --runtime of its own, so the same settings also go in a containers.conf
# (image_containers_conf) that CONTAINERS_CONF points at.
P=(podman --cgroup-manager=cgroupfs)
LIMITS=(--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# The runtime libraries: those the Dockerfile installs (libcurl4 for FoundationNetworking,
# which the metrics server's library links).
IMAGE_PACKAGES=libopenblas0-pthread,libdnnl2,libgomp1,libzmq5,libsodium23,libpng16-16,zlib1g,libcurl4,ca-certificates
# What `podman import` gives the root filesystem, as debian:bookworm-slim's configuration
# does: a PATH (an imported image has none, and `kube play` finds no command without it).
IMAGE_BASE_CHANGES=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/bash"]')
# The base image is cached under a tag that changes with the packages and the configuration.
IMAGE_BASE=${MEDMAML_BASE_IMAGE:-localhost/medmaml-base:bookworm-$(printf '%s\n' "$IMAGE_PACKAGES" "${IMAGE_BASE_CHANGES[@]}" | sha256sum | cut -c1-12)}

# Prints why the container tests cannot run here (and returns 1), or nothing.
image_available() {
    local c
    for c in podman mmdebstrap runc; do
        command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "$c is not installed (apt-get install podman runc mmdebstrap)"; return 1; }
    done
    [ "$(id -u)" = 0 ] || { echo "needs root (rootless podman needs subuid ranges)"; return 1; }
}

# Writes a containers.conf with this machine's settings to $1 (for podman kube play).
image_containers_conf() {
    cat > "$1" <<'CONF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
}

# Builds the base image (Debian bookworm with the runtime libraries) unless it is cached.
# $1: a scratch folder.
image_base() {
    "${P[@]}" image exists "$IMAGE_BASE" && return 0
    echo "building the base image $IMAGE_BASE with mmdebstrap" >&2
    TMPDIR=/dev/shm mmdebstrap --variant=apt --quiet \
        --include="$IMAGE_PACKAGES" \
        --dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Languages "none"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$1/rootfs.tar" >&2
    "${P[@]}" import -q "${IMAGE_BASE_CHANGES[@]}" "$1/rootfs.tar" "$IMAGE_BASE" >/dev/null
    rm -f "$1/rootfs.tar"
}

# Builds the image tagged $1 from the repository root, as the Dockerfile's header says:
# the host's binaries and the Swift runtime libraries they link in $REPO/prebuilt/ (removed
# again unless it was there before), OCI labels from git. Further arguments go to
# `podman build` (--target sources, for the context as the build stage sees it).
image_build() {
    local tag=$1; shift
    local made=0
    if [ -e "$REPO/prebuilt" ]; then
        echo "note: building with the binaries already in $REPO/prebuilt/" >&2
    else
        made=1
        mkdir -p "$REPO/prebuilt/lib"
        cp "$BIN/medmaml-coordinator" "$BIN/medmaml-worker" "$REPO/prebuilt/"
        ldd "$BIN/medmaml-coordinator" "$BIN/medmaml-worker" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
            case "$lib" in */swift/*|*/swift-*) cp -L "$lib" "$REPO/prebuilt/lib/" ;; esac
        done
    fi
    local revision version status=0
    revision=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
    version=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
    "${P[@]}" build "${LIMITS[@]}" --pull=never -q -f "$REPO/cluster/Dockerfile" \
        --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE="$IMAGE_BASE" --build-arg INSTALL_LIBS=0 \
        --build-arg REVISION="$revision" --build-arg VERSION="$version" \
        "$@" -t "$tag" "$REPO" >/dev/null || status=$?
    [ $made = 1 ] && rm -rf "$REPO/prebuilt"
    return $status
}
