#!/bin/sh
# /usr/local/bin/rzmon, installed by install.sh: runs the real binary
# (/usr/local/lib/rzmon/rzmon) as the `rzmon` user with the settings of /etc/rzmon/rzmon.env,
# so administrative commands (`rzmon device add ID`, `rzmon user passwd admin`, ...) work on
# the server's own database and never leave root-owned files in its data directory.
# The env file is read as shell assignments (KEY=value lines; quote values with spaces).
set -eu
if [ "$(id -u)" -ne 0 ]; then
  exec sudo "$0" "$@"
fi
if [ -r /etc/rzmon/rzmon.env ]; then
  set -a
  . /etc/rzmon/rzmon.env
  set +a
fi
: "${RZMON_DATA_DIR:=/var/lib/rzmon}"
export RZMON_DATA_DIR
exec runuser -u rzmon -- /usr/local/lib/rzmon/rzmon "$@"
