#!/usr/bin/env bash
# Runs cluster/slurm/medmaml.sbatch on a real single-host Slurm: munged, slurmctld and slurmd
# started here (no systemd; SlurmUser=root, proctrack/linuxproc, task/none), the job submitted
# with sbatch --overcommit (1 coordinator + 2 workers on 2 cores), and its final_params_sha256
# compared with an in-process run of the same flags. Daemons are stopped by their process ids
# and everything created is removed, also on failure.
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
cleanup() {
    status=$?
    [ -n "${JOB:-}" ] && scancel "$JOB" 2>/dev/null || true
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
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
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

FLAGS="--image-size 32 --base-channels 8 --meta-batch 4 --outer-steps 10 --seed 21 --checkpoint-every 0"
expected=$("$BIN/medmaml-coordinator" train $FLAGS --in-process --threads 2 --checkpoint-dir "$WORK/reference" 2>/dev/null \
    | awk '/^final_params_sha256/ {print $2}')

JOB=$(MEDMAML_BIN=$BIN MEDMAML_SHARED=$WORK/shared sbatch --parsable --overcommit --ntasks=3 --cpus-per-task=1 \
      --chdir="$WORK" --output="$WORK/medmaml-%j.out" --error="$WORK/medmaml-%j.err" \
      "$REPO/cluster/slurm/medmaml.sbatch" $FLAGS)
echo "submitted job $JOB" >&2
state=""
for i in $(seq 300); do
    state=$(scontrol show job "$JOB" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 1
done
echo "job $JOB: $state" >&2
[ "$state" = COMPLETED ] || { echo "job ended $state" >&2; exit 1; }
got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/medmaml-$JOB.out")
echo "in-process $expected" >&2
echo "slurm      $got" >&2
[ -n "$expected" ] && [ "$got" = "$expected" ] || { echo "final_params_sha256 differs" >&2; exit 1; }
echo "slurm test passed" >&2
JOB=""
