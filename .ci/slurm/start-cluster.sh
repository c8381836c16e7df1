#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost: munged + slurmctld + slurmd, no
# accounting database, everything (config, keys, state, spool, logs) under one
# folder. Used by CI and by tests/workflow/test_slurm.py; also handy on a workstation.
#
#   eval "$(bash .ci/slurm/start-cluster.sh)"   # starts it, exports SLURM_CONF
#   bash .ci/slurm/stop-cluster.sh              # stops it
#
# Needs root (daemons run as root, Debian packages are installed with apt when
# missing). Idempotent: a cluster already answering from the same folder is
# reused. Only the `export ...` lines go to stdout; progress goes to stderr.
#
# Environment:
#   VISDIAL_LG_SLURM_DIR   folder of the cluster   (default /tmp/visdial-lg-slurm)
#   VISDIAL_LG_SLURM_PORT  slurmctld port; slurmd uses the next one (default 6817)
#   VISDIAL_LG_SLURM_MEM   percent of the machine's memory given to the node (default 80)
set -euo pipefail

DIR=${VISDIAL_LG_SLURM_DIR:-/tmp/visdial-lg-slurm}
PORT=${VISDIAL_LG_SLURM_PORT:-6817}
MEM_PERCENT=${VISDIAL_LG_SLURM_MEM:-80}
CONF="$DIR/etc/slurm.conf"

say() { echo "[slurm] $*" >&2; }
die() { echo "[slurm] error: $*" >&2; exit 1; }

print_env() {
    echo "export SLURM_CONF=$CONF"
}

answers() {  # the node is up and idle (or already running jobs)
    local state
    state=$(SLURM_CONF="$CONF" timeout 10 sinfo -h -n localhost -o %T 2>/dev/null) || return 1
    [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]]
}

[[ $(id -u) -eq 0 ]] || die "run as root (the daemons run as root and apt may be needed)"

# ------------------------------------------------------------------ packages
missing=()
for cmd in munged mungekey slurmctld slurmd sinfo sbatch srun squeue scontrol; do
    command -v "$cmd" > /dev/null || missing+=("$cmd")
done
if ((${#missing[@]})); then
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    # policy-rc.d keeps the packages' own services from starting: ours use our config.
    policy_created=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        policy_created=1
    fi
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
        > "$apt_log" 2>&1 < /dev/null; then
        tail -n 30 "$apt_log" >&2
        ((policy_created)) && rm -f /usr/sbin/policy-rc.d
        die "apt-get install slurm-wlm munge failed"
    fi
    ((policy_created)) && rm -f /usr/sbin/policy-rc.d
    rm -f "$apt_log"
fi

# ------------------------------------------------------------- already up?
if [[ -f "$CONF" ]] && answers; then
    say "cluster already running ($CONF)"
    print_env
    exit 0
fi
# Leftovers of an earlier cluster in this folder (a crashed CI run): stop them.
if [[ -d "$DIR/run" ]]; then
    bash "$(dirname "$0")/stop-cluster.sh" > /dev/null 2>&1 || true
fi

# ------------------------------------------------------------------ layout
rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
mkdir -p "$DIR"/{etc,munge,state,spool/slurmd,log,run}
chmod 755 "$DIR" "$DIR"/{etc,state,spool,spool/slurmd,log,run}
chmod 700 "$DIR/munge"

# ------------------------------------------------------------------ munge
# A fresh key per cluster; munged (as root) checks that only root can read it.
MUNGE_SOCKET="$DIR/munge/munge.socket"
rm -f "$DIR/munge/munge.key"
mungekey --create --keyfile="$DIR/munge/munge.key" 2> /dev/null \
    || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
for _ in $(seq 50); do
    [[ -S "$MUNGE_SOCKET" ]] && break
    sleep 0.1
done
munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET" > /dev/null \
    || die "munge does not work; see $DIR/log/munged.log"

# ------------------------------------------------------------ slurm.conf
CPUS=$(nproc)
# The machine's memory, or the container's limit where that is lower (cgroup v2, v1).
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
for limit_file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    limit=$(cat "$limit_file" 2> /dev/null || true)
    if [[ "$limit" =~ ^[0-9]+$ ]] && ((limit / 1024 < mem_kb)); then
        mem_kb=$((limit / 1024))
    fi
done
MEM_MB=$((mem_kb / 1024 * MEM_PERCENT / 100))
cat > "$CONF" << EOF
# One-node cluster on localhost, written by .ci/slurm/start-cluster.sh.
ClusterName=visdial-lg-ci
SlurmctldHost=localhost
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
# No systemd and maybe no writable cgroups here: track processes by /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: Snakemake polls squeue (profiles/slurm), so finished jobs must
# stay visible to squeue longer than its longest polling interval (180 s).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
MailProg=/bin/true
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$CONF"

# The default path too: Snakemake's SLURM job step drops SLURM_* variables
# (SLURM_CONF included) before it calls srun inside a job, so srun must find
# the config where a real cluster node keeps it. An existing config that is
# not ours is left alone.
SYSTEM_CONF=/etc/slurm/slurm.conf
if [[ -L "$SYSTEM_CONF" || ! -e "$SYSTEM_CONF" ]]; then
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$CONF" "$SYSTEM_CONF"
elif ! cmp -s "$SYSTEM_CONF" "$CONF"; then
    die "$SYSTEM_CONF exists (another cluster's config?): srun inside jobs would use it; move it away first"
fi

# --------------------------------------------------------------- daemons
say "starting slurmctld and slurmd ($CPUS CPUs, $MEM_MB MB) in $DIR"
slurmctld -i || die "slurmctld did not start; see $DIR/log/slurmctld.log"
slurmd -N localhost || die "slurmd did not start; see $DIR/log/slurmd.log"

for _ in $(seq 120); do
    answers && break
    sleep 0.5
done
if ! answers; then
    SLURM_CONF="$CONF" sinfo -N -l >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle within 60 s"
fi
say "cluster up: $(SLURM_CONF="$CONF" sinfo -h -o '%P %D %T %c CPUs %m MB')"
print_env
