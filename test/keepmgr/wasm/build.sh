#!/bin/sh
# Rebuilds the keepmgr test workloads with Debian's clang and wasi-libc.
set -eu
cd "$(dirname "$0")"
for c in hello crash memhog spin; do
  clang --target=wasm32-wasi -O2 "$c.c" -o "$c.wasm"
done
