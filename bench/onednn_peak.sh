#!/usr/bin/env bash
# One core's matrix-product peak through oneDNN, Float32 against bfloat16 inputs, on the
# kernels bf16 precision pins (avx512-bf16): the most bf16 precision can gain on this machine.
# Needs a C compiler and libdnnl-dev. Usage: bench/onednn_peak.sh
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -fopenmp onednn_peak.c -o "$out/onednn_peak" -ldnnl
OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 "$out/onednn_peak"
