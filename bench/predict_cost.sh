#!/usr/bin/env bash
# What predict costs on large volumes (issue 34's targets): W1's model (64 px, 16 channels,
# depth 2) trained briefly at the real-scan fold's 2 mm spacing (its weights do not change the
# cost), adapted with 100 Adam steps from 5 slices of a 256x256x40 support case, then segmenting
# 256x256xZ cases at the same 2 mm (one 256x256 slice at the model's spacing: 3x3 windows of
# 128 px at overlap 0.5). For each Z: wall time and peak resident memory (/usr/bin/time) of
# adapt+predict, and of predict alone with the saved adaptation (--adapted).
# EXTRA holds more predict flags for the adapting run (for example --whole-support-slices).
# Usage: [EXTRA=...] bench/predict_cost.sh [threads] [Z values...]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}; shift || true
ZS=${*:-50 150 300}
BIN=.build/release/medmaml-coordinator
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
$BIN datasets itk-fold --out "$W/itk" >/dev/null 2>&1
$BIN train --dataset "$W/itk" --image-size 64 --spacing median --hold-out "*/label-2/*" --order first --outer-steps 5 \
    --meta-batch 4 --in-process --threads "$THREADS" --seed 0 --checkpoint-dir "$W/model" --log-level warning >/dev/null
python3 bench/make_volume.py "$W/support.nii.gz" "$W/support-label.nii.gz" 256 256 40 2 1
model=(--checkpoint "$W/model/final.safetensors" --label 1 --window 128 --overlap 0.5 --threads "$THREADS")
measure() { # label, then the command; prints wall seconds and peak RSS in MB
    /usr/bin/time -f "%e %M" -o "$W/time" "${@:2}" >/dev/null 2>"$W/log" || { cat "$W/log" >&2; exit 1; }
    read -r secs kb < "$W/time"
    printf '%-28s %8.1f s  %8.0f MB\n' "$1" "$secs" "$((kb / 1024))"
}
echo "# $(nproc) cores, --threads $THREADS; volume sizes in MB are the float32 input alone"
for Z in $ZS; do
    mkdir -p "$W/in-$Z"
    python3 bench/make_volume.py "$W/in-$Z/case.nii.gz" "$W/ref-$Z.nii.gz" 256 256 "$Z" 2 2
    echo "## 256x256x$Z ($((256 * 256 * Z * 4 / 1048576)) MB)"
    measure "adapt (5 slices) + predict" $BIN predict "${model[@]}" --support "$W/support.nii.gz" \
        --support-masks "$W/support-label.nii.gz" --shots 5 --steps 100 --adam-rate 0.001 ${EXTRA:-} \
        -i "$W/in-$Z" -o "$W/out-$Z" --save-adapted "$W/adapted-$Z.safetensors"
    measure "predict alone" $BIN predict "${model[@]}" --adapted "$W/adapted-$Z.safetensors" -i "$W/in-$Z" -o "$W/again-$Z"
done
