#!/usr/bin/env bash
# Builds the yield hook's rewrite (rewriter.c) to WebAssembly into rewriter-wasm.ts, which the
# prepare worker and Node load (scripts/build-inline-wasm.sh: no libc, the rewrite allocates from
# its own memory). `build.sh [OUTPUT]`, by default rewriter-wasm.ts beside it;
# test/sandbox/wasm-builds.test.ts checks that the committed file is this script's output.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../scripts/build-inline-wasm.sh rewriter.c "${1:-rewriter-wasm.ts}" REWRITER_WASM_BASE64 worker/rewriter/build.sh \
  -Wl,-z,stack-size=1048576
