#!/usr/bin/env bash
# The alerting rules and the Prometheus configuration of cluster/monitoring, with promtool:
#   1. alerts.yml parses as rules, and alerts.test.yml's cases hold: each alert fires when it
#      should, with its labels (run among them) and text, and not otherwise.
#   2. prometheus.yml parses and loads alerts.yml. Debian's promtool is built without
#      Kubernetes service discovery, so where it lacks it, a copy without the
#      kubernetes_sd_configs job is checked (check_k8s.py checks the annotations that job reads).
# That every metric the rules and the dashboard name is one the binaries serve is checked on
# real scrapes (Tests/IntegrationTests/ServiceTests.swift).
# Exit 0: passed; 77: skipped (reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
command -v promtool >/dev/null || { echo "SKIP: promtool is not installed (apt-get install prometheus)" >&2; exit 77; }
MONITORING=$REPO/cluster/monitoring
WORK=$(mktemp -d /tmp/medmaml-alerts.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

promtool check rules "$MONITORING/alerts.yml" >&2
(cd "$MONITORING" && promtool test rules alerts.test.yml) >&2
# The cases must cover every alert: a rule without a test is a rule nobody has seen fire.
rules=$(sed -n 's/^ *- alert: *//p' "$MONITORING/alerts.yml" | sort -u)
tested=$(sed -n 's/^ *alertname: *//p' "$MONITORING/alerts.test.yml" | sort -u)
[ "$rules" = "$tested" ] || { echo "FAIL: alerts without a test case: $(comm -23 <(echo "$rules") <(echo "$tested") | tr '\n' ' ')" >&2; exit 1; }

cp "$MONITORING/prometheus.yml" "$MONITORING/alerts.yml" "$WORK/"
if ! promtool check config "$WORK/prometheus.yml" >"$WORK/check.log" 2>&1; then
    if grep -q 'field kubernetes_sd_configs not found' "$WORK/check.log"; then
        echo "note: this promtool has no Kubernetes service discovery; checking prometheus.yml without its Kubernetes job" >&2
        python3 - "$WORK/prometheus.yml" <<'PY'
import sys, yaml
path = sys.argv[1]
config = yaml.safe_load(open(path))
config["scrape_configs"] = [c for c in config["scrape_configs"] if "kubernetes_sd_configs" not in c]
yaml.safe_dump(config, open(path, "w"), sort_keys=False)
PY
        promtool check config "$WORK/prometheus.yml" >&2 || { echo "FAIL: prometheus.yml" >&2; exit 1; }
    else
        cat "$WORK/check.log" >&2
        echo "FAIL: prometheus.yml" >&2
        exit 1
    fi
fi
echo "alert rules: $(echo "$rules" | tr '\n' ' ')" >&2
echo "alerts test passed" >&2
