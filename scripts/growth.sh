#!/usr/bin/env bash
# Every row of docs/guide/scaling.md ("How cost grows"), one process per row:
#
#   1. memory: the guard against N live tokens in the memory store (heap and RSS per
#      token, time per request with a hot and with spread tokens), N in TOKENS;
#   2. callgrind: instructions per guarded request against N live tokens (spread
#      and hot), N in CALLGRIND_TOKENS (prefill runs under valgrind too: slow);
#   3. postgres: users in PostgreSQL (database operations per guarded request,
#      login and refresh; the guard query's plan; requests/s), N in USERS;
#   4. redis: commands per operation (MONITOR), MEMORY USAGE per key kind,
#      used_memory per access token.
#
#   scripts/growth.sh
#   ONLY="memory redis" TOKENS="1000 100000" scripts/growth.sh
#
# Environment: ONLY (subset of: memory callgrind postgres redis), TOKENS (default
# "1000 100000 1000000 10000000"), CALLGRIND_TOKENS (default "1000 100000 1000000"),
# CALLGRIND_ITERS (default 20000), USERS (default "1000 100000 1000000"),
# FEATURES (default sqlx,redis), DATABASE_URL, REDIS_URL, OUT (default target/growth). Output: one file per row in
# OUT, named after the row, each beginning with the command that made it.
set -euo pipefail
cd "$(dirname "$0")/.."

ONLY=${ONLY:-"memory callgrind postgres redis"}
TOKENS=${TOKENS:-"1000 100000 1000000 10000000"}
CALLGRIND_TOKENS=${CALLGRIND_TOKENS:-"1000 100000 1000000"}
CALLGRIND_ITERS=${CALLGRIND_ITERS:-20000}
USERS=${USERS:-"1000 100000 1000000"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$CARGO_TARGET_DIR/growth}
export CARGO_TERM_COLOR=never
wants() { [[ " $ONLY " == *" $1 "* ]]; }
mkdir -p "$OUT"

# One binary for every row (the features only add the postgres and redis modes).
bin=$(cargo bench --no-run --bench growth --features "${FEATURES:-sqlx,redis}" --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "growth":
        print(m["executable"])')
[[ -n $bin ]] || { echo "error: the growth bench did not build" >&2; exit 1; }

# row NAME ENV... : runs the bench with ENV, saving the command, uptime and output.
row() {
    local name=$1
    shift
    {
        echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD)"
        echo "# command: $* $bin --bench"
        echo "# uptime: $(uptime)"
        env "$@" "$bin" --bench
        echo "# uptime after: $(uptime)"
    } | tee "$OUT/$name.txt"
}

if wants memory; then
    for n in $TOKENS; do
        row "memory-$n" GROWTH=memory GROWTH_TOKENS="$n"
    done
fi

if wants callgrind; then
    command -v valgrind >/dev/null || { echo "error: valgrind is needed" >&2; exit 1; }
    for n in $CALLGRIND_TOKENS; do
        for hot in "" 1; do
            name="callgrind-$n${hot:+-hot}"
            file="$OUT/$name.out"
            {
                echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD)"
                echo "# command: GROWTH=memory GROWTH_TOKENS=$n GROWTH_ITERS=$CALLGRIND_ITERS ${hot:+GROWTH_HOT=1 }valgrind --tool=callgrind --toggle-collect='*measured*' $bin --bench"
                env GROWTH=memory GROWTH_TOKENS="$n" GROWTH_ITERS="$CALLGRIND_ITERS" ${hot:+GROWTH_HOT=1} \
                    valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$file" \
                    "$bin" --bench 2>/dev/null | grep -E '^(tokens|cpu)'
                total=$(awk '/^summary:/ {print $2}' "$file")
                echo "instructions_per_request	$((total / CALLGRIND_ITERS))	($total over $CALLGRIND_ITERS requests)"
            } | tee "$OUT/$name.txt"
            rm -f "$file"
        done
    done
fi

if wants postgres; then
    for n in $USERS; do
        row "postgres-$n" GROWTH=postgres GROWTH_USERS="$n"
    done
fi

if wants redis; then
    row redis GROWTH=redis
fi
