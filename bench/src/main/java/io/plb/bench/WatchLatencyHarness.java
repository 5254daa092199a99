package io.plb.bench;

import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.server.PlbNode;
import io.plb.server.testing.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Map-change fan-out latency on a real in-process 3-node PLB cluster: how long after an admin
 * write each of W watchers' listeners sees the new map version.
 *
 * <p>Set-up: a {@link TestCluster} (Ratis over gRPC, RocksDB, gRPC APIs on loopback) in a temporary
 * folder; W {@link MapWatcher}s spread round-robin over the three nodes, one {@link Endpoints} per
 * node (its address first, the others after it for failover) so that all streams to a node share
 * one channel. After every watcher has its first map, M writes are made one after another through
 * a {@link PlbAdminClient}: range 0 is pinned and unpinned alternately. Each write is timed from
 * just before the call ({@code write-start}) and from the moment the call returned, i.e. the commit
 * was acknowledged ({@code commit-ack}), to the moment each watcher's listener is called with that
 * version. By default the next write is sent only after every watcher has seen the previous one
 * (isolated latency); {@code --pipelined} sends the writes back to back instead.
 *
 * <p>A listener can see a version before the admin call returns (its node applied it before the
 * ack reached the client); such commit-ack latencies are negative and are kept as they are.
 *
 * <p>Usage: {@code WatchLatencyHarness [--watchers N] [--writes N] [--warmup N] [--pipelined]
 * [--timeout-s N] [--root DIR] [--node-setting key=value]...}.
 */
public final class WatchLatencyHarness {
  private static final Logger LOG = LoggerFactory.getLogger(WatchLatencyHarness.class);

  private WatchLatencyHarness() {}

  /** Settings from the command line. */
  record Options(
      int watchers, int writes, int warmup, boolean pipelined, int timeoutSeconds, Path rootParent,
      Map<String, String> nodeSettings) {
    static Options parse(String[] args) {
      int watchers = 1000;
      int writes = 200;
      int warmup = 10;
      boolean pipelined = false;
      int timeout = 60;
      Path rootParent = null;
      Map<String, String> nodeSettings = new LinkedHashMap<>();
      for (int i = 0; i < args.length; i++) {
        switch (args[i]) {
          case "--watchers" -> watchers = Integer.parseInt(value(args, ++i));
          case "--writes" -> writes = Integer.parseInt(value(args, ++i));
          case "--warmup" -> warmup = Integer.parseInt(value(args, ++i));
          case "--pipelined" -> pipelined = true;
          case "--timeout-s" -> timeout = Integer.parseInt(value(args, ++i));
          case "--root" -> rootParent = Path.of(value(args, ++i));
          case "--node-setting" -> {
            String kv = value(args, ++i);
            int eq = kv.indexOf('=');
            if (eq <= 0) {
              throw new IllegalArgumentException("--node-setting needs key=value, got " + kv);
            }
            nodeSettings.put(kv.substring(0, eq), kv.substring(eq + 1));
          }
          case "-h", "--help" -> {
            System.out.println(
                "usage: WatchLatencyHarness [--watchers N (1000)] [--writes N (200)]"
                    + " [--warmup N (10)] [--pipelined] [--timeout-s N (60)]"
                    + " [--root DIR (parent of the temporary cluster folder; default java.io.tmpdir)]"
                    + " [--node-setting key=value (a PLB node setting for all nodes; repeatable)]");
            System.exit(0);
          }
          default -> throw new IllegalArgumentException("unknown argument " + args[i]);
        }
      }
      if (watchers < 1 || writes < 1 || warmup < 0 || timeout < 1) {
        throw new IllegalArgumentException("watchers and writes must be >= 1, warmup >= 0");
      }
      return new Options(
          watchers, writes, warmup, pipelined, timeout, rootParent, Map.copyOf(nodeSettings));
    }

    private static String value(String[] args, int i) {
      if (i >= args.length) {
        throw new IllegalArgumentException(args[i - 1] + " needs a value");
      }
      return args[i];
    }
  }

