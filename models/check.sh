#!/usr/bin/env bash
# check.sh -- model-check handover.pml in a list of configurations, each with an expectation.
#
#   models/check.sh                 the small set (what CI runs; under a minute on 2 cores)
#   models/check.sh --full          the small set and bigger configurations (minutes, < 1 GB each)
#   models/check.sh --big           all of those and three that need 2-6 GB (~20 minutes)
#   options:  --only REGEX          only the configurations whose name matches REGEX
#             -j N                  run N configurations at once (default: the number of CPUs)
#             --keep                keep the work directory (pan output, trails) and print it
#             --list                print the configurations and exit
#
# Every configuration is compiled and run in its own directory under a fresh temporary
# directory (nothing is written under models/):
#   spin -a <flags> handover.pml
#   gcc -O0|-O1|-O2 -DSAFETY -DNOCLAIM -DCOLLAPSE -DMEMLIM=1000 [extra] -o pan pan.c
#   ./pan -m20000 -w22        (-w24 in the full set; -w26 and MEMLIM=8000 in the big set)
# Exhaustive depth-first search (no BFS) with state compression (COLLAPSE); MEMLIM stops a
# search that would need more than 1,000 MB.
#
# Expectations:
#   hold       errors: 0, and the search was complete (not cut by the depth or memory limit)
#   fail:Pn    an error was found, and it is a violation of property Pn (A1 exactly once,
#              A2 order, A4 no loss, A5 model sanity): used for mutations, each switching one
#              rule off, to show the rule is needed and the model can see its absence
#   reach      the WITNESS expression is reachable (its assertion is the one that fails)
#
# One line per configuration: name, expected, got, states stored, seconds of search (compile
# time not included), pan's memory, then the -D flags.  Exit status: 0 when every expectation is met, 1 when
# one is not (pan's output for it is printed below the table), 2 when spin or gcc is missing or
# the arguments are wrong.  The measured states and times of every configuration, and what each
# mutation's counterexample is: README.md in this folder.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
model="$here/handover.pml"

# name | expectation | spin -D flags | extra gcc flags
# (extra: -DREVERSE -DT_REVERSE changes only the order in which pan tries processes and
#  transitions; with it pan reaches that counterexample after 0.3 M states instead of 2.8 M)
SMALL=(
  "asbuilt-2x2|hold|"
  "pipe-abort|hold|-DN0=2 -DN1=0 -DPIPE=1 -DABORT=3 -DATTEMPTS=1"
  "comeback|hold|-DN0=2 -DN1=0 -DPIPE=0 -DABORT=0 -DATTEMPTS=2"
  "comeback-pipe|hold|-DN0=2 -DN1=0 -DPIPE=1 -DABORT=0 -DATTEMPTS=2"
  "comeback-3|hold|-DN0=3 -DN1=0 -DPIPE=0 -DABORT=0 -DATTEMPTS=2"
  "retry-prepare|hold|-DN0=2 -DN1=0 -DPIPE=0 -DABORT=1 -DATTEMPTS=2"
  "retry-prep-pipe|hold|-DN0=2 -DN1=0 -DPIPE=1 -DABORT=1 -DATTEMPTS=2"
  "stale|hold|-DSTALE=1 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
  "stale-retry|hold|-DSTALE=1 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=3 -DATTEMPTS=2"
  "no-C1-seal|fail:A4|-DSEAL_FIRST=0 -DN0=1 -DN1=0 -DPIPE=0 -DABORT=0 -DATTEMPTS=1"
  "no-C2-catchup|fail:A2|-DFIX_CATCHUP=0 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=0 -DATTEMPTS=1"
  "no-C3-tag|fail:A2|-DFIX_TAG=0 -DN0=2 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
  "no-C4-barrier|fail:A2|-DFIX_BARRIER=0 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=0 -DATTEMPTS=2"
  "no-C5-comeback|fail:A2|-DFIX_HELD=0 -DN0=2 -DN1=0 -DPIPE=0 -DABORT=0 -DATTEMPTS=2"
  "no-C5-retry|fail:A2|-DFIX_HELD=0 -DN0=2 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=2|-DREVERSE -DT_REVERSE"
  "no-fence|fail:A2|-DFENCE=0 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
  "no-epoch-bump|fail:A1|-DEPOCH_BUMP=0 -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=2"
  "no-dedup|fail:A1|-DDEDUP=0 -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
  "dedup-anywhere|fail:A4|-DDEDUP=2 -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
  "w-fence|reach|-DWITNESS=W_FENCE -DN0=2 -DN1=0 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
  "w-dedup|reach|-DWITNESS=W_DEDUP -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
  "w-retry|reach|-DWITNESS=W_RETRY -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=2"
  "w-comeback|reach|-DWITNESS=W_COMEBACK -DN0=1 -DN1=0 -DPIPE=0 -DABORT=0 -DATTEMPTS=2"
  "w-late|reach|-DWITNESS=W_LATE -DN0=1 -DN1=0 -DPIPE=0 -DABORT=3 -DATTEMPTS=1"
  "w-refuse-xfer|reach|-DWITNESS=W_REFUSE_XFER -DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
)
# --full: minutes, each under 1 GB
FULL=(
  "2x2-pipe|hold|-DN0=2 -DN1=2 -DPIPE=1 -DABORT=0 -DATTEMPTS=1"
  "3-pipe-abort|hold|-DN0=3 -DN1=0 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
  "1x1-abort|hold|-DN0=1 -DN1=1 -DPIPE=0 -DABORT=2 -DATTEMPTS=1"
  "1x1-pipe-abort|hold|-DN0=1 -DN1=1 -DPIPE=1 -DABORT=3 -DATTEMPTS=1"
  "1x1-comeback|hold|-DN0=1 -DN1=1 -DPIPE=0 -DABORT=0 -DATTEMPTS=2"
  "retry-switch|hold|-DN0=1 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=2"
  "retry-both|hold|-DN0=1 -DN1=0 -DPIPE=0 -DABORT=3 -DATTEMPTS=2"
  "noop-pipe-abort|hold|-DNOOP=1 -DN0=2 -DN1=0 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
)
# --big: more than 1 GB (up to 6 GB), minutes each
BIG=(
  "retry-switch-2|hold|-DN0=2 -DN1=0 -DPIPE=0 -DABORT=2 -DATTEMPTS=2"
  "retry-pipe-2|hold|-DN0=2 -DN1=0 -DPIPE=1 -DABORT=3 -DATTEMPTS=2"
  "2x1-pipe-abort|hold|-DN0=2 -DN1=1 -DPIPE=1 -DABORT=2 -DATTEMPTS=1"
)

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

