#!/usr/bin/env bash
# run.sh [presenced flags] - installs what is missing, builds a release
# presenced in build/, and runs it in the foreground on its embedded default
# configuration (RocksDB under ./data, admin endpoint on 127.0.0.1:8084),
# unless flags such as --config say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh build
if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release >/dev/null
fi
ninja -C build presenced >/dev/null
exec build/presenced "$@"
