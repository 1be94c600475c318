#!/usr/bin/env bash
# Builds rzmon as the invoking user and installs it as a systemd service.
#
# What it does, step by step:
#   1. cargo build --release                    (as you, no root)
#   2. sudo install the binary to /usr/local/bin/rzmon
#   3. sudo create the system user `rzmon` (no login shell, no home) if missing
#   4. sudo create /var/lib/rzmon (owner rzmon, mode 0700) for the database and JWT secret
#   5. sudo create /etc/rzmon/rzmon.env (owner root, mode 0600: systemd reads it as root) from
#      config/rzmon.env.example if it does not exist yet (an existing one is never overwritten)
#   6. sudo install config/rzmon.service, systemctl daemon-reload, enable --now rzmon
# Only steps 2-6 use sudo. The first start prints the admin password once: read it with
#   sudo journalctl -u rzmon | grep 'Admin login'
set -euo pipefail

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  echo
  echo "Usage: ./install.sh [--no-start]"
}

start=yes
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --no-start) start=no ;;
    *) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "==> 1. building the release binary (as $(id -un))"
cargo build --release --locked

echo "==> 2. installing /usr/local/bin/rzmon"
$SUDO install -m 0755 target/release/rzmon /usr/local/bin/rzmon

echo "==> 3. system user rzmon"
if ! id rzmon >/dev/null 2>&1; then
  $SUDO useradd --system --no-create-home --home-dir /var/lib/rzmon --shell /usr/sbin/nologin rzmon
fi

echo "==> 4. data directory /var/lib/rzmon (0700)"
$SUDO install -d -m 0700 -o rzmon -g rzmon /var/lib/rzmon

echo "==> 5. configuration /etc/rzmon/rzmon.env"
$SUDO install -d -m 0755 /etc/rzmon
if [ ! -e /etc/rzmon/rzmon.env ]; then
  $SUDO install -m 0600 -o root -g root config/rzmon.env.example /etc/rzmon/rzmon.env
  $SUDO sed -i 's|^RZMON_DATA_DIR=.*|RZMON_DATA_DIR=/var/lib/rzmon|' /etc/rzmon/rzmon.env
else
  echo "    keeping the existing /etc/rzmon/rzmon.env"
fi

echo "==> 6. systemd unit"
$SUDO install -m 0644 config/rzmon.service /etc/systemd/system/rzmon.service
$SUDO systemctl daemon-reload
if [ "$start" = yes ]; then
  $SUDO systemctl enable --now rzmon
  echo "rzmon is running. First-start admin password: sudo journalctl -u rzmon | grep 'Admin login'"
  echo "Register a device:  sudo -u rzmon env RZMON_DATA_DIR=/var/lib/rzmon rzmon device add esp32-1"
else
  echo "Installed; start it with: sudo systemctl enable --now rzmon"
fi