full=0; big=0; only=""; jobs=""; keep=0; list=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --big) full=1; big=1 ;;
    --only) [ $# -ge 2 ] || usage; only="$2"; shift ;;
    -j) [ $# -ge 2 ] || usage; jobs="$2"; shift ;;
    -j*) jobs="${1#-j}" ;;
    --keep) keep=1 ;;
    --list) list=1 ;;
    -h|--help) usage ;;
    *) echo "check.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done

# each entry: set (S small, F full, B big) | name | expectation | flags | extra
configs=()
for c in "${SMALL[@]}"; do configs+=("S|$c"); done
if [ "$full" = 1 ]; then for c in "${FULL[@]}"; do configs+=("F|$c"); done; fi
if [ "$big" = 1 ]; then for c in "${BIG[@]}"; do configs+=("B|$c"); done; fi
if [ -n "$only" ]; then
  sel=()
  for c in "${configs[@]}"; do
    n="${c#?|}"; n="${n%%|*}"
    if [[ "$n" =~ $only ]]; then sel+=("$c"); fi
  done
  configs=("${sel[@]+"${sel[@]}"}")
  if [ ${#configs[@]} -eq 0 ]; then echo "check.sh: no configuration matches '$only'" >&2; exit 2; fi
fi
if [ "$list" = 1 ]; then printf '%s\n' "${configs[@]}"; exit 0; fi

missing=""
command -v spin >/dev/null 2>&1 || missing="$missing spin"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
if [ -n "$missing" ]; then
  echo "check.sh: not found on PATH:$missing. The model check needs Spin and a C compiler:" >&2
  echo "  apt-get install spin gcc     (Debian/Ubuntu; or https://spinroot.com)" >&2
  exit 2
fi
[ -f "$model" ] || { echo "check.sh: $model not found" >&2; exit 2; }

if [ -z "$jobs" ]; then jobs="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"; fi
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "check.sh: -j needs a positive number" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/plb-model.XXXXXX")"
cleanup() { if [ "$keep" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
killtree() {   # a running configuration: its subshell, gcc or pan
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do killtree "$c"; done
  kill "$1" 2>/dev/null
}
trap 'for j in $(jobs -p); do killtree "$j"; done; exit 130' INT TERM

# the property an assertion belongs to, from its text as pan prints it
property() {
  case "$1" in
    *nFence*|*nDrop*|*nLate*|*nXref*|*abortedSw*|*comeBack*) echo witness ;;
    *"delivCnt[hm]==0"*) echo A1 ;;
    *lastDel*) echo A2 ;;
    *nDone*|*"acked[i]"*|*"ph[V]"*|*"empty(Q[0])"*) echo A4 ;;
    *"HOLD[s]"*|*"own[hw]"*) echo A5 ;;
    *) echo model ;;
  esac
}

