#!/usr/bin/env bash
# Time per W1 meta-step: --in-process --threads 2 against one local worker with 2 threads on
# loopback, plaintext (--insecure) and with CURVE encryption (the default for local workers).
# Per-step times come from metrics.jsonl; the first step (warm-up) is left out.
# Usage: bench/overhead.sh [steps] [order]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8}; ORDER=${2:-second}
swift build -c release >/dev/null 2>&1
B=.build/release/medmaml-coordinator
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
per_step() { python3 -c "import json,sys; s=[json.loads(l)['seconds'] for l in open(sys.argv[1])][1:]; print(f'{sum(s)/len(s):.4f}')" "$1"; }
run() { # name, extra args
  $B train --outer-steps "$STEPS" --order "$ORDER" --meta-batch 8 --checkpoint-every 0 \
     --checkpoint-dir "$tmp/$1" --metrics "$tmp/$1.jsonl" "${@:2}" >/dev/null 2>"$tmp/$1.log"
  echo "$1 $(per_step "$tmp/$1.jsonl")"
}
echo "# W1, meta-batch 8, order $ORDER, seconds per meta-step (mean of steps 2..$STEPS)"
inproc=$(run in_process --in-process --threads 2 | awk '{print $2}')
plain=$(run plaintext --local-workers 1 --threads 2 --insecure | awk '{print $2}')
curve=$(run curve --local-workers 1 --threads 2 | awk '{print $2}')
echo "in_process_1x2_seconds_per_step $inproc"
echo "worker_1x2_plaintext_seconds_per_step $plain"
echo "worker_1x2_curve_seconds_per_step $curve"
awk -v a="$inproc" -v b="$plain" -v c="$curve" 'BEGIN {
  printf "overhead_plaintext_vs_in_process %+.2f%%\n", (b/a-1)*100
  printf "overhead_curve_vs_in_process %+.2f%%\n", (c/a-1)*100
  printf "cost_of_encryption_vs_plaintext %+.2f%%\n", (c/b-1)*100 }'