  /**
   * What one watcher saw: (version, nanoTime) per listener call, appended on the watcher's
   * callback thread (calls for one watcher never overlap) and read by the main thread after
   * {@link #latest} shows the version it waits for (the volatile write publishes the arrays).
   */
  static final class Recorder implements MapWatcher.Listener {
    final int id;
    final int node;
    private final Counters counters;
    private long[] versions = new long[64];
    private long[] times = new long[64];
    private int size;
    volatile long latest = -1;
    volatile int fullMaps;

    Recorder(int id, int node, Counters counters) {
      this.id = id;
      this.node = node;
      this.counters = counters;
    }

    @Override
    public void onMap(ClusterImage image, MapDelta delta) {
      long now = System.nanoTime();
      long v = image.version();
      if (size == versions.length) {
        versions = Arrays.copyOf(versions, size * 2);
        times = Arrays.copyOf(times, size * 2);
      }
      versions[size] = v;
      times[size] = now;
      size++;
      if (delta == null) {
        fullMaps++;
      }
      long before = latest;
      latest = v;
      if (v > before) { // a repeated full map of the same version is not counted twice
        counters.seen(v);
      }
    }

    /** When this watcher saw {@code version}, or {@code Long.MIN_VALUE} if it never did. */
    long timeOf(long version) {
      int i = Arrays.binarySearch(versions, 0, size, version);
      return i >= 0 ? times[i] : Long.MIN_VALUE;
    }

    int size() {
      return size;
    }
  }

  /** Per-version count of watchers that saw it; wakes the main thread when all have. */
  static final class Counters {
    private final AtomicIntegerArray seen;
    private final long base;
    private final int watchers;
    private final Thread waiter;
    final AtomicLong outOfWindow = new AtomicLong();

    Counters(long base, int capacity, int watchers, Thread waiter) {
      this.seen = new AtomicIntegerArray(capacity);
      this.base = base;
      this.watchers = watchers;
      this.waiter = waiter;
    }

    void seen(long version) {
      long i = version - base;
      if (i < 0 || i >= seen.length()) {
        outOfWindow.incrementAndGet();
        return;
      }
      if (seen.incrementAndGet((int) i) == watchers) {
        LockSupport.unpark(waiter);
      }
    }

    int count(long version) {
      long i = version - base;
      return i < 0 || i >= seen.length() ? 0 : seen.get((int) i);
    }