# run one configuration in $work/<index>; writes the result line to result, 0 = as expected
run_one() {
  local i="$1" set="$2" name="$3" expect="$4" flags="$5" extra="$6"
  local d="$work/$i"
  # a hold configuration searches everything: optimise; a failing or witness one stops early:
  # compile fast.  Hash table and memory limit by size.
  local opt="-O0" hash="-w22" memlim=1000
  case "$set" in
    S) [ "$expect" = hold ] && opt="-O1" ;;
    F) [ "$expect" = hold ] && opt="-O2"; hash="-w24" ;;
    B) [ "$expect" = hold ] && opt="-O2"; hash="-w26"; memlim=8000 ;;
  esac
  mkdir -p "$d" && cp "$model" "$d/" && cd "$d" || return 1
  local got states secs="-" mb="-" ok=1
  # shellcheck disable=SC2086
  if ! spin -a $flags handover.pml >spin.out 2>&1; then
    got="spin-error"; states="-"
  elif ! gcc $opt -DSAFETY -DNOCLAIM -DCOLLAPSE -DMEMLIM=$memlim $extra -o pan pan.c >gcc.out 2>&1; then
    got="gcc-error"; states="-"; cat gcc.out >>spin.out
  else
    local t0 t1
    t0=$(date +%s%N)
    ./pan -m20000 $hash >pan.out 2>&1
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    states=$(awk '/states, stored/ { print $1; exit }' pan.out)
    [ -n "$states" ] || states="-"
    mb=$(awk '/total actual memory usage/ { printf "%d", $1; exit }' pan.out)
    [ -n "$mb" ] || mb="-"
    local errors
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
    if grep -q "MEMLIM\|out of memory" pan.out; then
      got="out-of-memory"
    elif [ -z "$errors" ]; then
      got="no-result"
    elif [ "$errors" = 0 ]; then
      if grep -q "max search depth too small" pan.out; then got="cut-by-depth"; else got="hold"; fi
    elif grep -q "assertion violated" pan.out; then
      local p
      p=$(property "$(grep -m1 'assertion violated' pan.out)")
      if [ "$p" = witness ]; then got="reach"; else got="fail:$p"; fi
    elif grep -q "invalid end state" pan.out; then
      got="fail:A4"
    else
      got="fail:other"
    fi
  fi
  [ "$got" = "$expect" ] && ok=0
  printf '%-16s expected %-7s got %-8s %9s states %6s s %5s MB  %s%s\n' \
    "$name" "$expect" "$got" "$states" "$secs" "$mb" "$flags" "${extra:+  (gcc $extra)}" >result
  if [ "$ok" != 0 ]; then
    {
      echo "---- $name: $flags ${extra:+(gcc $extra)}"
      cat spin.out 2>/dev/null | head -20
      grep -v '^\s*$' pan.out 2>/dev/null | head -30
    } >detail
  fi
  return "$ok"
}

mode=small; [ "$full" = 1 ] && mode=full; [ "$big" = 1 ] && mode=big
echo "handover.pml: ${#configs[@]} configurations, $jobs at a time ($mode set)"
start=$(date +%s)
declare -a pids=()
next_print=0
failed=0
print_ready() {   # print finished results in list order
  while [ "$next_print" -lt "${#configs[@]}" ] && [ -f "$work/$next_print/done" ]; do
    cat "$work/$next_print/result" 2>/dev/null || echo "configuration $next_print: could not be set up in $work"
    [ "$(cat "$work/$next_print/done")" = 0 ] || failed=$((failed + 1))
    next_print=$((next_print + 1))
  done
}
for i in "${!configs[@]}"; do
  IFS='|' read -r set name expect flags extra <<<"${configs[$i]}"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n 2>/dev/null || true
    print_ready
  done
  ( run_one "$i" "$set" "$name" "$expect" "$flags" "${extra:-}"; r=$?
    echo "$r" >"$work/$i/done.tmp" && mv "$work/$i/done.tmp" "$work/$i/done" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; print_ready; done
print_ready

for i in "${!configs[@]}"; do
  [ -f "$work/$i/detail" ] && cat "$work/$i/detail"
done
elapsed=$(( $(date +%s) - start ))
if [ "$failed" -ne 0 ]; then
  echo "FAILED: $failed of ${#configs[@]} configurations did not meet their expectation (${elapsed} s)"
  exit 1
fi
echo "OK: all ${#configs[@]} configurations met their expectation (${elapsed} s)"
exit 0
