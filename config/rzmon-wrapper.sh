#!/bin/sh
# /usr/local/bin/rzmon, installed by install.sh: runs the real binary
# (/usr/local/lib/rzmon/rzmon) as the `rzmon` user with the settings of /etc/rzmon/rzmon.env,
# so administrative commands (`rzmon device add ID`, `rzmon user passwd admin`, ...) work on
# the server's own database and never leave root-owned files in its data directory.
# The env file is read as systemd reads an EnvironmentFile, not as a shell script: KEY=value per
# line, '#' and ';' comment lines, one pair of surrounding quotes removed, nothing expanded
# ($, &, ; and spaces in a value stay as written, as the service sees them).
set -eu
if [ "$(id -u)" -ne 0 ]; then
  exec sudo "$0" "$@"
fi
ENV_FILE=/etc/rzmon/rzmon.env
if [ -r "$ENV_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#"${line%%[![:space:]]*}"}
    case "$line" in '' | '#'* | ';'*) continue ;; esac
    key=${line%%=*}
    [ "$key" = "$line" ] && continue
    value=${line#*=}
    case "$key" in '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
    case "$value" in
      \"*\") value=${value#\"} value=${value%\"} ;;
      \'*\') value=${value#\'} value=${value%\'} ;;
    esac
    export "$key=$value"
  done <"$ENV_FILE"
fi
: "${RZMON_DATA_DIR:=/var/lib/rzmon}"
export RZMON_DATA_DIR
exec runuser -u rzmon -- /usr/local/lib/rzmon/rzmon "$@"
