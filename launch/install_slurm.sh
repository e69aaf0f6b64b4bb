#!/usr/bin/env bash
# Install the Debian packages that launch/slurm_up.sh needs for a one-node SLURM
# cluster with accounting. Idempotent: does nothing when every package is present,
# and runs `apt-get update` only when something must be installed.
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install_slurm: all packages present (${PACKAGES[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null || { echo "install_slurm: need root or sudo to install ${missing[*]}" >&2; exit 1; }
else
    SUDO=
fi

echo "install_slurm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the packages' post-install scripts from starting daemons;
# launch/slurm_up.sh starts them itself with its own configuration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_slurm: done"
