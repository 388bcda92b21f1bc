#!/usr/bin/env bash
# Speed and memory of each --keep-steps setting on W1 second order (5 inner steps):
# `bench maml` tasks/s on 2 task threads and its peak resident memory, the settings
# alternated over ROUNDS rounds in one run (this machine is noisy: read the medians).
# Usage: bench/keep_steps.sh [rounds] [tasks]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; TASKS=${2:-16}
swift build -c release --product medmaml-coordinator >/dev/null 2>&1
out=$(mktemp); trap 'rm -f "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for keep in 0 1 2 3 4 5; do
    line=$( { /usr/bin/time -v .build/release/medmaml-coordinator bench maml --order second --keep-steps "$keep" \
              --threads 2 --tasks "$TASKS" 2>&1 >/dev/fd/3 | awk '/Maximum resident/ {print $6}'; } 3>&1 )
    tps=$(echo "$line" | awk '/^tasks_per_second/ {print $2}')
    rss=$(echo "$line" | awk 'NF == 1 && $1 ~ /^[0-9]+$/ {print $1}')
    echo "$keep $tps $rss" >>"$out"
    echo "round $round keep $keep tasks_per_second $tps peak_rss_mb $((rss / 1024))"
  done
done
echo "# medians over $ROUNDS rounds (speed-up against keep 0 in the same run)"
base=$(awk '$1 == 0 {print $2}' "$out" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
for keep in 0 1 2 3 4 5; do
  tps=$(awk -v k="$keep" '$1 == k {print $2}' "$out" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  rss=$(awk -v k="$keep" '$1 == k {print $3}' "$out" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  awk -v k="$keep" -v t="$tps" -v b="$base" -v r="$rss" \
    'BEGIN {printf "keep_steps %d tasks_per_second %.3f speedup %.2fx peak_rss_mb %d\n", k, t, t / b, r / 1024}'
done
