#!/usr/bin/env bash
# Runs cluster/k8s for real with `podman kube play`: the coordinator's and the workers' Jobs
# rendered into the Pods their controllers would create (k8s_render.py: kustomize's rendering,
# then one Pod per Job replica), on one internal podman network, from the image built from the
# repository root (image-lib.sh). The manifests are the repository's, with what a test overlay
# changes: keys made here, a small run file on a PNG dataset (Tests/SharedTests/Fixtures/pngtasks
# on the data volume, so /data and --data-root are used), two workers of one thread each.
#   1. The run ends with the final_params_sha256 of the same run file `train --in-process`; the
#      readiness probes' endpoints answer with run-labelled metrics; the pods run as the
#      restricted profile says (user 10001, no privileges, read-only root and /data, keys
#      root:10001 0440); every worker exits 0 told "the run is complete", and no container
#      restarts after that.
#   2. The same, with the coordinator's pod deleted mid-run and created again as the Job
#      controller would (it resumes from the same claim), then a worker's process killed and
#      restarted in its pod by the restart policy (OnFailure), as the kubelet would.
# What podman 4.3 cannot play is replaced by what Kubernetes would make of it (k8s_render.py
# says how: Secret volumes, the Service's name); the Jobs' controllers are this script.
# Exit 0: passed; 77: skipped (reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/image-lib.sh"
why=$(image_available) || { echo "SKIP: $why" >&2; exit 77; }
python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: needs python3 with PyYAML (apt-get install python3-yaml)" >&2; exit 77; }
[ -x "$BIN/medmaml-coordinator" ] || { echo "no $BIN/medmaml-coordinator: build first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/medmaml-k8s-play.XXXXXX)
export CONTAINERS_CONF=$WORK/containers.conf
image_containers_conf "$CONTAINERS_CONF"
IMAGE=localhost/medmaml:k8s-play-$$
NET=medmaml-k8s-play-$$
SUFFIX=-k8s-play-$$
WORKERS=2
STEPS=40
# The coordinator's pod carries its Service's name (podman's DNS knows pods by name).
PODS=(medmaml-coordinator medmaml-workers-0 medmaml-workers-1)
CONTAINERS=(medmaml-coordinator-coordinator medmaml-workers-0-worker medmaml-workers-1-worker)
for p in "${PODS[@]}"; do
    ! "${P[@]}" pod exists "$p" || { echo "FAIL: a pod named $p exists already (another run of this test?)" >&2; exit 1; }
done
cleanup() {
    status=$?
    if [ $status -ne 0 ]; then
        for c in "${CONTAINERS[@]}"; do echo "--- $c" >&2; "${P[@]}" logs "$c" 2>&1 | tail -15 >&2 || true; done
    fi
    "${P[@]}" pod rm -f -t 0 "${PODS[@]}" >/dev/null 2>&1 || true
    "${P[@]}" volume rm -f "medmaml-checkpoints$SUFFIX" "medmaml-data$SUFFIX" "medmaml-run$SUFFIX" \
        $(for p in "${PODS[@]}"; do echo "tmp-$p$SUFFIX"; done) >/dev/null 2>&1 || true
    "${P[@]}" network rm -f "$NET" >/dev/null 2>&1 || true
    "${P[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

image_base "$WORK"
image_build "$IMAGE"

# The manifests with the test's overlay: keys, run file, two one-thread workers.
cp -r "$REPO/cluster/k8s" "$WORK/k8s"
rm -rf "$WORK/k8s/keys" && mkdir "$WORK/k8s/keys"
"$BIN/medmaml-coordinator" keygen --out "$WORK/k8s/keys/coordinator" >/dev/null
"$BIN/medmaml-coordinator" keygen --out "$WORK/k8s/keys/worker" >/dev/null
cat > "$WORK/run.yaml" <<EOF
dataset: /data/pngtasks
image-size: 32
base-channels: 8
meta-batch: 4
shots: 2
query: 1
seed: 7
outer-steps: $STEPS
checkpoint-every: 2
heartbeat: 0.25
EOF
python3 - "$WORK/k8s" "$WORK/run.yaml" "$WORKERS" <<'PY'
import sys, yaml
folder, run_file, workers = sys.argv[1], sys.argv[2], sys.argv[3]
def edit(name, change):
    path = f"{folder}/{name}"
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    for d in docs:
        change(d)
    yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
def set_option(args, flag, value):
    args[args.index(flag) + 1] = value
def run_file_in(d):
    if d["kind"] == "ConfigMap":
        d["data"]["run.yaml"] = open(run_file).read()
def coordinator(d):
    if d["kind"] == "Job":
        set_option(d["spec"]["template"]["spec"]["containers"][0]["args"], "--min-workers", workers)
def worker(d):
    d["spec"]["parallelism"] = int(workers)
    c = d["spec"]["template"]["spec"]["containers"][0]
    set_option(c["args"], "--threads", "1")
    c["resources"]["requests"]["cpu"] = "1"
edit("configmap.yaml", run_file_in)
edit("coordinator.yaml", coordinator)
edit("workers.yaml", worker)
PY
python3 "$REPO/cluster/tests/k8s_render.py" pods "$WORK/k8s" "$WORK/play" --image "medmaml=$IMAGE" \
    --secrets "$WORK/secrets" --suffix="$SUFFIX" --workers "$WORKERS"

# The data volume (the medmaml-data claim) holds the dataset; the reference run reads the same files.
"${P[@]}" volume create "medmaml-data$SUFFIX" >/dev/null
tar -C "$REPO/Tests/SharedTests/Fixtures" -cf - pngtasks | "${P[@]}" volume import "medmaml-data$SUFFIX" -
expected=$("$BIN/medmaml-coordinator" train --config "$WORK/run.yaml" --dataset "$REPO/Tests/SharedTests/Fixtures/pngtasks" \
           --in-process --threads 2 --checkpoint-dir "$WORK/reference" 2>/dev/null | awk '/^final_params_sha256/ {print $2}')
[ -n "$expected" ] || fail "the in-process reference run printed no hash"
"${P[@]}" network create --internal "$NET" >/dev/null

play() { "${P[@]}" kube play --network "$NET" --configmap "$WORK/play/configmaps.yaml" "$WORK/play/$1.yaml" >/dev/null; }
restarts() { "${P[@]}" inspect -f '{{.RestartCount}}' "$1"; }
exit_code() { "${P[@]}" inspect -f '{{.State.ExitCode}} {{.State.Status}}' "$1"; }
logs() { "${P[@]}" logs "$1" 2>&1; }
# Whether container $1's log has a line matching the extended regex $2 (read whole: with
# pipefail, `grep -q` ending the pipe early would fail it).
logged() { local text; text=$(logs "$1"); grep -qE "$2" <<<"$text"; }
# Waits until it has.
wait_log() {
    local i
    for i in $(seq 1200); do logged "$1" "$2" && return 0; sleep 0.1; done
    fail "$1 never logged /$2/"
}
# Waits until container $1 has logged outer step $2 or a later one.
wait_step() {
    local i text last
    for i in $(seq 1200); do
        text=$(logs "$1")
        last=$(sed -n 's|^step \([0-9]*\)/.*|\1|p' <<<"$text" | tail -1)
        [ -n "$last" ] && [ "$last" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "$1 never reached step $2"
}
# GETs the readiness probe of pod $1's container (path and port from its manifest), as the kubelet would.
probe() {
    local pod=$1 ip
    ip=$("${P[@]}" pod inspect -f '{{.InfraContainerID}}' "$pod" | xargs "${P[@]}" inspect -f "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    python3 - "$WORK/play" "$pod" "$ip" <<'PY'
import sys, time, urllib.request, yaml
folder, pod, ip = sys.argv[1:]
name = "coordinator" if pod == "medmaml-coordinator" else "worker-" + pod.rsplit("-", 1)[1]
c = yaml.safe_load(open(f"{folder}/{name}.yaml"))["spec"]["containers"][0]
probe = c["readinessProbe"]["httpGet"]
port = probe["port"]
for _ in range(100):
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{probe['path']}", timeout=2) as r:
            if r.status == 200:
                print(r.read().decode())
                sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(f"no answer from {pod}'s readiness probe http://{ip}:{port}{probe['path']}")
PY
}

# The restricted profile, as the coordinator's container runs it.
check_security() {
    local c=medmaml-coordinator-coordinator status
    status=$("${P[@]}" exec "$c" cat /proc/self/status)
    [ "$("${P[@]}" exec "$c" id -u)" = 10001 ] && [ "$("${P[@]}" exec "$c" id -g)" = 10001 ] || fail "not running as 10001:10001"
    grep -qE '^NoNewPrivs:\s+1' <<<"$status" || fail "privilege escalation is possible"
    grep -qE '^CapEff:\s+0+$' <<<"$status" && grep -qE '^CapBnd:\s+0+$' <<<"$status" || fail "capabilities left: $(grep Cap <<<"$status")"
    grep -qE '^Seccomp:\s+2' <<<"$status" || fail "no seccomp filter"
    ! "${P[@]}" exec "$c" touch /probe 2>/dev/null || fail "the root filesystem is writable"
    ! "${P[@]}" exec "$c" touch /data/probe 2>/dev/null || fail "/data is writable"
    "${P[@]}" exec "$c" touch /checkpoints/.probe && "${P[@]}" exec "$c" rm /checkpoints/.probe || fail "/checkpoints is not writable"
    [ "$("${P[@]}" exec "$c" stat -L -c '%u:%g %a' /keys/coordinator.key)" = "0:10001 440" ] || fail "the key is not root:10001 0440"
    ! "${P[@]}" exec "$c" test -e /keys/worker.key || fail "the coordinator's pod holds the worker's secret key"
    echo "security: user 10001, no new privileges, no capabilities, seccomp, read-only / and /data, key root:10001 0440" >&2
}

# Waits for the run to end and checks how: the hash, every worker told and exited 0, and no
# restart after the end.
check_end() {
    local label=$1 rc got before after c
    rc=$(timeout 600 "${P[@]}" wait "${CONTAINERS[0]}") || rc=timeout
    logs "${CONTAINERS[0]}" > "$WORK/coordinator-$label.log"
    [ "$rc" = 0 ] || fail "($label) the coordinator exited with $rc: $(tail -5 "$WORK/coordinator-$label.log")"
    got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/coordinator-$label.log")
    [ "$got" = "$expected" ] || fail "($label) final_params_sha256 $got, in-process $expected"
    for c in "${CONTAINERS[@]:1}"; do
        rc=$(timeout 120 "${P[@]}" wait "$c") || rc=timeout
        [ "$rc" = 0 ] || fail "($label) $c exited with $rc"
        logged "$c" "shut down by the coordinator: the run is complete" || fail "($label) $c was not told the run is complete"
    done
    before=$(for c in "${CONTAINERS[@]}"; do restarts "$c"; done | tr '\n' ' ')
    sleep 5
    after=$(for c in "${CONTAINERS[@]}"; do restarts "$c"; done | tr '\n' ' ')
    [ "$before" = "$after" ] || fail "($label) containers restarted after the run's end: $before -> $after"
    for c in "${CONTAINERS[@]}"; do
        [ "$(exit_code "$c")" = "0 exited" ] || fail "($label) $c: $(exit_code "$c")"
    done
    echo "$label: final_params_sha256 matches the in-process run ($expected); workers exited 0, told the run is complete; restarts $after" >&2
}

reset_pods() {
    "${P[@]}" pod rm -f -t 0 "${PODS[@]}" >/dev/null
    "${P[@]}" volume rm -f "medmaml-checkpoints$SUFFIX" >/dev/null 2>&1 || true
}

# 1. A run from start to end.
started=$SECONDS
for pod in coordinator worker-0 worker-1; do play "$pod"; done
metrics=$(probe medmaml-coordinator)
grep -qE '^medmaml_workers_required\{run="[0-9a-f]{32}"\} 2' <<<"$metrics" \
    || fail "the coordinator's readiness endpoint serves no run-labelled medmaml_workers_required 2: $(head -c 300 <<<"$metrics")"
probe medmaml-workers-0 >/dev/null
probe medmaml-workers-1 >/dev/null
echo "readiness probes: /metrics answers on the coordinator and both workers" >&2
check_security
check_end plain
echo "plain run: $((SECONDS - started)) s" >&2
reset_pods

# 2. The coordinator's pod lost and replaced mid-run; a worker's process killed and restarted.
started=$SECONDS
for pod in coordinator worker-0 worker-1; do play "$pod"; done
wait_step "${CONTAINERS[0]}" 6
"${P[@]}" pod rm -f -t 0 medmaml-coordinator >/dev/null
echo "deleted the coordinator's pod mid-run; the Job controller makes a new one" >&2
play coordinator
wait_log "${CONTAINERS[0]}" "resuming run [0-9a-f]+ at step"
resumed=$(logs "${CONTAINERS[0]}" | sed -n 's/.*resuming run [0-9a-f]* at step \([0-9]*\).*/\1/p' | head -1)
wait_step "${CONTAINERS[0]}" $((resumed + 4))
kill -9 "$("${P[@]}" inspect -f '{{.State.Pid}}' "${CONTAINERS[1]}")"
echo "killed ${CONTAINERS[1]}'s process at step ~$((resumed + 4)); its restart policy restarts it" >&2
for i in $(seq 300); do [ "$(restarts "${CONTAINERS[1]}")" -ge 1 ] && break; sleep 0.1; done
[ "$(restarts "${CONTAINERS[1]}")" = 1 ] || fail "the killed worker was not restarted in its pod (restarts $(restarts "${CONTAINERS[1]}"))"
check_end killed
logged "${CONTAINERS[0]}" "resuming run" || fail "the replaced coordinator did not resume"
echo "killed run: resumed at step $resumed; $((SECONDS - started)) s" >&2
echo "k8s play test passed" >&2