    /** Waits until every watcher has seen {@code version}; false on timeout. */
    boolean awaitAll(long version, long deadlineNanos) {
      while (count(version) < watchers) {
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
          return false;
        }
        LockSupport.parkNanos(Math.min(left, 5_000_000L));
      }
      return true;
    }
  }

  /** One admin write and its timing. */
  record Write(long version, long startNanos, long ackNanos, boolean pin) {}

  public static void main(String[] args) {
    Bench.exitWith("watch harness", () -> run(Options.parse(args)));
  }

  static int run(Options o) throws Exception {
    Path root = Bench.tempRoot(o.rootParent(), "plb-watch-bench");
    TestCluster cluster = null;
    PlbAdminClient admin = null;
    List<Endpoints> endpoints = new ArrayList<>();
    List<MapWatcher> watchers = new ArrayList<>();
    int problems = 0;
    try {
      say("date " + Instant.now() + ", cluster root " + root
          + (o.nodeSettings().isEmpty() ? "" : ", node settings " + o.nodeSettings()));
      long t0 = System.nanoTime();
      phase("start cluster");
      cluster = TestCluster.start(root, 3, o.nodeSettings());
      int leader = cluster.awaitLeader(Duration.ofSeconds(30));
      say("3-node cluster up in " + ms(System.nanoTime() - t0) + " ms; leader " + nodeName(cluster, leader)
          + "; endpoints " + cluster.endpoints());
      admin = PlbAdminClient.newBuilder()
          .endpoints(rotate(cluster.endpoints(), leader))
          .deadline(Duration.ofSeconds(o.timeoutSeconds()))
          .build();
      // One write so the map is past version 0 before the watchers subscribe.
      long base = admin.registerServer("bench-q1", "127.0.0.1:9001", 1.0);
      cluster.awaitAllApplied(base, Duration.ofSeconds(30));

      int totalWrites = o.warmup() + o.writes();
      Counters counters =
          new Counters(base, totalWrites * 4 + 1024, o.watchers(), Thread.currentThread());
      for (int n = 0; n < cluster.size(); n++) {
        endpoints.add(new Endpoints(rotate(cluster.endpoints(), n)));
      }
      phase("subscribe " + o.watchers() + " watchers");
      Recorder[] recorders = new Recorder[o.watchers()];
      long subscribeStart = System.nanoTime();
      for (int w = 0; w < o.watchers(); w++) {
        int node = w % cluster.size();
        recorders[w] = new Recorder(w, node, counters);
        watchers.add(new MapWatcher(endpoints.get(node), recorders[w]).start());
      }
      long firstMapDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(o.timeoutSeconds());
      int withMap = 0;
      for (MapWatcher w : watchers) {
        long left = firstMapDeadline - System.nanoTime();
        if (w.awaitFirstMap(Math.max(0, left), TimeUnit.NANOSECONDS)) {
          withMap++;
        }
      }
      long subscribeNanos = System.nanoTime() - subscribeStart;
      say(withMap + "/" + o.watchers() + " watchers had their first map after "
          + ms(subscribeNanos) + " ms");
      if (withMap < o.watchers()) {
        say("PROBLEM: " + (o.watchers() - withMap) + " watchers got no map within "
            + o.timeoutSeconds() + " s");
        problems++;
      }
      // Everyone at the base version before timing starts.
      if (!counters.awaitAll(base, System.nanoTime() + TimeUnit.SECONDS.toNanos(o.timeoutSeconds()))) {
        say("PROBLEM: only " + counters.count(base) + " watchers reached version " + base);
        problems++;
      }
      say("watch streams per node: " + streamsPerNode(cluster) + "; watchers per node (connectedTo): "
          + connectedPerNode(cluster, watchers) + "; live threads " + Thread.activeCount());

      // The writes.
      phase("writes");
      List<Write> writes = new ArrayList<>(totalWrites);
      boolean pinned = false;
      int timeouts = 0;
      long runStart = System.nanoTime();
      for (int i = 0; i < totalWrites; i++) {
        pinned = !pinned;
        long start = System.nanoTime();
        long version = admin.setPinned(0L, pinned);
        long ack = System.nanoTime();
        writes.add(new Write(version, start, ack, pinned));
        if (!o.pipelined()) {
          long deadline = ack + TimeUnit.SECONDS.toNanos(o.timeoutSeconds());
          if (!counters.awaitAll(version, deadline)) {
            say("PROBLEM: write " + i + " (version " + version + "): only "
                + counters.count(version) + "/" + o.watchers() + " watchers saw it within "
                + o.timeoutSeconds() + " s");
            timeouts++;
            if (timeouts >= 3) {
              say("giving up after 3 timed-out writes");
              break;
            }
          }
        }
      }
      long last = writes.get(writes.size() - 1).version();
      if (o.pipelined()
          && !counters.awaitAll(last, System.nanoTime() + TimeUnit.SECONDS.toNanos(o.timeoutSeconds()))) {
        say("PROBLEM: only " + counters.count(last) + "/" + o.watchers()
            + " watchers saw the last version " + last);
        problems++;
      }
      long runNanos = System.nanoTime() - runStart;
      phase("writes done");
      problems += timeouts;

      report(o, cluster, writes, recorders, watchers, runNanos, counters);
      problems += check(o, writes, recorders, watchers, counters, last);
      say("live threads before shutdown: " + Thread.activeCount());
    } finally {
      phase("shutdown");
      long closeStart = System.nanoTime();
      for (MapWatcher w : watchers) {
        w.close();
      }
      for (Endpoints e : endpoints) {
        e.close();
      }
      if (admin != null) {
        admin.close();
      }
      if (cluster != null) {
        cluster.close();
      }
      Bench.deleteTree(root);
      say("closed everything in " + ms(System.nanoTime() - closeStart) + " ms; removed " + root
          + (Files.exists(root) ? " (NOT removed)" : ""));
    }
    say(problems == 0 ? "result: OK" : "result: " + problems + " PROBLEM(S), see above");
    return problems == 0 ? 0 : 2;
  }

  // ------------------------------------------------------------------ analysis

  private static void report(
      Options o, TestCluster cluster, List<Write> writes, Recorder[] recorders,
      List<MapWatcher> watchers, long runNanos, Counters counters) {
    List<Write> measured = writes.subList(Math.min(o.warmup(), writes.size()), writes.size());
    int n = measured.size();
    long[] fromAck = new long[n * recorders.length];
    long[] fromStart = new long[n * recorders.length];
    long[][] fromAckByNode = new long[cluster.size()][n * recorders.length];
    int[] byNodeCount = new int[cluster.size()];
    long[] admin = new long[n];
    int k = 0;
    int missing = 0;
    int beforeAck = 0;
    for (int i = 0; i < n; i++) {
      Write wr = measured.get(i);
      admin[i] = wr.ackNanos() - wr.startNanos();
      for (Recorder r : recorders) {
        long t = r.timeOf(wr.version());
        if (t == Long.MIN_VALUE) {
          missing++;
          continue;
        }
        fromAck[k] = t - wr.ackNanos();
        fromStart[k] = t - wr.startNanos();
        if (fromAck[k] < 0) {
          beforeAck++;
        }
        fromAckByNode[r.node][byNodeCount[r.node]++] = fromAck[k];
        k++;
      }
    }
    fromAck = Arrays.copyOf(fromAck, k);
    fromStart = Arrays.copyOf(fromStart, k);

    say("");
    say("=== watch fan-out latency ===");
    say("watchers " + o.watchers() + ", measured writes " + n + " (after " + o.warmup()
        + " warm-up writes), mode " + (o.pipelined() ? "pipelined (back to back)"
            : "paced (next write after all watchers saw the previous)"));
    say("samples " + k + " (write x watcher), missing " + missing + ", seen before the ack "
        + beforeAck);
    say(String.format("%-28s %10s %10s %10s %10s %10s %10s", "latency (ms)", "min", "p50", "p90",
        "p99", "p99.9", "max"));
    row("write-start -> watcher", fromStart);
    row("commit-ack -> watcher", fromAck);
    row("admin write (start -> ack)", admin);
    for (int node = 0; node < cluster.size(); node++) {
      PlbNode pn = cluster.node(node);
      String role = pn != null && pn.isLeader() ? "leader" : "follower";
      row("  commit-ack -> watcher @" + nodeName(cluster, node) + " (" + role + ")",
          Arrays.copyOf(fromAckByNode[node], byNodeCount[node]));
    }
    // Per write: the time until the LAST watcher had it (the fan-out completion time).
    long[] lastFromAck = new long[n];
    for (int i = 0; i < n; i++) {
      Write wr = measured.get(i);
      long max = Long.MIN_VALUE;
      for (Recorder r : recorders) {
        long t = r.timeOf(wr.version());
        if (t != Long.MIN_VALUE) {
          max = Math.max(max, t - wr.ackNanos());
        }
      }
      lastFromAck[i] = max;
    }
    row("commit-ack -> last watcher", lastFromAck);
    say(String.format("run: %d writes in %.0f ms (%.1f writes/s incl. waits); versions %d..%d",
        writes.size(), runNanos / 1e6, writes.size() / (runNanos / 1e9),
        writes.get(0).version(), writes.get(writes.size() - 1).version()));
    for (int node = 0; node < cluster.size(); node++) {
      PlbNode pn = cluster.node(node);
      if (pn != null && pn.commitPushes() > 0) {
        say(String.format("commit pushes from %s: %d, of which %d waited for a follower to"
            + " acknowledge the entry and %d gave up on one", nodeName(cluster, node),
            pn.commitPushes(), pn.waitedCommitPushes(), pn.lateCommitPushes()));
      }
    }
  }

  private static int check(
      Options o, List<Write> writes, Recorder[] recorders, List<MapWatcher> watchers,
      Counters counters, long last) {
    int problems = 0;
    long violations = 0;
    long reconnects = 0;
    int behind = 0;
    int extraFullMaps = 0;
    int wrongPin = 0;
    boolean expectPinned = writes.get(writes.size() - 1).pin();
    for (int i = 0; i < watchers.size(); i++) {
      MapWatcher w = watchers.get(i);
      violations += w.contractViolations();
      reconnects += w.reconnects();
      ClusterImage img = w.image();
      if (img == null || img.version() < last) {
        behind++;
      } else if (img.range(0).pinned() != expectPinned) {
        wrongPin++;
      }
      if (recorders[i].fullMaps > 1) {
        extraFullMaps++;
      }
    }
    say("checks: contract violations " + violations + ", reconnects " + reconnects
        + ", watchers behind the last version " + behind + ", watchers with a wrong final map "
        + wrongPin + ", watchers that needed more than one full map " + extraFullMaps
        + ", listener calls outside the version window " + counters.outOfWindow.get());
    if (violations > 0 || behind > 0 || wrongPin > 0) {
      say("PROBLEM: watchers did not all converge on the last map");
      problems++;
    }
    return problems;
  }

  private static void row(String name, long[] nanos) {
    if (nanos.length == 0) {
      say(String.format("%-28s (no samples)", name));
      return;
    }
    long[] s = nanos.clone();
    Arrays.sort(s);
    say(String.format("%-28s %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f", name, s[0] / 1e6,
        pct(s, 50) / 1e6, pct(s, 90) / 1e6, pct(s, 99) / 1e6, pct(s, 99.9) / 1e6,
        s[s.length - 1] / 1e6));
  }

  /** Nearest-rank percentile of a sorted array. */
  static long pct(long[] sorted, double p) {
    int rank = (int) Math.ceil(p / 100.0 * sorted.length);
    return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
  }

  // ------------------------------------------------------------------ helpers

  private static Map<String, Integer> streamsPerNode(TestCluster cluster) {
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int i = 0; i < cluster.size(); i++) {
      m.put(nodeName(cluster, i), cluster.node(i) == null ? -1 : cluster.node(i).watcherCount());
    }
    return m;
  }

  private static Map<String, Integer> connectedPerNode(TestCluster cluster, List<MapWatcher> ws) {
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int i = 0; i < cluster.size(); i++) {
      m.put(cluster.endpoint(i), 0);
    }
    m.put("none", 0);
    for (MapWatcher w : ws) {
      String c = w.connectedTo();
      m.merge(c == null ? "none" : c, 1, Integer::sum);
    }
    return m;
  }

  private static String nodeName(TestCluster cluster, int i) {
    return "n" + (i + 1);
  }

  private static List<String> rotate(List<String> list, int first) {
    List<String> out = new ArrayList<>(list.size());
    for (int i = 0; i < list.size(); i++) {
      out.add(list.get((first + i) % list.size()));
    }
    return out;
  }

  private static String ms(long nanos) {
    return String.format("%.1f", nanos / 1e6);
  }

  private static void say(String line) {
    System.out.println(line);
  }

  /** Marks a phase in the log (stderr), so cluster log lines can be told apart by phase. */
  private static void phase(String what) {
    LOG.info("=== harness phase: {}", what);
  }
}
