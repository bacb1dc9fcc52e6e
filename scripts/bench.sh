#!/usr/bin/env bash
# Measures what the layer costs, next to what users would otherwise use, in one run:
#
#   1. in process: criterion + interleaved rounds (benches/guard.rs), and callgrind
#      instruction counts and lines of code run per request (if valgrind is installed);
#   2. login: the token endpoint next to a raw Argon2id verify (benches/login.rs);
#   3. memory: bytes per live token at 1M tokens, and the sweep (examples/token_memory.rs);
#   4. end to end: wrk against examples/tutorial.rs, examples/bare.rs, and bare.rs
#      behind the minimal map-lookup guard (MAP_TOKEN: the floor any opaque-token
#      guard pays) and behind the two-lookup one (MAP2_TOKEN: token -> username ->
#      user, the floor of a guard that resolves the user per request) on loopback,
#      in interleaved rounds (bare, tutorial, map, map2, map2, map, tutorial, bare),
#      then in paired rounds (all four loaded at once on the same core: each one's
#      CPU time per request), with a fifth: the tutorial's layer in bare.rs's
#      binary (LAYER=1), which tells the guard's cost from the tutorial binary's
#      code layout;
#
# then prints the tables of docs/guide/performance.md and regenerates docs/perf/overhead.svg.
#
#   scripts/bench.sh                 # everything, about 15 minutes on 2 cores (after the build)
#   ONLY="guard e2e" scripts/bench.sh
#
# Environment: ONLY (subset of: guard callgrind login memory e2e), FEATURES (the
# crate features the guard bench is built with, default "dpop jwt": their rows too),
# CACHE_SIM (1, the default: callgrind also counts simulated cache misses,
# mispredicted and executed conditional branches per request; 0: instructions
# and code lines only), ROUNDS (e2e rounds,
# default 8), PAIRED_ROUNDS (default 8), RESTARTS (how many times the five servers are
# started afresh for the paired rounds, PAIRED_ROUNDS each; default 1), DURATION (seconds per wrk run, default 3), CONNECTIONS (default 32),
# TOKENS (default 1000000), CRITERION_ARGS, OUT (results directory, default
# target/perf), CARGO_TARGET_DIR. Needs: a Rust toolchain, python3, curl, wrk
# (`apt-get install wrk`); valgrind is optional.
#
# Load tests only ever target 127.0.0.1, last DURATION seconds each, and every
# server this script starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

ONLY=${ONLY:-"guard callgrind login memory e2e"}
ROUNDS=${ROUNDS:-8}
PAIRED_ROUNDS=${PAIRED_ROUNDS:-8}
RESTARTS=${RESTARTS:-1}
DURATION=${DURATION:-3}
CONNECTIONS=${CONNECTIONS:-32}
CRITERION_ARGS=${CRITERION_ARGS:-"--measurement-time 3 --warm-up-time 1"}
FEATURES=${FEATURES:-"dpop jwt"}
CACHE_SIM=${CACHE_SIM:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$CARGO_TARGET_DIR/perf}
TUTORIAL_PORT=${TUTORIAL_PORT:-18000}
BARE_PORT=${BARE_PORT:-18001}
MAP_PORT=${MAP_PORT:-18002}
MAP2_PORT=${MAP2_PORT:-18003}
LAYER_PORT=${LAYER_PORT:-18004}
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*" >&2; }
wants() { [[ " $ONLY " == *" $1 "* ]]; }
die() { echo "error: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is needed"
if wants e2e; then
    command -v curl >/dev/null || die "curl is needed for the end-to-end test"
    command -v wrk >/dev/null || die "wrk is needed for the end-to-end test: apt-get install wrk (or ONLY without e2e)"
fi

mkdir -p "$OUT"
{
    echo "date	$(date -u +%Y-%m-%d)"
    echo "cpu	$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    # "AMD EPYC" names a Zen 3 and a Zen 4 alike: the family, model and caches tell.
    echo "cpu_id	family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
    echo "caches	$(for index in /sys/devices/system/cpu/cpu0/cache/index*; do
        printf 'L%s %s %s, ' "$(cat "$index/level")" "$(cat "$index/type")" "$(cat "$index/size")"
    done 2>/dev/null | sed 's/, $//')"
    echo "cores	$(nproc)"
    echo "memory	$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "rustc	$(rustc --version)"
    echo "rounds	$ROUNDS"
    echo "duration	$DURATION"
    echo "connections	$CONNECTIONS"
    echo "paired_rounds	$PAIRED_ROUNDS"
} > "$OUT/machine.tsv"

