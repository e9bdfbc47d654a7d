#!/usr/bin/env bash
# Builds the release binary fully static (glibc with crt-static: the musl target cannot be
# installed on the build machines; TLS is rustls, so nothing links OpenSSL), checks that it is
# static, and writes it with its SHA-256 sum to dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target"
mkdir -p dist
out="dist/driftlock-$version-x86_64-linux"
cp "target/$target/release/driftlock" "$out"
file "$out"
if ! file "$out" | grep -q "static"; then
  echo "build-release: $out is not statically linked" >&2
  exit 1
fi
ldd "$out" 2>&1 | grep -qE "not a dynamic executable|statically linked" || { echo "build-release: ldd finds dynamic libraries" >&2; exit 1; }
(cd dist && sha256sum "$(basename "$out")" > "$(basename "$out").sha256")
cat "$out.sha256"
ls -l "$out"
