#!/usr/bin/env bash
# Stop the one-node cluster started by start-cluster.sh: slurmd, slurmctld and
# munged, each by the pid in its pid file. `--clean` also removes the folder
# (logs included); by default the logs stay for a look after a failure.
set -uo pipefail

DIR=${VISDIAL_LG_SLURM_DIR:-/tmp/visdial-lg-slurm}

stop() {  # name: TERM the pid of $DIR/run/NAME.pid, wait up to 10 s, then KILL
    local pidfile="$DIR/run/$1.pid" pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null; then
        kill -TERM "$pid" 2> /dev/null
        for _ in $(seq 100); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null
        echo "[slurm] stopped $1 ($pid)" >&2
    fi
    rm -f "$pidfile"
}

if [[ -f "$DIR/etc/slurm.conf" ]]; then
    # Jobs first, so that no job step outlives its slurmd.
    SLURM_CONF="$DIR/etc/slurm.conf" timeout 10 scancel --quiet --user="$(id -un)" 2> /dev/null || true
fi
stop slurmd
stop slurmctld
stop munged

# The default-path link made by start-cluster.sh, if it still points here.
if [[ -L /etc/slurm/slurm.conf && "$(readlink /etc/slurm/slurm.conf)" == "$DIR/etc/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi

if [[ "${1:-}" == "--clean" ]]; then
    rm -rf "$DIR"
fi
