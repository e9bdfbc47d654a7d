#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need and is missing
# (Debian packages: Python's venv, Chromium for the admin UI's browser tests, Node.js and npm
# for playwright-core, libfaketime for the pinned test clock, systemd-analyze, ruby, curl),
# then runs `cargo test`. Extra arguments go to `cargo test`. Needs root (or sudo) only when
# something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv python3-pip)
command -v ruby >/dev/null 2>&1 || need_apt+=(ruby)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
[ -x /usr/bin/chromium ] || need_apt+=(chromium chromium-driver)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need_apt+=(libfaketime)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_apt[*]}" >&2
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq </dev/null
  "${sudo[@]}" apt-get install -y -qq "${need_apt[@]}" </dev/null
fi

exec cargo test "$@"
