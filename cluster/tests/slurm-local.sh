#!/usr/bin/env bash
# Runs cluster/slurm/medmaml.sbatch on a real single-host Slurm: munged, slurmctld and slurmd
# started here (no systemd; SlurmUser=root, proctrack/linuxproc, task/none). The node is
# declared with 4 CPUs (SlurmdParameters=config_overrides, whatever this machine has), so that a
# job of 3 one-CPU tasks (the coordinator's slot and 2 workers) fits without overcommitting.
#   1. A job whose arguments hold a space (a run file in "my runs/") and globs that would match
#      files in its working folder (--hold-out 'synthetic/paired/*') ends with the
#      final_params_sha256 of the same arguments in process.
#   2. A job sent SIGTERM mid-run (scancel --signal=TERM --batch, as --signal=B:TERM@120 does
#      before a time limit) checkpoints, requeues itself, resumes under the same job id and
#      ends with the final_params_sha256 of an uninterrupted in-process run.
# Daemons are stopped by their process ids and everything created is removed, also on failure.
# Exit 0: passed; 77: skipped (with the reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
skip() { echo "SKIP: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "the Slurm test needs root (it starts munged, slurmctld and slurmd)"
for c in munged slurmctld slurmd sbatch scontrol sinfo; do command -v "$c" >/dev/null || skip "$c is not installed (apt-get install slurm-wlm munge)"; done
[ -x "$BIN/medmaml-coordinator" ] || { echo "no $BIN/medmaml-coordinator: build first" >&2; exit 1; }

WORK=$(mktemp -d /tmp/medmaml-slurm.XXXXXX)
chmod 755 "$WORK"
PIDS=()
JOBS=()
cleanup() {
    status=$?
    for j in "${JOBS[@]}"; do scancel "$j" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/munged.pid" ] && kill "$(cat "$WORK/munged.pid")" 2>/dev/null || true
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ $status -ne 0 ]; then
        echo "--- slurmctld.log" >&2; tail -20 "$WORK/slurmctld.log" >&2 || true
        echo "--- slurmd.log" >&2; tail -20 "$WORK/slurmd.log" >&2 || true
        echo "--- job output" >&2; cat "$WORK"/medmaml-*.out "$WORK"/medmaml-*.err >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT INT TERM

# munge: a key of our own and a socket in the work folder.
install -d -o munge -g munge -m 755 "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$WORK/munge/munge.key"; chmod 400 "$WORK/munge/munge.key"
runuser -u munge -- munged --key-file="$WORK/munge/munge.key" --socket="$WORK/munge/munge.sock" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/seed"
cp "$WORK/munge/munged.pid" "$WORK/munged.pid"

HOST=$(hostname -s)
mkdir -p "$WORK/state" "$WORK/spool"
cat > "$WORK/slurm.conf" <<CONF
ClusterName=medmaml-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldPort=$((36817 + RANDOM % 1000))
SlurmdPort=$((37817 + RANDOM % 1000))
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
NodeName=$HOST CPUs=4 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
export SLURM_CONF=$WORK/slurm.conf
slurmctld -D -f "$SLURM_CONF" 2>>"$WORK/slurmctld.log" & PIDS+=($!)
slurmd -D -f "$SLURM_CONF" 2>>"$WORK/slurmd.log" & PIDS+=($!)
for i in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && break
    sleep 1
done
sinfo -h -o %T | grep -qE "idle|mixed" || { echo "the Slurm node did not come up" >&2; exit 1; }

# The jobs' working folder holds files that the globs would match if anything expanded them.
mkdir -p "$WORK/my runs" "$WORK/synthetic/paired" "$WORK/synthetic/ct/xray"
touch "$WORK/synthetic/paired/decoy" "$WORK/synthetic/ct/xray/decoy"
chmod -R a+rX "$WORK"
printf 'image-size: 32\nbase-channels: 8\nmeta-batch: 4\nseed: 21\ncheckpoint-every: 2\n' > "$WORK/my runs/run.yaml"

state_of() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
restarts_of() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p'; }
# In-process reference: final_params_sha256 of `train` with these arguments.
reference() {
    (cd "$WORK" && "$BIN/medmaml-coordinator" train "$@" --in-process --threads 2 --checkpoint-dir "$WORK/reference-$RANDOM" 2>/dev/null) \
        | awk '/^final_params_sha256/ {print $2}'
}
submit() {
    MEDMAML_BIN=$BIN MEDMAML_SHARED=$WORK/shared MEDMAML_METRICS_PORT=${METRICS_PORT:-} sbatch --parsable --ntasks=3 --cpus-per-task=1 \
        --chdir="$WORK" --output="$WORK/medmaml-%j.out" --error="$WORK/medmaml-%j.err" \
        "$REPO/cluster/slurm/medmaml.sbatch" "$@"
}
wait_done() {  # $1: job id; prints its final state
    local state="" i
    for i in $(seq 600); do
        state=$(state_of "$1")
        case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
        sleep 1
    done
    echo "$state"
}
check_hash() {  # $1: job id, $2: expected, $3: label
    local got
    got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/medmaml-$1.out" | tail -1)
    echo "$3: in-process $2, slurm $got" >&2
    [ -n "$2" ] && [ "$got" = "$2" ] || { echo "FAIL ($3): final_params_sha256 differs" >&2; exit 1; }
}

# 1. Arguments with a space and globs reach the coordinator as given; with metrics, every task
#    writes its Prometheus target while the job runs, and the job removes them at its end.
ARGS=(--config "$WORK/my runs/run.yaml" --outer-steps 10 --hold-out 'synthetic/paired/*' --hold-out 'synthetic/*/xray')
expected=$(reference "${ARGS[@]}")
started=$SECONDS
METRICS_PORT=$((29000 + RANDOM % 1000))
JOB=$(submit "${ARGS[@]}"); JOBS+=("$JOB")
METRICS_PORT=
echo "submitted job $JOB" >&2
targets=0
for i in $(seq 300); do
    n=$(shopt -s nullglob; files=("$WORK/shared/targets/job$JOB-"*.json); echo ${#files[@]})
    (( n > targets )) && targets=$n
    case "$(state_of "$JOB")" in COMPLETED|FAILED|CANCELLED|TIMEOUT) break ;; esac
    sleep 0.2
done
state=$(wait_done "$JOB")
echo "job $JOB: $state after $((SECONDS - started)) s" >&2
[ "$state" = COMPLETED ] || { echo "FAIL: job $JOB ended $state" >&2; exit 1; }
check_hash "$JOB" "$expected" "quoted arguments"
grep -q "shut down by the coordinator: the run is complete" "$WORK/medmaml-$JOB.err" || { echo "FAIL: the workers were not told the run is complete" >&2; exit 1; }
[ "$targets" = 3 ] && [ "$(grep -c 'serving Prometheus metrics' "$WORK/medmaml-$JOB.err")" = 3 ] \
    || { echo "FAIL: expected 3 Prometheus targets and endpoints while the job ran, saw $targets" >&2; exit 1; }
! ls "$WORK/shared/targets/job$JOB-"*.json >/dev/null 2>&1 || { echo "FAIL: the finished job left its Prometheus targets" >&2; exit 1; }
echo "metrics: 3 targets while the job ran, none after" >&2

# 2. SIGTERM mid-run: checkpoint, requeue, resume, same result (a 4-channel model: a command
#    line option overrides the run file's).
ARGS=(--config "$WORK/my runs/run.yaml" --outer-steps 40 --base-channels 4)
expected=$(reference "${ARGS[@]}")
started=$SECONDS
JOB=$(submit "${ARGS[@]}"); JOBS+=("$JOB")
echo "submitted job $JOB" >&2
for i in $(seq 600); do
    grep -qE '^step ([5-9]|[1-9][0-9])/40' "$WORK/medmaml-$JOB.err" 2>/dev/null && break
    sleep 0.2
done
scancel --signal=TERM --batch "$JOB"
echo "sent SIGTERM to job $JOB's batch script at step $(grep -oE '^step [0-9]+' "$WORK/medmaml-$JOB.err" | tail -1 | cut -d' ' -f2)" >&2
for i in $(seq 300); do
    [ "$(restarts_of "$JOB")" = 1 ] && [ "$(state_of "$JOB")" = PENDING ] && break
    sleep 0.2
done
[ "$(restarts_of "$JOB")" = 1 ] || { echo "FAIL: job $JOB was not requeued ($(state_of "$JOB"))" >&2; exit 1; }
# Slurm holds a requeued job back for two minutes (its BeginTime); a test need not wait that
# long, but slurmd refuses the job's new credential if it was issued within the second its
# previous run's was revoked: wait for the previous run's processes to go, and a moment more.
for i in $(seq 150); do pgrep -f "slurmstepd: \[$JOB\." >/dev/null || break; sleep 0.2; done
sleep 2
scontrol update JobId="$JOB" StartTime=now
state=$(wait_done "$JOB")
echo "job $JOB: $state after $((SECONDS - started)) s, restarts $(restarts_of "$JOB")" >&2
[ "$state" = COMPLETED ] || { echo "FAIL: job $JOB ended $state" >&2; exit 1; }
err=$WORK/medmaml-$JOB.err
stopped=$(sed -n 's/.*stopped by signal 15; checkpoint of step \([0-9]*\).*/\1/p' "$err" | head -1)
resumed=$(sed -n 's/.*resuming run [0-9a-f]* at step \([0-9]*\).*/\1/p' "$err" | head -1)
[ -n "$stopped" ] && [ "$resumed" = "$stopped" ] \
    || { echo "FAIL: the coordinator did not checkpoint on SIGTERM and resume there (stopped at '$stopped', resumed at '$resumed')" >&2; exit 1; }
grep -q "start 2," "$err" || { echo "FAIL: the batch script did not run again after the requeue" >&2; exit 1; }
echo "checkpointed at step $stopped on SIGTERM, requeued, resumed at step $resumed" >&2
check_hash "$JOB" "$expected" "requeued"
echo "slurm test passed" >&2
JOBS=()
