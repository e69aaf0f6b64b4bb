#!/usr/bin/env bash
# Start a one-node SLURM cluster with accounting on this machine, from Debian's packages
# (install them with launch/install_slurm.sh). Order: munged, MariaDB, slurmdbd,
# `sacctmgr add cluster`, slurmctld, slurmd; then wait until the node is idle and
# `sacct` answers. Idempotent: each daemon is started only when it is not running, and a
# second call with the cluster up says so and exits 0. Needs root. Stop with
# launch/slurm_down.sh. Settings: launch/slurm_env.sh (STITCHWORK_SLURM_* variables).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=slurm_env.sh
source "$HERE/slurm_env.sh"

export SLURM_CONF="$SLURM_CONF_FILE"
NODE="$(hostname -s)"

# Poll command "$@" four times a second for up to $WAIT_S seconds; fail with a log hint.
wait_for() {
    local what="$1" log="$2"; shift 2
    for _ in $(seq $((WAIT_S * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    say "timed out after ${WAIT_S}s waiting for $what; see $log" >&2
    [ -f "$log" ] && tail -n 20 "$log" >&2
    exit 1
}

node_state() { sinfo -h -N -n "$NODE" -p "$PARTITION" -o %t 2>/dev/null | head -n1; }
node_idle() { [[ "$(node_state)" == idle* ]]; }
sacct_ok() { sacct -n -X -S now-1minutes >/dev/null 2>&1; }
cluster_up() {
    pid_alive "$RUN_DIR/slurmctld.pid" && pid_alive "$RUN_DIR/slurmd.pid" \
        && pid_alive "$RUN_DIR/slurmdbd.pid" && node_idle && sacct_ok
}

gres_note() { [ -s "$ETC_DIR/gres.conf" ] && echo ", GPUs: $(sinfo -h -N -n "$NODE" -o %G)"; true; }

print_usage() {
    local conf_hint=""
    [ "$(readlink -f "$SYSTEM_CONF" 2>/dev/null)" = "$SLURM_CONF_FILE" ] \
        || conf_hint="  export SLURM_CONF=$SLURM_CONF_FILE   # $SYSTEM_CONF belongs to another cluster
"
    cat <<EOF
SLURM cluster '$CLUSTER_NAME' is up: node $NODE ($(nproc) CPUs$(gres_note)), partition '$PARTITION'.
${conf_hint}  sinfo; squeue; sacct                          # look at it
  sbatch -p $PARTITION --wrap hostname               # submit a job
  stitchwork-stitch -m hydra/launcher=slurm_cpu ...  # a Hydra sweep as one job array
  bash launch/slurm_down.sh [--purge]                # stop it (--purge deletes the state)
State, configs and logs: $STATE_DIR
EOF
}

if cluster_up; then
    say "cluster already up"
    print_usage
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { say "must run as root (SlurmUser=root, slurmd needs root)" >&2; exit 1; }
for bin in munged slurmctld slurmd slurmdbd sacctmgr sbatch mysqld_safe mariadb-install-db; do
    command -v "$bin" >/dev/null || {
        say "'$bin' not found; run: bash launch/install_slurm.sh" >&2; exit 1; }
done
mkdir -p "$ETC_DIR" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/ctld" "$STATE_DIR/spool"

start_munge() {
    if munge_ok; then return 0; fi
    if [ ! -s "$MUNGE_KEY" ]; then
        mkdir -p "$(dirname "$MUNGE_KEY")"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
    chown munge:munge "$(dirname "$MUNGE_KEY")" "$MUNGE_KEY"
    chmod 0700 "$(dirname "$MUNGE_KEY")"
    chmod 0400 "$MUNGE_KEY"
    mkdir -p "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chown munge:munge "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chmod 0755 "$MUNGE_RUN"
    runuser -u munge -- /usr/sbin/munged
    touch "$RUN_DIR/munged.ours"   # slurm_down.sh stops only a munged that we started
    wait_for munged /var/log/munge/munged.log munge_ok
}

start_mariadb() {
    if [ ! -d "$DB_DIR/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$DB_DIR" --user=root \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install.log" 2>&1
    fi
    if ! pid_alive "$RUN_DIR/mysqld.pid"; then
        setsid nohup mysqld_safe --no-defaults --datadir="$DB_DIR" --user=root \
            --socket="$DB_SOCKET" --pid-file="$RUN_DIR/mysqld.pid" --port="$DB_PORT" \
            --bind-address=127.0.0.1 --skip-name-resolve --log-error="$LOG_DIR/mysqld.log" \
            --innodb-buffer-pool-size=128M --innodb-log-file-size=16M \
            --innodb-lock-wait-timeout=900 >/dev/null 2>&1 </dev/null &
    fi
    wait_for MariaDB "$LOG_DIR/mysqld.log" \
        mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root ping
    local pass_file="$ETC_DIR/db_password"
    [ -s "$pass_file" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pass_file"; }
    chmod 0600 "$pass_file"
    DB_PASS="$(cat "$pass_file")"
    mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
    local cpus mem_mb def_mem gpus gres_types="" node_gres=""
    cpus="$(nproc)"
    # NVIDIA GPUs (/dev/nvidia0, /dev/nvidia1, ...) become gres gpu:N, so the slurm_gpu
    # presets (--gpus-per-node) can be tried on a workstation.
    gpus="$(find /dev -maxdepth 1 -regex '/dev/nvidia[0-9]+' 2>/dev/null | wc -l)"
    rm -f "$ETC_DIR/gres.conf"
    if [ "$gpus" -gt 0 ]; then
        gres_types="GresTypes=gpu
AccountingStorageTRES=gres/gpu"
        node_gres="Gres=gpu:$gpus"
        echo "Name=gpu File=/dev/nvidia[0-$((gpus - 1))]" >"$ETC_DIR/gres.conf"
    fi
    mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)"
    def_mem=$((mem_mb / cpus))
    umask 077
    cat >"$ETC_DIR/slurmdbd.conf" <<EOF
# Generated by launch/slurm_up.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    chmod 0600 "$ETC_DIR/slurmdbd.conf"
    umask 022
    cat >"$SLURM_CONF_FILE" <<EOF
# Generated by launch/slurm_up.sh for a one-node test cluster.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
ReturnToService=2
InactiveLimit=0
KillWait=10
MinJobAge=300
SlurmctldTimeout=60
SlurmdTimeout=60
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # Client commands read /etc/slurm/slurm.conf; point it at ours unless a real
    # cluster's configuration already lives there.
    if [ ! -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
        mkdir -p "$(dirname "$SYSTEM_CONF")"
        ln -sfn "$SLURM_CONF_FILE" "$SYSTEM_CONF"
    fi
}

start_slurmdbd() {
    pid_alive "$RUN_DIR/slurmdbd.pid" || slurmdbd
    wait_for slurmdbd "$LOG_DIR/slurmdbd.log" sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER_NAME"; then
        sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    fi
}

start_slurm() {
    pid_alive "$RUN_DIR/slurmctld.pid" || slurmctld
    wait_for slurmctld "$LOG_DIR/slurmctld.log" scontrol ping
    pid_alive "$RUN_DIR/slurmd.pid" || slurmd -N "$NODE"
    wait_for "node $NODE to register" "$LOG_DIR/slurmd.log" \
        bash -c "sinfo -h -N -n '$NODE' -o %t | grep -qv -E '^(unk|n/a)'"
    if [[ "$(node_state)" =~ ^(down|drain|drng|fail) ]]; then
        scontrol update NodeName="$NODE" State=RESUME
    fi
    wait_for "node $NODE to be idle" "$LOG_DIR/slurmctld.log" node_idle
    wait_for "sacct to answer" "$LOG_DIR/slurmdbd.log" sacct_ok
}

t0=$SECONDS
start_munge
start_mariadb
write_configs
start_slurmdbd
start_slurm
say "started in $((SECONDS - t0)) s"
print_usage
