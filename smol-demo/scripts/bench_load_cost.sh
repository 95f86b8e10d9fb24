#!/bin/sh
# The load generator's own CPU per request against wrk's, both against `serve` pinned to CPU 0,
# the generators to CPU 1. CPU = user + sys of the generator process (/usr/bin/time).
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tailguard-demo}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PORT=${PORT:-18081}
taskset -c 0 $BIN serve --addr 127.0.0.1:$PORT --threads 1 2>/dev/null &
SERVER=$!
sleep 0.5
URL=http://127.0.0.1:$PORT/gophers
cpu() { /usr/bin/time -f "%U %S" -o "$TMP/time" "$@" >"$TMP/out" 2>&1; awk '{print $1 + $2}' "$TMP/time"; }
for round in 1 2 3; do
  for threads in 1 2; do
    c=$(cpu taskset -c 1 $BIN load --url $URL --rate 2000 --duration 5s --threads $threads)
    n=$(grep -o '[0-9]* ok' "$TMP/out" | grep -o '[0-9]*')
    echo "load --rate 2000 --threads $threads: $c s CPU for $n requests: $(echo "$c $n" | awk '{printf "%.1f", $1 / $2 * 1e6}') us/request, $(echo "$c" | awk '{printf "%.0f", $1 / 5 * 100}')% of a core"
  done
  for conns in 1 16; do
    c=$(cpu taskset -c 1 wrk -t1 -c$conns -d5s $URL)
    n=$(grep -o '[0-9]* requests in' "$TMP/out" | grep -o '^[0-9]*')
    echo "wrk -t1 -c$conns (closed loop, saturating): $c s CPU for $n requests: $(echo "$c $n" | awk '{printf "%.1f", $1 / $2 * 1e6}') us/request"
  done
done
kill -INT $SERVER; wait $SERVER
