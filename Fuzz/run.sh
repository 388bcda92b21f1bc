#!/usr/bin/env bash
# Builds the libFuzzer targets with AddressSanitizer and runs each for SECONDS on its committed
# seed corpus (Fuzz/Corpus/<target>). Any crash fails the script, and libFuzzer leaves the input
# as crash-* in Fuzz/findings/: turn it into a regression test.
#   Fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}
swift build -c release -Xswiftc -sanitize=fuzzer,address 2>&1 | tail -3
mkdir -p findings
for target in Wire NIfTI PNG Safetensors; do
    work=$(mktemp -d)           # new inputs found this run; the committed corpus stays as it is
    echo "== Fuzz$target for $SECONDS_EACH s"
    .build/release/Fuzz$target -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -artifact_prefix=findings/ \
        -print_final_stats=1 "$work" "Corpus/$target" 2>&1 | grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" || true
    rm -rf "$work"
    if ls findings/crash-* findings/leak-* findings/oom-* findings/timeout-* >/dev/null 2>&1; then
        echo "Fuzz$target found a failing input:" >&2; ls findings >&2; exit 1
    fi
done
echo "fuzzing passed"
