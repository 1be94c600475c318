#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing, then runs
# `cargo test` with any extra arguments (`./test.sh flow`, `./test.sh -- --nocapture`).
# Installs (Debian packages, with sudo only when not root): chromium and chromium-driver for the
# dashboard tests, mosquitto for the external-broker tests, curl for the README-blocks test.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v curl >/dev/null 2>&1 || missing+=(curl)

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
  echo "== installing ${missing[*]} (apt-get)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Most tests wait on the network or on timeouts rather than compute: four at a time on two
# cores cut the integration run from ~30 s to ~20 s. RUST_TEST_THREADS overrides it.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
exec cargo test "$@"
