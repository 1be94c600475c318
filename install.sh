#!/usr/bin/env bash
# Builds rzmon as the invoking user and installs it as a systemd service. See usage() below.
set -euo pipefail

usage() {
  cat <<'TEXT'
Usage: ./install.sh [--no-start] [-h|--help]

Builds rzmon and installs it as a systemd service. Steps:
  1. cargo build --release --locked              (as you, no root)
  2. install the binary as /usr/local/lib/rzmon/rzmon and the command wrapper
     /usr/local/bin/rzmon (see below)
  3. create the system user `rzmon` (no login shell, no home) if missing
  4. create /var/lib/rzmon (owner rzmon, mode 0700) for the database and secrets
  5. create /etc/rzmon/rzmon.env (owner root, mode 0600) from config/rzmon.env.example if it
     does not exist yet (an existing one is never overwritten)
  6. install config/rzmon.service, systemctl daemon-reload, and (unless --no-start)
     systemctl enable --now rzmon
Only steps 2-6 use sudo (nothing, when you run it as root).

Options:
  --no-start   install everything but do not enable or start the service (for example to
               edit /etc/rzmon/rzmon.env before the first start); start it later with
               sudo systemctl enable --now rzmon
  -h, --help   show this text

The wrapper /usr/local/bin/rzmon runs the real binary as the `rzmon` user with the settings
of /etc/rzmon/rzmon.env (asking sudo for that), so `rzmon device add esp32-1` works on the
server's own database. The first start keeps the admin password in
/var/lib/rzmon/initial_admin_password (read it with: sudo cat /var/lib/rzmon/initial_admin_password);
it is deleted when admin first signs in.
TEXT
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

echo "==> 2. installing /usr/local/lib/rzmon/rzmon and the wrapper /usr/local/bin/rzmon"
$SUDO install -d -m 0755 /usr/local/lib/rzmon
$SUDO install -m 0755 target/release/rzmon /usr/local/lib/rzmon/rzmon
$SUDO install -m 0755 config/rzmon-wrapper.sh /usr/local/bin/rzmon

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
  echo "rzmon is running. Admin password: sudo cat /var/lib/rzmon/initial_admin_password"
  echo "Register a device:  rzmon device add esp32-1"
else
  echo "Installed; start it with: sudo systemctl enable --now rzmon"
fi
