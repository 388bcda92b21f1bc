#!/usr/bin/env bash
# W1 engine timings, MedMAML and PyTorch on this machine in one run, with the ratios.
# Usage: bench/compare_engine.sh [python-with-torch]   (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
swift build -c release --product medmaml-coordinator >/dev/null
ours=$(.build/release/medmaml-coordinator bench engine)
theirs=$("$PY" bench/pytorch_w1.py engine)
echo "$ours"
echo "# PyTorch $("$PY" -c 'import torch; print(torch.__version__)'), 1 thread"
echo "$theirs"
echo "# ratio = MedMAML time / PyTorch time (below 1 means MedMAML is faster)"
for op in forward forward+backward hessian-vector; do
  a=$(echo "$ours" | awk -v op="$op" 'index($0, op" ") == 1 || index($0, op"-") == 1 {for (i=1;i<=NF;i++) if ($i=="ms") print $(i-1)}' | head -1)
  key=$(echo "$op" | sed 's/hessian-vector/hessian-vector_product/')
  b=$(echo "$theirs" | awk -v k="${key}_ms" '$1==k {print $2}')
  awk -v o="$op" -v a="$a" -v b="$b" 'BEGIN {printf "ratio_%s %.3f  (%.2f ms vs %.2f ms)\n", o, a/b, a, b}'
done
