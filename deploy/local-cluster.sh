#!/usr/bin/env bash
# A 3-node PLB cluster on this machine: three JVMs on 127.0.0.1, data under one folder.
#
#   deploy/local-cluster.sh [--dir DIR] up|down|status|kill N|restart N
#
# Nodes n1..n3: Raft on 127.0.0.1:7201-7203, API on 127.0.0.1:7301-7303 (what plbctl uses by
# default). Data, configs, logs and pids live in DIR (default .plb-local/ in the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PLB_LOCAL_DIR:-$ROOT/.plb-local}"
if [ "${1:-}" = "--dir" ]; then DIR="$2"; shift 2; fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
NODES=(1 2 3)

conf() { echo "$DIR/n$1.conf"; }
pidfile() { echo "$DIR/n$1.pid"; }
logfile() { echo "$DIR/n$1.log"; }

running() {
  local f; f="$(pidfile "$1")"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
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
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_for_leader
    "$ROOT/bin/plbctl" status
    echo
    echo "PLB local cluster is up. Endpoints: $(endpoints)"
    echo "Try: bin/plbctl status · bin/plbctl map · bin/plbctl watch · $0 kill 2"
    ;;
  down)
    for n in "${NODES[@]}"; do stop_node "$n" TERM; done
    ;;
  status)
    for n in "${NODES[@]}"; do
      if running "$n"; then echo "n$n running (pid $(cat "$(pidfile "$n")"))"; else echo "n$n stopped"; fi
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
    echo "usage: $0 [--dir DIR] up|down|status|kill N|restart N|endpoints" >&2
    exit 2
    ;;
esac
