#!/usr/bin/env bash
# Transport throughput over a loopback nats-server: raw NATS publishes next to dtle's NATS link (window, acks,
# none/lz4/zstd/gzip), compression ratio and CPU per GiB, and the effect of the window size.
#   tests/bench/transport.sh [MB=200]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$HERE/.."
MB="${1:-200}"
PORT=4290
tests/nats.sh start "$PORT" 8388608 >/dev/null
trap 'tests/nats.sh stop "$PORT"' EXIT
cargo run --release -q -p dtle-transport --example nats_bench -- "nats://127.0.0.1:$PORT" "$MB"
