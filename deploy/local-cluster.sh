#!/usr/bin/env bash
# A 3-node PLB cluster on this machine, with three reference queue servers beside it: JVMs on
# 127.0.0.1, data under one folder.
#
#   deploy/local-cluster.sh [--dir DIR] up|down|status|kill N|restart N|kill-queue N|restart-queue N
#
# Nodes n1..n3: Raft on 127.0.0.1:7201-7203, API on 127.0.0.1:7301-7303 (what plbctl uses by
# default). Queue servers q1..q3 on 127.0.0.1:7401-7403 (PLB_QUEUES=0 starts none). On first
# start the ring is split into 16 ranges spread over the queue servers. Data, configs, logs and
# pids live in DIR (default .plb-local/ in the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PLB_LOCAL_DIR:-$ROOT/.plb-local}"
if [ "${1:-}" = "--dir" ]; then DIR="$2"; shift 2; fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
NODES=(1 2 3)
QUEUES=()
for ((q = 1; q <= ${PLB_QUEUES:-3}; q++)); do QUEUES+=("$q"); done

conf() { echo "$DIR/n$1.conf"; }
pidfile() { echo "$DIR/n$1.pid"; }
logfile() { echo "$DIR/n$1.log"; }

running() {
  local f; f="$(pidfile "$1")"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

qpidfile() { echo "$DIR/q$1.pid"; }
qrunning() {
  local f; f="$(qpidfile "$1")"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

start_queue() {
  local q=$1
  if qrunning "$q"; then echo "q$q already running (pid $(cat "$(qpidfile "$q")"))"; return; fi
  local from; from="$(stat -c %s "$DIR/q$q.log" 2>/dev/null || echo 0)"
  nohup "$ROOT/bin/plb" queue --id="q$q" --listen="127.0.0.1:$((7400 + q))" \
    --data="$DIR/q$q" --plb="$(endpoints)" >> "$DIR/q$q.log" 2>&1 &
  echo $! > "$(qpidfile "$q")"
  wait_for_queue "$q" "$from"
}

# Waits until queue server q logged that it serves (in the log past byte offset $2), or fails
# with the end of its log when it exits first.
wait_for_queue() {
  local q=$1 from=$2 pid; pid="$(cat "$(qpidfile "$q")")"
  local deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    if tail -c +"$((from + 1))" "$DIR/q$q.log" 2>/dev/null | grep -q "queue server q$q serving on"; then
      echo "q$q started (pid $pid, log $DIR/q$q.log)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "q$q exited during start; the end of $DIR/q$q.log:" >&2
      tail -c +"$((from + 1))" "$DIR/q$q.log" | tail -n 15 >&2
      rm -f "$(qpidfile "$q")"
      return 1
    fi
    sleep 0.2
  done
  echo "q$q did not start within 90 s; see $DIR/q$q.log" >&2
  return 1
}

stop_queue() {
  local q=$1 sig=${2:-TERM}
  if ! qrunning "$q"; then rm -f "$(qpidfile "$q")"; return; fi
  local pid; pid="$(cat "$(qpidfile "$q")")"
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$(qpidfile "$q")"
  echo "q$q stopped ($sig)"
}

# First start only: 16 equal ranges, owners round-robin over the queue servers.
lay_out_ranges() {
  [ ${#QUEUES[@]} -gt 0 ] || return 0
  local deadline=$((SECONDS + 60))
  until [ "$("$ROOT/bin/plbctl" servers --json 2>/dev/null | grep -o '"id":"q' | wc -l)" -ge ${#QUEUES[@]} ]; do
    [ $SECONDS -lt $deadline ] || { echo "queue servers did not register; see $DIR/q*.log" >&2; return 1; }
    sleep 0.5
  done
  if ! "$ROOT/bin/plbctl" map --json | grep -q '"owner":null'; then return 0; fi
  echo "laying out 16 ranges over ${#QUEUES[@]} queue servers..."
  local step=$((1 << 60))
  # Each step may fail harmlessly (already done by an earlier try whose answer was lost); the
  # map is checked at the end.
  for i in $(seq 1 15); do
    "$ROOT/bin/plbctl" split "$(printf '0x%016x' $(((i - 1) * step)))" --at "$(printf '0x%016x' $((i * step)))" > /dev/null 2>&1 || true
  done
  for i in $(seq 0 15); do
    local q=${QUEUES[$((i % ${#QUEUES[@]}))]}
    "$ROOT/bin/plbctl" assign "$(printf '0x%016x' $((i * step)))" "q$q" > /dev/null 2>&1 || true
  done
  if "$ROOT/bin/plbctl" map --json | grep -q '"owner":null'; then
    echo "some ranges are still unassigned; see 'bin/plbctl map' and assign them" >&2
    return 1
  fi
}

write_conf() {
  local n=$1
  {
    echo "# PLB node n$n of the local cluster (written by deploy/local-cluster.sh)"
    echo "node.id = n$n"
    echo "node.dataDir = $DIR/n$n"
    for p in "${NODES[@]}"; do
      echo "peer.n$p.raft = 127.0.0.1:$((7200 + p))"
      echo "peer.n$p.api = 127.0.0.1:$((7300 + p))"
    done
  } > "$(conf "$n")"
}

start_node() {
  local n=$1
  if running "$n"; then echo "n$n already running (pid $(cat "$(pidfile "$n")"))"; return; fi
  write_conf "$n"
  nohup "$ROOT/bin/plb" server --config "$(conf "$n")" >> "$(logfile "$n")" 2>&1 &
  echo $! > "$(pidfile "$n")"
  echo "n$n started (pid $!, log $(logfile "$n"))"
}

stop_node() {
  local n=$1 sig=${2:-TERM}
  if ! running "$n"; then rm -f "$(pidfile "$n")"; return; fi
  local pid; pid="$(cat "$(pidfile "$n")")"
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$n")"
  echo "n$n stopped ($sig)"
}

wait_for_leader() {
  local deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    if out="$("$ROOT/bin/plbctl" --timeout 2 status --json 2>/dev/null)" \
        && echo "$out" | grep -q '"leader":"n'; then
      return 0
    fi
    sleep 0.5
  done
  echo "no leader after 90 s; see the logs in $DIR" >&2
  return 1
}

endpoints() { echo "127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303"; }

case "${1:-}" in
  up)
    "$ROOT/bin/plb" --help > /dev/null   # builds on first use, once, before three JVMs start
    unset PLB_REBUILD                     # ...and never again under a running process
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_for_leader
    for q in "${QUEUES[@]}"; do start_queue "$q"; done
    lay_out_ranges
    "$ROOT/bin/plbctl" status
    echo
    echo "PLB local cluster is up. Endpoints: $(endpoints)"
    echo "Try: bin/plbctl map · bin/plb workload --duration 30 · bin/plbctl move RANGE --to q2"
    ;;
  down)
    for q in "${QUEUES[@]}"; do stop_queue "$q" TERM; done
    for n in "${NODES[@]}"; do stop_node "$n" TERM; done
    ;;
  kill-queue)
    [ -n "${2:-}" ] || { echo "usage: $0 kill-queue N" >&2; exit 2; }
    stop_queue "$2" KILL
    ;;
  restart-queue)
    [ -n "${2:-}" ] || { echo "usage: $0 restart-queue N" >&2; exit 2; }
    stop_queue "$2" TERM
    start_queue "$2"
    ;;
  status)
    for n in "${NODES[@]}"; do
      if running "$n"; then echo "n$n running (pid $(cat "$(pidfile "$n")"))"; else echo "n$n stopped"; fi
    done
    for q in "${QUEUES[@]}"; do
      if qrunning "$q"; then echo "q$q running (pid $(cat "$(qpidfile "$q")"))"; else echo "q$q stopped"; fi
    done
    "$ROOT/bin/plbctl" --timeout 3 status || true
    ;;
  kill)
    [ -n "${2:-}" ] || { echo "usage: $0 kill N" >&2; exit 2; }
    stop_node "$2" KILL
    ;;
  restart)
    [ -n "${2:-}" ] || { echo "usage: $0 restart N" >&2; exit 2; }
    stop_node "$2" TERM
    start_node "$2"
    ;;
  endpoints)
    endpoints
    ;;
  *)
    echo "usage: $0 [--dir DIR] up|down|status|kill N|restart N|kill-queue N|restart-queue N|endpoints" >&2
    exit 2
    ;;
esac
