#!/usr/bin/env bash
# Prints `final_params_sha256` of thirteen named training configurations, one per line
# ("name hash"). A refactoring that claims "no behaviour change" must print the same lines
# before and after, on the same machine (the hashes depend on the CPU kernels).
#
#   bench/reference_hashes.sh [COORDINATOR] > hashes.txt
#
# COORDINATOR defaults to .build/release/medmaml-coordinator; every run is in process on
# two threads, small enough to take a few seconds each.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/release/medmaml-coordinator}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
small=(--image-size 32 --base-channels 8 --outer-steps 4 --meta-batch 4 --in-process --threads 2 --log-level warning)
decathlon=Tests/SharedTests/Fixtures/decathlon/Task99_Mini

run() {
    local name=$1; shift
    local hash
    hash=$("$BIN" "$@" --checkpoint-dir "$OUT/$name" 2>/dev/null | awk '/^final_params_sha256/ {print $2}')
    echo "$name ${hash:-FAILED}"
}

run w1-second train --outer-steps 2 --meta-batch 2 --in-process --threads 2 --log-level warning
run small-second train "${small[@]}"
run small-first train "${small[@]}" --order first
run small-reptile train "${small[@]}" --order reptile
run small-maml++ train "${small[@]}" --learned-inner-rates --multi-step-loss --cosine --clip-norm 10
run small-anil train "${small[@]}" --head-only-inner-loop --inner-lr 0.1
run small-protomaml++ train "${small[@]}" --prototype-head --learned-inner-rates --multi-step-loss
run multi-union train "${small[@]}" --dataset synthetic-multi --union-tasks
run pseudo-beside train "${small[@]}" --pseudo-tasks
run decathlon train --dataset "$decathlon" --image-size 16 --base-channels 4 --outer-steps 3 --meta-batch 2 --shots 2 --query 1 \
    --in-process --threads 2 --log-level warning
run decathlon-squash train --dataset "$decathlon" --image-size 16 --base-channels 4 --outer-steps 3 --meta-batch 2 --shots 2 --query 1 \
    --in-process --threads 2 --log-level warning --spacing squash
run pretrain-superpixel pretrain "${small[@]}"
run pretrain-masked pretrain --pretext masked --image-size 32 --base-channels 8 --outer-steps 20 --meta-batch 2 --log-level warning
