#!/usr/bin/env bash
# Rebuilds the test programs (test/wasi/programs/*.wasm) from their C sources with Debian's
# clang and wasi-libc (apt-get install clang lld wasi-libc). The .wasm files are committed.
set -euo pipefail
cd "$(dirname "$0")"
for src in *.c; do
  name=$(basename "$src" .c)
  clang --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-debug -o "$name.wasm" "$src"
  echo "built test/wasi/programs/$name.wasm"
done
