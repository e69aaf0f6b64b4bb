# Shared settings for launch/slurm_up.sh and launch/slurm_down.sh (sourced, not run).
# Every value can be overridden from the environment before calling either script.

STATE_DIR="${STITCHWORK_SLURM_DIR:-/tmp/stitchwork-slurm}"
CLUSTER_NAME="${STITCHWORK_SLURM_CLUSTER:-stitchwork}"
PARTITION="${STITCHWORK_SLURM_PARTITION:-debug}"
CTLD_PORT="${STITCHWORK_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${STITCHWORK_SLURMD_PORT:-6818}"
DBD_PORT="${STITCHWORK_SLURMDBD_PORT:-6819}"
DB_PORT="${STITCHWORK_SLURM_DB_PORT:-13306}"
WAIT_S="${STITCHWORK_SLURM_WAIT_S:-120}"

ETC_DIR="$STATE_DIR/etc"
LOG_DIR="$STATE_DIR/log"
RUN_DIR="$STATE_DIR/run"
DB_DIR="$STATE_DIR/mysql"
DB_SOCKET="$RUN_DIR/mysqld.sock"
SLURM_CONF_FILE="$ETC_DIR/slurm.conf"
SYSTEM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge

# Print a message prefixed with the calling script's name.
say() { echo "$(basename "$0" .sh): $*"; }

# True when the pid stored in file $1 belongs to a live process (any user may ask).
pid_alive() { [ -s "$1" ] && [ -d "/proc/$(cat "$1")" ]; }

# True when a local munged answers (a credential encodes and decodes).
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
