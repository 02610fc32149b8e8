#!/usr/bin/env bash
# Rebuilds every committed .wasm from its source. Tests never need this: the built files are committed.
# Needs Debian's clang lld wasi-libc libclang-rt-14-dev-wasm32, rustc libstd-rust-dev-wasm32, and npm's assemblyscript.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-clang}
build() { "$CC" --target=wasm32-wasi -O2 -Wl,--strip-all -o "$2" "$1"; echo "built $2 ($(stat -c %s "$2") bytes)"; }
build demo/fractal/fractal.c demo/fractal/fractal.wasm
for src in test/fixtures/wasi/*.c; do build "$src" "${src%.c}.wasm"; done
build bench/fixtures/syscalls.c bench/fixtures/syscalls.wasm
# Hostile modules for the sandbox tests (test/fixtures/hostile/README.md): imports.c links against a function no host provides.
for src in test/fixtures/hostile/{loop,bomb,recursion,deep,trap,flood,fsflood,symlinks,names,fds,unlinked,inputs,stdio,checkpoints}.c; do build "$src" "${src%.c}.wasm"; done
"$CC" --target=wasm32-wasi -O2 -Wl,--strip-all -Wl,--allow-undefined -o test/fixtures/hostile/imports.wasm test/fixtures/hostile/imports.c
head -c 1000 demo/fractal/fractal.wasm > test/fixtures/hostile/truncated.wasm
printf '\0asm\1\0\0\0\x99garbage, not sections' > test/fixtures/hostile/invalid.wasm
# Conformance programs in Rust (Debian's rustc: rustup's, first on PATH, has no wasm target) and AssemblyScript.
RUSTC=${RUSTC:-$(dpkg -L rustc 2>/dev/null | grep -m1 '/bin/rustc$' || echo rustc)}
"$RUSTC" --target wasm32-wasi -O -C strip=symbols -o test/fixtures/conformance/rustconf.wasm test/fixtures/conformance/rustconf.rs
echo "built test/fixtures/conformance/rustconf.wasm"
npx asc test/fixtures/conformance/asconf.ts --config node_modules/@assemblyscript/wasi-shim/asconfig.json -O3 --runtime stub \
  -o test/fixtures/conformance/asconf.wasm
echo "built test/fixtures/conformance/asconf.wasm"
# A WASIX program (imports from wasix_32v1, declared in its source): the @wasmer/sdk engine's fixture.
build test/fixtures/wasix/wasixinfo.c test/fixtures/wasix/wasixinfo.wasm
# CPU-bound programs for the instrumentation benchmark (bench/instrumentation.ts).
build bench/fixtures/sieve.c bench/fixtures/sieve.wasm
build bench/fixtures/sha256.c bench/fixtures/sha256.wasm
