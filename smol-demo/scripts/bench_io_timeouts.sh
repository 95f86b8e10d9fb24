#!/bin/bash
# What the TimeoutIo limits cost the hello server: `serve` with them (on) and without them
# (`--no-io-timeouts`, off), alternating, several rounds, the order flipped every round.
#
# The server runs one executor thread pinned to CPU 0; the load runs on CPU 1. Per run it
# prints requests per second and the server's CPU time per request (the sum of
# /proc/PID/task/*/schedstat over the run divided by the requests answered). CPU per request is
# disturbed much less than throughput by other work on the machine. Compare within a round.
#
#   TOOL=wrk  (default) wrk -t1 -c32 for DUR: the most the server can do.
#   TOOL=load the built-in open-loop generator at RATE for DUR (64 in flight at most).
#
# Usage: cargo build --release -p tailguard-demo && ROUNDS=20 smol-demo/scripts/bench_io_timeouts.sh
set -eu
B=${B:-$(dirname "$0")/../../target/release/tailguard-demo}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-3s}
TOOL=${TOOL:-wrk}
RATE=${RATE:-20000}
# %.0f, not %d: Debian's awk (mawk) clamps %d at 2^31-1 ns, i.e. 2.1 s of CPU, which a saturated run exceeds.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="on off"; else order="off on"; fi
  line="round $round"
  for mode in $order; do
    port=$((18100 + round * 2)); flag=""
    if [ "$mode" = off ]; then port=$((port + 1)); flag="--no-io-timeouts"; fi
    taskset -c 0 "$B" serve --addr 127.0.0.1:$port --threads 1 $flag 2>/dev/null &
    pid=$!
    sleep 0.3
    before=$(cpu_ns $pid)
    if [ "$TOOL" = wrk ]; then
      out=$(taskset -c 1 wrk -t1 -c32 -d"$DUR" http://127.0.0.1:$port/gophers 2>/dev/null)
      rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
      n=$(echo "$out" | awk '/requests in/ {print $1}')
      extra=""
    else
      out=$(taskset -c 1 "$B" load --url http://127.0.0.1:$port/gophers --rate "$RATE" \
            --duration "$DUR" --concurrency 64 --threads 1 --json)
      n=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])')
      rps=$(echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["throughput"]))')
      extra=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("p99 %.2f ms errors %d dropped %d" % (r["latency"]["p99_ms"], r["errors"], r["dropped"]))')
    fi
    after=$(cpu_ns $pid)
    kill $pid; wait $pid 2>/dev/null || true
    line="$line $mode: $rps req/s $(( (after - before) / n )) ns/req $extra;"
  done
  echo "$line"
done
