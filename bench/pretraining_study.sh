#!/usr/bin/env bash
# Does self-supervised pretraining help? On the synthetic family's held-out tasks, 5-shot,
# mean Dice with 95% CI over the same sampled instances, for:
#   random init + meta-training, pretrained init + the same meta-training budget,
#   pretrained init alone (no labelled task ever seen), random init alone.
# Usage: bench/pretraining_study.sh [steps] [out-folder]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-100}; OUT=${2:-pretraining-study}
swift build -c release >/dev/null 2>&1
B=.build/release/medmaml-coordinator
mkdir -p "$OUT"
common="--meta-batch 4 --in-process --threads 2 --checkpoint-every 0"
echo "pretraining on unlabelled images ($STEPS steps)..." >&2
$B pretrain --outer-steps "$STEPS" $common --checkpoint-dir "$OUT/pretrain" >/dev/null 2>"$OUT/pretrain.log"
echo "meta-training from random init..." >&2
$B train --outer-steps "$STEPS" $common --checkpoint-dir "$OUT/random-meta" >/dev/null 2>"$OUT/random-meta.log"
echo "meta-training from the pretrained init..." >&2
$B train --outer-steps "$STEPS" $common --init-from "$OUT/pretrain/final.safetensors" --checkpoint-dir "$OUT/pretrained-meta" >/dev/null 2>"$OUT/pretrained-meta.log"
$B train --outer-steps 0 $common --checkpoint-dir "$OUT/random" >/dev/null 2>&1
echo "# held-out synthetic tasks, 5-shot, 20 inner steps at test, 8 instances per task, seed 7919"
printf "%-40s %s\n" "model" "Dice (95% CI)"
for m in random-meta:"random init + meta-training" pretrained-meta:"pretrained init + meta-training" \
         pretrain:"pretrained init alone" random:"random init alone"; do
  dir=${m%%:*}; label=${m#*:}
  line=$($B evaluate --checkpoint "$OUT/$dir/final.safetensors" --dataset synthetic --instances-per-task 8 \
         --steps 20 --threads 2 --seed 7919 2>/dev/null | sed -n 3p)
  printf "%-40s %s\n" "$label" "$(echo "$line" | awk '{print $2, $3, $4}')"
done
