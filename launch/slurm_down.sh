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

# Send TERM to the process in pid file $1 and wait up to 30 s for it to exit.
stop_pid() {
    local file="$1" name="$2" pid
    pid_alive "$file" || return 0
    pid="$(cat "$file")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || { say "stopped $name"; return 0; }; sleep 1; done
    say "$name (pid $pid) ignored TERM; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

if [ -f "$SLURM_CONF_FILE" ] && pid_alive "$RUN_DIR/slurmctld.pid"; then
    scancel --partition="$PARTITION" 2>/dev/null || true
    sleep 1
fi
stop_pid "$RUN_DIR/slurmd.pid" slurmd
stop_pid "$RUN_DIR/slurmctld.pid" slurmctld
stop_pid "$RUN_DIR/slurmdbd.pid" slurmdbd
if pid_alive "$RUN_DIR/mysqld.pid"; then
    # mysqld_safe restarts a killed mysqld; an orderly shutdown makes both exit.
    mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root shutdown 2>/dev/null \
        || stop_pid "$RUN_DIR/mysqld.pid" mysqld
    say "stopped MariaDB"
fi
if [ -f "$RUN_DIR/munged.ours" ]; then
    stop_pid "$MUNGE_RUN/munged.pid" munged
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
