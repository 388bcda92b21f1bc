#!/usr/bin/env bash
# Peak resident memory of one second-order W1 meta-gradient with 1 and 20 inner steps:
# MedMAML (`meta-gradient`, by default keeping the first 2 inner steps' passes within 256 MB)
# and PyTorch (create_graph=True), measured with /usr/bin/time -v; then MedMAML keeping 0
# (the flattest), 5 and all inner steps' passes (MEDMAML_KEEP_STEPS), which trades one tape
# per kept step for speed (bench/keep_steps.sh). Every setting must give the default's bits.
# W2 with SIZE=128.
# Usage: [SIZE=128] bench/memory.sh [python-with-torch]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}; SIZE=${SIZE:-64}
swift build -c release --product medmaml-coordinator >/dev/null 2>&1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# A W1 parameter file and a 64x64 task (K = Q = 5), written by PyTorch.
"$PY" - "$tmp" "$SIZE" <<'PY'
import sys, torch
sys.path.insert(0, "Tests/Reference"); sys.path.insert(0, "bench")
from w1 import UNetW1
from pytorch_w1 import make_task
from safetensors.torch import save_file
torch.manual_seed(0)
save_file({n: p.detach().contiguous() for n, p in UNetW1().named_parameters()}, sys.argv[1] + "/P.safetensors")
xs, ms, xq, mq = make_task(torch.Generator().manual_seed(0), size=int(sys.argv[2]))
save_file({"support.images": xs, "support.masks": ms, "query.images": xq, "query.masks": mq}, sys.argv[1] + "/T.safetensors")
PY
peak() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'; }
for steps in 1 20; do
  ours=$(peak env -u MEDMAML_KEEP_STEPS .build/release/medmaml-coordinator meta-gradient --params "$tmp/P.safetensors" --task "$tmp/T.safetensors" \
         --inner-steps $steps --order second --image-size "$SIZE" --out "$tmp/G$steps.safetensors")
  theirs=$(peak "$PY" bench/pytorch_w1.py memory --inner-steps $steps --image-size "$SIZE")
  echo "inner_steps $steps medmaml_peak_rss_mb $((ours / 1024)) pytorch_peak_rss_mb $((theirs / 1024))"
  eval "ours_$steps=$ours theirs_$steps=$theirs"
done
awk -v a="$ours_1" -v b="$ours_20" -v c="$theirs_1" -v d="$theirs_20" \
  'BEGIN {printf "growth_20_over_1 medmaml %.2fx pytorch %.2fx\n", b/a, d/c}'
for keep in 0 5 20; do
  for steps in 1 20; do
    kept=$(MEDMAML_KEEP_STEPS=$keep peak .build/release/medmaml-coordinator meta-gradient --params "$tmp/P.safetensors" \
           --task "$tmp/T.safetensors" --inner-steps $steps --order second --image-size "$SIZE" --out "$tmp/K.safetensors")
    cmp -s "$tmp/G$steps.safetensors" "$tmp/K.safetensors" || { echo "keep $keep changed the meta-gradient" >&2; exit 1; }
    echo "inner_steps $steps keep_steps $keep medmaml_peak_rss_mb $((kept / 1024))"
  done
done
