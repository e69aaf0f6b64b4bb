#!/usr/bin/env bash
# Stop the one-node SLURM cluster that launch/slurm_up.sh started: cancel its jobs, then
# stop slurmd, slurmctld, slurmdbd, MariaDB and (only if slurm_up.sh started it) munged.
# `--purge` also deletes the state directory (job state, accounting database, logs).
# Stopping a cluster that is not running is not an error.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=slurm_env.sh
source "$HERE/slurm_env.sh"

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) say "unknown argument '$1'; usage: slurm_down.sh [--purge]" >&2; exit 2 ;;
esac
export SLURM_CONF="$SLURM_CONF_FILE"

# Send TERM to the processes named by the pid files in "$@" and wait up to 30 s for
# them all to exit; KILL what is left.
stop_pids() {
    local file pids=() names=()
    for file in "$@"; do
        if pid_alive "$file"; then
            pids+=("$(cat "$file")"); names+=("$(basename "$file" .pid)")
            kill -TERM "${pids[-1]}" 2>/dev/null || true
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    local pid alive
    for _ in $(seq 150); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 1 ] || { say "stopped ${names[*]}"; return 0; }
        sleep 0.2
    done
    say "${names[*]} ignored TERM for 30 s; sending KILL" >&2
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

if [ -f "$SLURM_CONF_FILE" ] && pid_alive "$RUN_DIR/slurmctld.pid" \
    && [ -n "$(squeue -h -p "$PARTITION" -o %i 2>/dev/null)" ]; then
    scancel --partition="$PARTITION" 2>/dev/null || true
    sleep 2   # let slurmd end the job steps before it stops
fi
stop_pids "$RUN_DIR/slurmd.pid" "$RUN_DIR/slurmctld.pid"
stop_pids "$RUN_DIR/slurmdbd.pid"
if pid_alive "$RUN_DIR/mysqld.pid"; then
    # mysqld_safe restarts a killed mysqld; an orderly shutdown makes both exit.
    mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root shutdown 2>/dev/null \
        || stop_pids "$RUN_DIR/mysqld.pid"
    say "stopped MariaDB"
fi
if [ -f "$RUN_DIR/munged.ours" ]; then
    stop_pids "$MUNGE_RUN/munged.pid"
    rm -f "$RUN_DIR/munged.ours"
fi
if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$SLURM_CONF_FILE" ]; then
    rm -f "$SYSTEM_CONF"
fi
if [ "$purge" = 1 ]; then
    rm -rf "$STATE_DIR"
    say "removed $STATE_DIR"
fi
say "cluster stopped"
