#!/usr/bin/env bash
# Builds sha256.c to WebAssembly into sha256-wasm.ts (scripts/build-inline-wasm.sh), with its heap
# base exported: src/protocol/sha256-small.ts puts the digest and the input there.
# `build.sh [OUTPUT]`, by default sha256-wasm.ts beside it; test/sandbox/wasm-builds.test.ts checks
# that the committed file is this script's output.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../../scripts/build-inline-wasm.sh sha256.c "${1:-sha256-wasm.ts}" SHA256_WASM_BASE64 src/protocol/sha256/build.sh \
  -Wl,--export=__heap_base -Wl,-z,stack-size=8192