step "build (release): benches and examples"
cargo bench --no-run --bench guard --bench login --features "$FEATURES"
cargo build --release --example tutorial --example bare --example token_memory

if wants guard; then
    step "in process: cargo bench --bench guard -- $CRITERION_ARGS"
    # shellcheck disable=SC2086
    BENCH_OUT="$OUT/guard.tsv" cargo bench --bench guard --features "$FEATURES" -- $CRITERION_ARGS | tee "$OUT/guard.log"
fi

if wants callgrind; then
    if command -v valgrind >/dev/null; then
        step "in process: callgrind instructions, simulated misses and code lines per request"
        guard_bin=$(cargo bench --no-run --bench guard --features "$FEATURES" --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "guard":
        print(m["executable"])')
        cases=$(BENCH_LIST=1 "$guard_bin")
        # With CACHE_SIM=1 (the default), callgrind also simulates the AMD EPYC's
        # caches (32 KiB 8-way L1i and L1d, its 512 KiB L2 as the last level) and
        # branch predictors: where the time goes when the instructions do not say
        # (these VMs expose no hardware counters).
        sim=()
        if [ "$CACHE_SIM" = 1 ]; then
            sim=(--cache-sim=yes --branch-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=524288,8,64)
        fi
        printf 'case\tinstructions_per_request\tl1i_misses\tl1d_misses\tl2_misses\tmispredicted_branches\tconditional_branches\n' > "$OUT/callgrind.tsv"
        for case in $cases; do
            # A proof is signed ahead, and checking its signature takes up to
            # 2.5M instructions: the DPoP rows run 1,000 more requests, not 10,000.
            small=1000 large=11000 pool=()
            case $case in
                # A paired row runs its request beside bare checks: timed, not counted.
                *_paired) continue ;;
                *dpop* | verify_*) small=100 large=1100 pool=(BENCH_PROOFS=2300) ;;
            esac
            run() {
                env "${pool[@]}" BENCH_CASE="$case" BENCH_ITERS="$1" valgrind --tool=callgrind "${sim[@]}" \
                    --dump-instr=yes --callgrind-out-file="$OUT/callgrind.$case.$1.out" "$guard_bin" >/dev/null 2>&1
            }
            run $small
            run $large
            python3 scripts/callgrind_per_request.py "$case" $((large - small)) \
                "$OUT/callgrind.$case.$small.out" "$OUT/callgrind.$case.$large.out" | tee -a "$OUT/callgrind.tsv"
        done
        # Per case, the 64-byte lines of code each request runs, and beyond its
        # yardstick (for the DPoP rows: the Bearer path and the bare check).
        python3 scripts/callgrind_code_lines.py "$OUT" | tee "$OUT/code_lines.tsv"
        rm -f "$OUT"/callgrind.*.out
    else
        echo "valgrind not installed: skipping instruction counts" >&2
    fi
fi

if wants login; then
    step "login: cargo bench --bench login -- $CRITERION_ARGS"
    # shellcheck disable=SC2086
    BENCH_OUT="$OUT/login.tsv" cargo bench --bench login -- $CRITERION_ARGS | tee "$OUT/login.log"
fi

if wants memory; then
    step "memory: cargo run --release --example token_memory"
    BENCH_OUT="$OUT/memory.tsv" "$CARGO_TARGET_DIR/release/examples/token_memory" | tee "$OUT/memory.log"
fi

