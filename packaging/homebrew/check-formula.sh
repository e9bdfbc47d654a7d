#!/usr/bin/env bash
# Exercises the Homebrew formula as far as possible without Homebrew: checks its Ruby syntax,
# then performs its install steps by hand into a temporary prefix (cargo install --root, the
# example config into etc/, var/ for data) and runs the formula's test block's checks against
# the installed binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
ruby -c packaging/homebrew/driftlock.rb
prefix=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$prefix"' EXIT
pid=
# A debug build reuses the test build; the formula itself builds with --release.
cargo install --quiet --locked --debug --root "$prefix" --path . --target-dir "${CARGO_TARGET_DIR:-target}"
mkdir -p "$prefix/etc/driftlock" "$prefix/var/driftlock" "$prefix/share/driftlock"
install -m 0644 packaging/driftlock.example.toml "$prefix/etc/driftlock/driftlock.toml"
install -m 0644 packaging/driftlock.example.toml "$prefix/share/driftlock/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The service block's command line, with the test's port.
"$prefix/bin/driftlock" serve --config "$prefix/etc/driftlock/driftlock.toml" --data-dir "$prefix/var/driftlock" \
  --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" | grep -q '"ok"'
test -f "$prefix/var/driftlock/admin.token"
echo "homebrew formula: syntax ok, install steps ok, service command answers /healthz"
