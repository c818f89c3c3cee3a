#!/usr/bin/env bash
# Rebuilds examples/*.wasm from examples/src/*.c with Debian's clang and wasi-libc
# (apt-get install clang lld wasi-libc). The .wasm files are committed, so nothing needs this
# to run the examples or the tests.
set -euo pipefail
cd "$(dirname "$0")"
for src in src/*.c; do
  name=$(basename "$src" .c)
  clang --target=wasm32-wasi -O2 -msimd128 -Wall -Wextra -Wl,--strip-debug -o "$name.wasm" "$src"
  echo "built examples/$name.wasm"
done
