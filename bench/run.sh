#!/usr/bin/env bash
# Runs PLB's benchmarks.
#
#   bench/run.sh route [JMH args]      JMH RouteBenchmark (RoutingTable.route vs a flat search, TreeMap)
#   bench/run.sh planner [JMH args]    JMH PlannerBenchmark (Planner.plan at 8x4096 .. 1000x100000)
#   bench/run.sh forecast [JMH args]   JMH ForecastBenchmark (refit, per-bucket and planner-input cost
#                                      of forecasting 4,096 slices; needs ~3 GB of heap)
#   bench/run.sh watch [--watchers N] [--writes N] [--warmup N] [--pipelined] [--timeout-s N]
#                      [--root DIR]
#                                      watch fan-out latency on an in-process 3-node cluster
#   bench/run.sh handover [options]    hold handover under steady traffic: hold time per message,
#                                      decision-to-COMPLETE, publish latency of ranges not moved
#                                      (--help for options)
#   bench/run.sh queue [options]       reference queue server: 1 KiB messages, batched and
#                                      unbatched, durable: msg/s and publish latency (--help)
#   bench/run.sh nemesis [--minutes N] [--seed N] [--faults KIND,...]
#                                      the long nemesis (plb-queue NemesisTest): every process
#                                      of a cluster crashed, paused, cut, slowed on a seeded
#                                      schedule for N minutes (default 15) under checked traffic;
#                                      needs root and nft for the link faults. Its report goes to
#                                      bench/results/nemesis-<time>.txt, every log beside it.
#                                      Runs Maven (verify of plb-queue and what it needs), not
#                                      the bench jar.
#   bench/run.sh transfer [options]    a handover moving N held messages by the chunked forward
#                                      transfer: decision/seal to COMPLETE, hold time (--held
#                                      0,10000,1000000 --payload 100 --queue key=value)
#   bench/run.sh build                 (re)builds the bench jar and its classpath
#
# On first use (no bench jar or no classpath file) it builds the whole project from the repo root
# with `mvn -B -q -DskipTests install`; when only bench sources changed it rebuilds the bench
# module alone (after changes to other modules, run `bench/run.sh build`). Extra Maven flags go
# in MVN_ARGS (e.g. MVN_ARGS=-o offline); extra JVM flags for the harnesses in JAVA_OPTS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="$here/target"
cpfile="$target/classpath.txt"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

bench_jar() {
  ls "$target"/plb-bench-*.jar 2>/dev/null | grep -v -e '-sources' -e '-tests' | head -n 1 || true
}

build_all() {
  echo "bench/run.sh: building the project (mvn -B -q -DskipTests install)..." >&2
  (cd "$root" && mvn -B -q -Dstyle.color=never ${MVN_ARGS:-} -DskipTests install) >&2
}

build_bench() {
  echo "bench/run.sh: bench sources changed; rebuilding the bench module..." >&2
  (cd "$root" && mvn -B -q -Dstyle.color=never ${MVN_ARGS:-} -DskipTests install -pl bench) >&2
}

classpath_complete() {
  local entry entries=()
  IFS=':' read -r -a entries < "$cpfile" || true
  for entry in "${entries[@]}"; do
    if [[ ! -e "$entry" ]]; then
      echo "bench/run.sh: classpath entry missing: $entry" >&2
      return 1
    fi
  done
}

ensure_built() {
  local jar
  jar="$(bench_jar)"
  if [[ -z "$jar" || ! -s "$cpfile" ]]; then
    build_all
  elif [[ -n "$(find "$here/src" "$here/pom.xml" -newer "$jar" -type f -print -quit)" ]]; then
    build_bench
  fi
  # Every classpath entry must exist (a `mvn clean` of another module removes its jar).
  if ! classpath_complete; then
    build_all
    classpath_complete || exit 1
  fi
  jar="$(bench_jar)"
  if [[ -z "$jar" || ! -s "$cpfile" ]]; then
    echo "bench/run.sh: build did not produce $target/plb-bench-*.jar and $cpfile" >&2
    exit 1
  fi
  # JMH finds benchmarks through the annotation processor's list inside the jar.
  if ! jar tf "$jar" | grep -x 'META-INF/BenchmarkList' >/dev/null; then
    echo "bench/run.sh: $jar has no META-INF/BenchmarkList (JMH annotation processor did not run)" >&2
    exit 1
  fi
  CP="$jar:$(cat "$cpfile")"
}

cmd="${1:-}"
[[ -z "$cmd" ]] && usage 2
shift

case "$cmd" in
  route)
    ensure_built
    exec java -cp "$CP" org.openjdk.jmh.Main RouteBenchmark "$@"
    ;;
  planner)
    ensure_built
    exec java -cp "$CP" org.openjdk.jmh.Main PlannerBenchmark "$@"
    ;;
  forecast)
    ensure_built
    exec java -cp "$CP" org.openjdk.jmh.Main ForecastBenchmark "$@"
    ;;
  watch)
    ensure_built
    # shellcheck disable=SC2086
    exec java ${JAVA_OPTS:-} -cp "$CP" io.plb.bench.WatchLatencyHarness "$@"
    ;;
  handover)
    ensure_built
    # shellcheck disable=SC2086
    exec java ${JAVA_OPTS:-} -cp "$CP" io.plb.bench.HandoverHarness "$@"
    ;;
  queue)
    ensure_built
    # shellcheck disable=SC2086
    exec java ${JAVA_OPTS:-} -cp "$CP" io.plb.bench.QueueHarness "$@"
    ;;
  nemesis)
    minutes=15 seed="" faults=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --faults) faults="$2"; shift 2 ;;
        *) echo "bench/run.sh nemesis: unknown option '$1'" >&2; usage 2 ;;
      esac
    done
    seed="${seed:-$(date +%s%N)}"
    stamp="$(date -u +%Y%m%dT%H%MZ)"
    mkdir -p "$here/results"
    (cd "$root" && mvn -B -Dstyle.color=never ${MVN_ARGS:-} -pl plb-queue -am verify \
        -Dtest=NemesisTest -Dsurefire.failIfNoSpecifiedTests=false \
        -Dplb.nemesis.seconds=$((minutes * 60)) -Dplb.nemesis.seed="$seed" \
        -Dplb.nemesis.keepLogs=true ${faults:+-Dplb.nemesis.faults="$faults"}) && status=0 || status=$?
    report="$root/plb-queue/target/nemesis-$seed.txt"
    if [[ -f "$report" ]]; then
      cp "$report" "$here/results/nemesis-$stamp.txt"
      echo "bench/run.sh: report in bench/results/nemesis-$stamp.txt, logs in" \
          "plb-queue/target/nemesis-$seed-logs/" >&2
    else
      echo "bench/run.sh: no report (the run failed before its end): see" \
          "plb-queue/target/surefire-reports/io.plb.queue.NemesisTest-output.txt" >&2
    fi
    exit "$status"
    ;;
  transfer)
    ensure_built
    # shellcheck disable=SC2086
    exec java ${JAVA_OPTS:-} -cp "$CP" io.plb.bench.TransferHarness "$@"
    ;;
  build)
    build_all
    ensure_built
    echo "bench/run.sh: built $(bench_jar)" >&2
    ;;
  -h|--help|help)
    usage 0
    ;;
  *)
    echo "bench/run.sh: unknown command '$cmd'" >&2
    usage 2
    ;;
esac
