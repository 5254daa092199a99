# Shared by bin/plb and bin/plbctl: build PLB on first use (and after a source change), then give
# the runtime class path. Sourced, not run.
PLB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLB_VERSION="0.1.0-SNAPSHOT"
PLB_STAMP="$PLB_ROOT/plb-server/target/.plb-built"
# Both runnable modules: the PLB node (plb-server) and the reference queue server (plb-queue).

plb_ensure_built() {
  # One build at a time: three nodes and a plbctl may start together.
  mkdir -p "$PLB_ROOT/plb-server/target"
  exec 9> "$PLB_ROOT/plb-server/target/.plb-build.lock"
  flock 9
  local stale=""
  if [ ! -f "$PLB_STAMP" ] || [ ! -f "$PLB_ROOT/plb-server/target/classpath.txt" ] \
      || [ ! -f "$PLB_ROOT/plb-queue/target/classpath.txt" ]; then
    stale="first use"
  elif [ -n "${PLB_REBUILD:-}" ]; then
    stale="PLB_REBUILD set"
  elif [ -z "${PLB_QUIET_STALE:-}" ] && plb_sources_newer_than_jars; then
    # Rebuilding replaces the jars under any running PLB process, so it is never automatic.
    echo "plb: sources changed since the last build; PLB_REBUILD=1 rebuilds (stop running nodes first)" >&2
  fi
  if [ -n "$stale" ]; then
    echo "plb: building ($stale; this takes a minute the first time)..." >&2
    local log; log="$(mktemp)"
    (cd "$PLB_ROOT" && mvn -B -q -DskipTests install -pl plb-server,plb-queue -am) > "$log" 2>&1 || {
      cat "$log" >&2
      echo "plb: build failed" >&2
      exit 1
    }
    touch "$PLB_STAMP"
  fi
  flock -u 9
}

# Whether a module's main sources (or its pom) are newer than the jar the class path runs: each
# module against its own jar, so a plain `mvn install` counts as a build.
plb_sources_newer_than_jars() {
  local module jar
  for module in proto plb-core plb-client plb-server plb-queue; do
    jar="$(ls "$PLB_ROOT/$module/target/"*-"$PLB_VERSION".jar 2>/dev/null | head -n 1)"
    [ -n "$jar" ] || return 0
    if [ -n "$(find "$PLB_ROOT/$module" -path "$PLB_ROOT/$module/target" -prune -o \
          \( -name '*.java' -o -name '*.proto' -o -name pom.xml \) \
          \( -path '*/src/main/*' -o -name pom.xml \) -newer "$jar" -print -quit 2>/dev/null)" ]; then
      return 0
    fi
  done
  return 1
}

plb_classpath() {
  echo "$PLB_ROOT/plb-server/target/plb-server-$PLB_VERSION.jar:$PLB_ROOT/plb-queue/target/plb-queue-$PLB_VERSION.jar:$(cat "$PLB_ROOT/plb-server/target/classpath.txt"):$(cat "$PLB_ROOT/plb-queue/target/classpath.txt")"
}
