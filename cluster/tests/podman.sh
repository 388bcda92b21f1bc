#!/usr/bin/env bash
# Builds the container image (cluster/Dockerfile) and runs a cluster of its containers with
# podman: a coordinator and two workers on an internal podman network, as the unprivileged
# user, read-only root filesystems, CURVE keys mounted read-only.
#   1. A 12-step run ends with the final_params_sha256 of an in-process run of the same seed,
#      and its Prometheus endpoint answers inside the network.
#   2. The same run with one worker container killed mid-run ends with the same hash.
# The image is built from the repository root as cluster/tests/image-lib.sh describes
# (base image from the Debian mirror, the host's binaries).
# Exit 0: passed; 77: skipped (reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/image-lib.sh"
why=$(image_available) || { echo "SKIP: $why" >&2; exit 77; }
IMAGE=localhost/medmaml:podman-test-$$
WORK=$(mktemp -d /tmp/medmaml-podman.XXXXXX)
NET=medmaml-test-$$
NAMES=(mm-coord-$$ mm-w1-$$ mm-w2-$$)
cleanup() {
    status=$?
    if [ $status -ne 0 ]; then
        for n in "${NAMES[@]}"; do echo "--- $n" >&2; "${P[@]}" logs "$n" 2>&1 | tail -15 >&2 || true; done
    fi
    "${P[@]}" rm -f -t 0 "${NAMES[@]}" >/dev/null 2>&1 || true
    "${P[@]}" network rm -f "$NET" >/dev/null 2>&1 || true
    "${P[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT INT TERM

# 1. The image (the base image is cached between runs).
image_base "$WORK"
image_build "$IMAGE"
"${P[@]}" run --rm "${LIMITS[@]}" --read-only "$IMAGE" --help >/dev/null

# 2. Keys (readable by the containers' user only) and the network.
"$BIN/medmaml-coordinator" keygen --out "$WORK/keys/coordinator" >/dev/null
"$BIN/medmaml-coordinator" keygen --out "$WORK/keys/worker" >/dev/null
mkdir -p "$WORK/keys/authorized" && cp "$WORK/keys/worker.pub" "$WORK/keys/authorized/"
chown -R 10001:10001 "$WORK/keys"
"${P[@]}" network create --internal "$NET" >/dev/null

# Heartbeats every 0.25 s (the workers adopt it): the killed worker is noticed after 1.25 s,
# and the finished run waits at most 6.25 s for it to come back.
FLAGS=(--image-size 32 --base-channels 8 --meta-batch 4 --seed 53 --checkpoint-every 0 --outer-steps 12 --heartbeat 0.25)
expected=$("$BIN/medmaml-coordinator" train "${FLAGS[@]}" --in-process --threads 2 --checkpoint-dir "$WORK/ref" 2>/dev/null \
    | awk '/^final_params_sha256/ {print $2}')
[ -n "$expected" ] || { echo "FAIL: the in-process reference run printed no hash" >&2; exit 1; }

COMMON=(--network "$NET" "${LIMITS[@]}" --user 10001:10001 --read-only --tmpfs /tmp:rw,size=64m,mode=1777
        -v "$WORK/keys:/keys:ro")
run_cluster() {  # $1: label; $2: "kill" to kill a worker mid-run
    local out="$WORK/out-$1"
    mkdir -p "$out" && chown 10001:10001 "$out"
    "${P[@]}" run -d --name "${NAMES[0]}" "${COMMON[@]}" -v "$out:/var/lib/medmaml/out" "$IMAGE" \
        train "${FLAGS[@]}" --bind 'tcp://*:5555' --min-workers 2 --secret-key /keys/coordinator.key \
        --authorized-keys /keys/authorized --checkpoint-dir out --metrics-address 0.0.0.0:9464 --log-level info >/dev/null
    for w in 1 2; do
        "${P[@]}" run -d --name "${NAMES[$w]}" "${COMMON[@]}" --entrypoint medmaml-worker "$IMAGE" \
            --connect "tcp://${NAMES[0]}:5555" --name "w$w" --secret-key /keys/worker.key \
            --coordinator-key /keys/coordinator.pub --idle-timeout 120 --metrics-address 0.0.0.0:9465 >/dev/null
    done
    if [ "${2:-}" = kill ]; then
        for i in $(seq 600); do
            "${P[@]}" logs "${NAMES[0]}" 2>&1 | grep -q "^step [3-9]/" && break
            sleep 0.2
        done
        "${P[@]}" kill "${NAMES[1]}" >/dev/null
        echo "killed worker container ${NAMES[1]} mid-run" >&2
    else
        # The coordinator's metrics, scraped from a worker container's network namespace
        # would need a client in the image; the host reaches the internal network's bridge.
        local ip
        ip=$("${P[@]}" inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "${NAMES[0]}")
        for i in $(seq 100); do
            python3 - "$ip" >"$WORK/metrics-$1.txt" 2>/dev/null <<'PY' && break
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}:9464/metrics", timeout=2).read().decode())
PY
            sleep 0.3
        done
        grep -q '^medmaml_workers_connected' "$WORK/metrics-$1.txt" \
            || { echo "FAIL: the coordinator container's /metrics did not answer with medmaml metrics" >&2; exit 1; }
    fi
    local rc
    rc=$(timeout 600 "${P[@]}" wait "${NAMES[0]}") || rc=timeout
    "${P[@]}" logs "${NAMES[0]}" >"$WORK/coord-$1.out" 2>"$WORK/coord-$1.err"
    [ "$rc" = 0 ] || { echo "FAIL ($1): the coordinator container exited with $rc" >&2; tail -20 "$WORK/coord-$1.err" >&2; exit 1; }
    got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/coord-$1.out")
    [ "$got" = "$expected" ] || { echo "FAIL ($1): final_params_sha256 $got, in-process $expected" >&2; exit 1; }
    [ -f "$out/final.safetensors" ] && [ -f "$out/run.yaml" ] || { echo "FAIL ($1): no final.safetensors/run.yaml in the volume" >&2; exit 1; }
    "${P[@]}" rm -f -t 0 "${NAMES[@]}" >/dev/null
    echo "$1: final_params_sha256 matches the in-process run ($expected)" >&2
}

run_cluster plain
run_cluster killed kill
echo "podman cluster test passed" >&2
