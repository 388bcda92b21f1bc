#!/usr/bin/env bash
# MedMAML's main job on a fresh machine: install the system libraries, build in release mode,
# then meta-train on the built-in synthetic family with local worker processes and meta-test
# on held-out tasks against baselines. Results, pictures and the model go to demo-output/
# (or the folder given as the first argument); extra arguments go to `medmaml-coordinator demo`.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-demo-output}
shift || true
packages="pkg-config libopenblas-dev libdnnl-dev libzmq3-dev libsodium-dev libpng-dev zlib1g-dev"
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing: $missing" >&2
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "building (release)..." >&2
swift build -c release 2>&1 | grep -E "error|Compiling|Build complete" | sed -u 's/^/  /' >&2 || true
test -x .build/release/medmaml-coordinator || { echo "build failed" >&2; exit 1; }
# The demo's model is small (32x32): keep every inner step's passes for the exact
# meta-gradient instead of recomputing them (a few MB per step and thread; same results).
export MEDMAML_KEEP_STEPS=${MEDMAML_KEEP_STEPS:-1000}
# oneDNN's AVX2 kernels on every x86-64 machine, so the table is the README's digit for
# digit (AVX-512 kernels sum in another order and give another table).
export ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-AVX2}
exec .build/release/medmaml-coordinator demo --out "$OUT" "$@"
