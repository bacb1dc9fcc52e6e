#!/usr/bin/env bash
# User-space instructions per request end to end, for each server of scripts/bench.sh's
# end-to-end step: callgrind on the server (one tokio worker), wrk as the client.
#
#   cargo build --release --example tutorial --example bare
#   scripts/e2e-callgrind.sh            # bare, map, map2, tutorial
#
# Each server is started under valgrind, warmed up by a 3 s wrk run, its counters are
# zeroed, then `wrk -t1 -c8 -d${SECS}s` loads it and the counters are dumped: the
# dump's total divided by the requests wrk counted. Kernel time is not counted, and
# the counts vary by a few tens per request between runs (how many requests one
# read returns), so compare servers measured in one run. Needs valgrind, wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ex=${CARGO_TARGET_DIR:-target}/release/examples
port=${PORT:-18100}
secs=${SECS:-10}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

per_request() { # name example token|login [VAR=value…]
    local name=$1 example=$2 token=$3
    shift 3
    env "$@" TOKIO_WORKER_THREADS=1 LOG=off ADDR="127.0.0.1:$port" \
        valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" "$ex/$example" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "127.0.0.1:$port/" && break
        sleep 0.3
    done
    if [[ $token == login ]]; then
        token=$(curl -s -X POST "127.0.0.1:$port/token" -d 'username=johndoe&password=secret' |
            sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    fi
    wrk -t1 -c8 -d3s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/users/me" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local requests
    requests=$(wrk -t1 -c8 -d"${secs}s" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/users/me" |
        awk '/requests in/ {print $1}')
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    local dump total
    dump=$(ls -t "$out/$name.out".* | head -1)
    total=$(awk '/^summary:|^totals:/ {print $2; exit}' "$dump")
    printf '%-9s %8d requests  %7d instructions per request\n' "$name" "$requests" $((total / requests))
}

per_request bare bare none
per_request map bare floor-token MAP_TOKEN=floor-token
per_request map2 bare floor-token MAP2_TOKEN=floor-token
per_request tutorial tutorial login
