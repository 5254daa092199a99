#!/usr/bin/env bash
# Runs a command while sampling the machine's load every 2 s, for benchmark noise notes.
#
#   bench/sample-load.sh SAMPLES_FILE command [args...]
#
# Each sample line: UTC time, /proc/loadavg, and the other java processes (pid and main class or
# jar) that are not the command's own. At the end it prints a summary to stderr: samples taken,
# the largest 1-minute load average, and how many samples saw a foreign java process.
set -euo pipefail
out="${1:?samples file}"
shift
: > "$out"
"$@" &
cmd=$!
mine() {  # the command's process tree
  local p=$1
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null); do mine "$c"; done
}
sample() {
  local own others
  own=" $(mine "$cmd" | tr '\n' ' ') "
  others=$(pgrep -x java 2>/dev/null | while read -r p; do
    [[ "$own" == *" $p "* ]] && continue
    printf '%s:%s ' "$p" "$(tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null \
      | grep -oE '(org\.codehaus\.plexus\.classworlds\S*|surefire\S*|-jar \S+|[A-Za-z0-9_.]+Main\b|[A-Z][A-Za-z0-9]+Harness|[A-Za-z0-9_.]+ *$)' \
      | head -n 1 | tr ' ' '_')"
  done)
  echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg) others=[${others% }]" >> "$out"
}
while kill -0 "$cmd" 2>/dev/null; do
  sample
  sleep 2
done
wait "$cmd"
rc=$?
n=$(wc -l < "$out")
maxload=$(awk '{print $2}' "$out" | sort -g | tail -n 1)
busy=$(grep -vc 'others=\[\]' "$out" || true)
echo "sample-load: $n samples, max 1-min load ${maxload:-n/a}, samples with a foreign java process: $busy" >&2
exit "$rc"
