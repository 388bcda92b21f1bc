#!/usr/bin/env bash
# MedMAML's main job on a fresh machine: install the system libraries (and
# insighttoolkit5-examples, the real-scan fold's MRI), build in release mode, then run
# `medmaml-coordinator demo`: meta-learning against transfer learning and scratch at equal
# compute on the task universe, meta-training on local worker processes, then the same models
# on the real scan. Results, figures and models go to demo-output/ (or the folder given as the
# first argument); extra arguments go to `medmaml-coordinator demo`.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-demo-output}
shift || true
packages="pkg-config libopenblas-dev libdnnl-dev libzmq3-dev libsodium-dev libpng-dev zlib1g-dev insighttoolkit5-examples"
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
# The demo sets its own numerics (oneDNN's AVX2 kernels, every inner step's passes kept), so
# its table is the same on any x86-64 machine; no environment variables are needed.
exec .build/release/medmaml-coordinator demo --out "$OUT" "$@"
