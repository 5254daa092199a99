# Shared by bin/plb and bin/plbctl: build PLB on first use (and after a source change), then give
# the runtime class path. Sourced, not run.
PLB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLB_VERSION="0.1.0-SNAPSHOT"
PLB_STAMP="$PLB_ROOT/plb-server/target/.plb-built"

plb_ensure_built() {
  local stale=""
  if [ ! -f "$PLB_STAMP" ] || [ ! -f "$PLB_ROOT/plb-server/target/classpath.txt" ]; then
    stale="first use"
  elif [ -n "$(find "$PLB_ROOT" -path "$PLB_ROOT/.plb-local" -prune -o \
        \( -name '*.java' -o -name '*.proto' -o -name pom.xml \) -newer "$PLB_STAMP" -print -quit)" ]; then
    stale="sources changed"
  fi
  if [ -n "$stale" ]; then
    echo "plb: building ($stale; this takes a minute the first time)..." >&2
    local log; log="$(mktemp)"
    (cd "$PLB_ROOT" && mvn -B -q -DskipTests install -pl plb-server -am) > "$log" 2>&1 || {
      cat "$log" >&2
      echo "plb: build failed" >&2
      exit 1
    }
    touch "$PLB_STAMP"
  fi
}

plb_classpath() {
  echo "$PLB_ROOT/plb-server/target/plb-server-$PLB_VERSION.jar:$(cat "$PLB_ROOT/plb-server/target/classpath.txt")"
}