if wants e2e; then
    step "end to end: wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds of bare, tutorial, map, map2, map2, map, tutorial, bare"
    # Each server gets one core and one tokio worker, wrk the other core: req/s is
    # then the server's cost per request, not the scheduler's mood.
    server_cpu=() client_cpu=()
    if command -v taskset >/dev/null && (($(nproc) >= 2)); then
        server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
        echo "pinning: servers on CPU 0 (TOKIO_WORKER_THREADS=1), wrk on CPU 1" >&2
        echo "pinning	servers on CPU 0 with 1 tokio worker, wrk on CPU 1" >> "$OUT/machine.tsv"
    fi
    pids=()
    cleanup() {
        for pid in "${pids[@]}"; do
            kill "$pid" 2>/dev/null || true
        done
        for pid in "${pids[@]}"; do
            wait "$pid" 2>/dev/null || true
        done
    }
    trap cleanup EXIT INT TERM
    # start NAME PORT EXAMPLE [VAR=value…]: one server (on CPU 0), its pid in
    # NAME_pid, once it answers.
    start() {
        local name=$1 port=$2 example=$3
        shift 3
        # Each start runs a fresh copy of the binary: a file's pages stay in the
        # page cache, so every start of one file maps its code to the same
        # physical pages (and cache sets); a copy gets new ones.
        local exe="$OUT/bin/$name"
        mkdir -p "$OUT/bin"
        rm -f "$exe"
        cp "$CARGO_TARGET_DIR/release/examples/$example" "$exe"
        env "$@" TOKIO_WORKER_THREADS=1 LOG=off ADDR="127.0.0.1:$port" "${server_cpu[@]}" "$exe" &
        pids+=($!)
        printf -v "${name}_pid" '%s' "$!"
        for _ in $(seq 50); do
            curl -s -o /dev/null "127.0.0.1:$port/" && break
            sleep 0.1
        done
    }
    # login PORT: johndoe's access token from the layer on PORT.
    login() {
        curl -s -X POST "127.0.0.1:$1/token" -d 'username=johndoe&password=secret' |
            sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
    }
    # start_all: the five servers, each checked to answer as the others do.
    start_all() {
        start tutorial "$TUTORIAL_PORT" tutorial
        start bare "$BARE_PORT" bare
        token=$(login "$TUTORIAL_PORT")
        [[ -n $token ]] || die "no token from the tutorial app"
        # The floors: bare.rs behind the minimal map-lookup guard, and behind the
        # two-lookup one (token -> username -> user, as the layer resolves users),
        # both knowing that token.
        start map "$MAP_PORT" bare MAP_TOKEN="$token"
        start map2 "$MAP2_PORT" bare MAP2_TOKEN="$token"
        # The tutorial's guard in bare.rs's binary (LAYER=1), with a token of its own:
        # beside the tutorial, it tells the guard's cost from the tutorial binary's
        # code layout (paired rounds only).
        start layer "$LAYER_PORT" bare LAYER=1
        layer_token=$(login "$LAYER_PORT")
        [[ -n $layer_token ]] || die "no token from bare.rs with LAYER=1"
        # token_of SERVER: the token SERVER knows.
        token_of() { if [[ $1 == layer ]]; then echo "$layer_token"; else echo "$token"; fi; }
        servers=(bare tutorial map map2 layer)
        me_tutorial=$(curl -s "127.0.0.1:$TUTORIAL_PORT/users/me" -H "Authorization: Bearer $token")
        for port in "$BARE_PORT" "$MAP_PORT" "$MAP2_PORT"; do
            me=$(curl -s "127.0.0.1:$port/users/me" -H "Authorization: Bearer $token")
            [[ $me_tutorial == "$me" ]] || die "different answers: $me_tutorial vs $me (port $port)"
        done
        [[ $(curl -s "127.0.0.1:$LAYER_PORT/users/me" -H "Authorization: Bearer $layer_token") == "$me_tutorial" ]] ||
            die "bare.rs with LAYER=1 answers differently"
        for port in "$MAP_PORT" "$MAP2_PORT" "$LAYER_PORT"; do
            [[ $(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$port/users/me") == 401 ]] ||
                die "the guard on port $port let a request without a token through"
        done
        echo "all five answer: $me_tutorial" >&2
    }
    start_all

    # CPU time (ns, all threads) the server has used so far.
    cpu_ns() { cat "/proc/$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
    load() { # name port pid round
        local before after
        before=$(cpu_ns "$3")
        "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
            -H "Authorization: Bearer $token" "http://127.0.0.1:$2/users/me" > "$OUT/wrk.$1.$4.txt"
        after=$(cpu_ns "$3")
        echo "cpu_ns $((after - before))" >> "$OUT/wrk.$1.$4.txt"
        printf '%-9s round %s: %s\n' "$1" "$4" "$(grep 'Requests/sec' "$OUT/wrk.$1.$4.txt")" >&2
    }
    rm -f "$OUT"/wrk.*.txt
    # warm_up: one second of load on each server (not recorded).
    warm_up() {
        for server in "${servers[@]}"; do
            port_var=${server^^}_PORT
            "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d1s -H "Authorization: Bearer $(token_of "$server")" \
                "http://127.0.0.1:${!port_var}/users/me" >/dev/null
        done
    }
    warm_up
    for round in $(seq "$ROUNDS"); do
        load bare "$BARE_PORT" "$bare_pid" "$round.a"
        load tutorial "$TUTORIAL_PORT" "$tutorial_pid" "$round.a"
        load map "$MAP_PORT" "$map_pid" "$round.a"
        load map2 "$MAP2_PORT" "$map2_pid" "$round.a"
        load map2 "$MAP2_PORT" "$map2_pid" "$round.b"
        load map "$MAP_PORT" "$map_pid" "$round.b"
        load tutorial "$TUTORIAL_PORT" "$tutorial_pid" "$round.b"
        load bare "$BARE_PORT" "$bare_pid" "$round.b"
    done

    # Paired rounds: all servers loaded at the same time, on the same core, by one
    # wrk process each; drift and noise from the host hit them alike, and each
    # server's CPU time per request (from /proc/PID/task/*/schedstat) is its cost.
    # Each restart draws a new placement of every server's code (a fresh copy of
    # its binary: new physical pages) and data (which moved one server against
    # another by a few per cent between runs): the report takes the median over
    # restarts of each restart's median.
    step "end to end, paired: $RESTARTS x $PAIRED_ROUNDS rounds of the five servers loaded at once for ${DURATION}s"
    for restart in $(seq "$RESTARTS"); do
        if ((restart > 1)); then
            cleanup
            pids=()
            start_all
            warm_up
        fi
        for r in $(seq "$PAIRED_ROUNDS"); do
            round=$(((restart - 1) * PAIRED_ROUNDS + r))
            wrk_pids=()
            declare -A before=()
            for server in "${servers[@]}"; do
                pid_var=${server}_pid
                before[$server]=$(cpu_ns "${!pid_var}")
            done
            for server in "${servers[@]}"; do
                port_var=${server^^}_PORT
                "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
                    -H "Authorization: Bearer $(token_of "$server")" "http://127.0.0.1:${!port_var}/users/me" \
                    > "$OUT/wrk.paired-$server.$round.p$restart.txt" &
                wrk_pids+=($!)
            done
            wait "${wrk_pids[@]}"
            for server in "${servers[@]}"; do
                pid_var=${server}_pid
                echo "cpu_ns $(($(cpu_ns "${!pid_var}") - before[$server]))" >> "$OUT/wrk.paired-$server.$round.p$restart.txt"
            done
            line="paired round $round:"
            for server in "${servers[@]}"; do
                line+=" $server $(awk '/Requests\/sec/ {print $2}' "$OUT/wrk.paired-$server.$round.p$restart.txt")"
            done
            echo "$line" >&2
        done
    done
    cleanup
    pids=()
fi

step "report: python3 scripts/chart.py $OUT docs/perf/overhead.svg"
python3 scripts/chart.py "$OUT" docs/perf/overhead.svg | tee "$OUT/summary.md"
