package io.plb.server.testing;

import io.plb.server.PlbNode;
import io.plb.server.config.NodeConfig;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import org.apache.ratis.util.ExitUtils;

/**
 * An in-process PLB cluster for tests: real Ratis over gRPC, real RocksDB in a temporary folder,
 * real gRPC APIs, all on free loopback ports. Nodes can be stopped and restarted on the same data.
 *
 * <p>Not thread-safe: drive it from the test thread. Close it to stop every node.
 */
public final class TestCluster implements AutoCloseable {
  private final Path root;
  private final List<String> ids = new ArrayList<>();
  private final Map<String, String> base = new LinkedHashMap<>();
  private final PlbNode[] nodes;

  private TestCluster(Path root, int size, Map<String, String> extra) throws IOException {
    this.root = root;
    this.nodes = new PlbNode[size];
    base.put("raft.electionTimeoutMin", "500ms");
    base.put("raft.electionTimeoutMax", "1000ms");
    base.put("watch.progressInterval", "1s");
    // Most tests register queue servers that never heartbeat; liveness tests set these lower.
    base.put("server.suspectAfter", "1h");
    base.put("server.downAfter", "1h");
    // Most tests drive the map by hand; balancer tests turn the balancer on.
    base.put("balancer.enabled", "false");
    for (int i = 1; i <= size; i++) {
      String id = "n" + i;
      ids.add(id);
      base.put("peer." + id + ".raft", "127.0.0.1:" + freePort());
      base.put("peer." + id + ".api", "127.0.0.1:" + freePort());
    }
    base.putAll(extra);
  }

  /**
   * Starts a cluster of {@code size} nodes under {@code root}, with extra settings. A port picked
   * free can be taken by another process (or an outgoing connection) before the node binds it;
   * then the nodes started so far are stopped, their data removed, and the cluster started again
   * on new ports (three attempts).
   */
  public static TestCluster start(Path root, int size, Map<String, String> extra)
      throws IOException {
    // Ratis ends the JVM (System.exit) when its gRPC server cannot bind; in a test that would end
    // every test of the run. Disabled, it throws instead, and the retry below takes new ports.
    ExitUtils.disableSystemExit();
    for (int attempt = 1; ; attempt++) {
      TestCluster c = new TestCluster(root, size, extra);
      try {
        for (int i = 0; i < size; i++) {
          c.startNode(i);
        }
        return c;
      } catch (IOException | RuntimeException e) {
        c.close();
        if (attempt == 3 || !isBindFailure(e)) {
          throw e;
        }
        ExitUtils.clear(); // the recorded exit was a port taken; the retry is a fresh start
        deleteTree(root);
      }
    }
  }

  private static boolean isBindFailure(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof java.net.BindException || String.valueOf(t.getMessage())
          .contains("Address already in use") || String.valueOf(t.getMessage())
          .startsWith("Failed to bind")) {
        return true;
      }
    }
    return false;
  }

  private static void deleteTree(Path root) throws IOException {
    if (!java.nio.file.Files.exists(root)) {
      return;
    }
    try (var paths = java.nio.file.Files.walk(root)) {
      for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
        java.nio.file.Files.delete(p);
      }
    }
  }

  /**
   * The leader's balancer on compressed time, for tests: enabled, 200 ms history buckets, 1 s
   * coarse buckets (kept 1 and 10 minutes), a 60 s "day" and a 2 s horizon. Tests add their
   * round interval, capacities and, to test the mechanism, {@link #maxMeanPlanner}.
   */
  public static Map<String, String> compressedBalancer() {
    Map<String, String> s = new java.util.LinkedHashMap<>();
    s.put("balancer.enabled", "true");
    s.put("balancer.horizon", "2s");
    s.put("balancer.season", "60s");
    s.put("history.bucket", "200ms");
    s.put("history.coarseBucket", "1s");
    s.put("history.fineRetention", "1m");
    s.put("history.coarseRetention", "10m");
    return s;
  }

  /**
   * Balancer settings for tests of the leader's balancer mechanism: the planner's neutral
   * baseline ({@code BalancerConfig.defaults()}: MAX_MEAN 1.15 on the cautious sum, acting at any
   * load), not the leader's benchmarked defaults, which leave a cluster below 70 % alone.
   */
  public static Map<String, String> maxMeanPlanner() {
    Map<String, String> s = new java.util.LinkedHashMap<>();
    s.put("balancer.criterion", "MAX_MEAN");
    s.put("balancer.maxMeanRatio", "1.15");
    s.put("balancer.highWater", "0.8");
    s.put("balancer.hysteresis", "0.05");
    s.put("balancer.actAbove", "0");
    s.put("balancer.lumpAllowance", "0");
    s.put("balancer.upperCorrelation", "1");
    return s;
  }

  /**
   * Queue-server liveness on a short clock, for fault tests: suspect after 1 s of silence, DOWN
   * after {@code downAfter}, with an ownership lease of {@code lease} and a 1 s margin (so
   * {@code downAfter} must exceed {@code lease} + 1 s). Queue servers in such tests heartbeat
   * every 200-250 ms.
   */
  public static Map<String, String> liveness(String downAfter, String lease) {
    Map<String, String> s = new java.util.LinkedHashMap<>();
    s.put("server.suspectAfter", "1s");
    s.put("server.downAfter", downAfter);
    s.put("server.lease", lease);
    s.put("server.leaseMargin", "1s");
    return s;
  }

  public static TestCluster start(Path root) throws IOException {
    return start(root, 3, Map.of());
  }

  /** Picks a port that is free now. */
  public static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      s.setReuseAddress(true);
      return s.getLocalPort();
    }
  }

  public NodeConfig config(int i) {
    Map<String, String> v = new LinkedHashMap<>(base);
    v.put("node.id", ids.get(i));
    v.put("node.dataDir", root.resolve(ids.get(i)).toString());
    return NodeConfig.of(v);
  }

  public void startNode(int i) throws IOException {
    if (nodes[i] != null) {
      throw new IllegalStateException("node " + ids.get(i) + " is running");
    }
    nodes[i] = PlbNode.start(config(i));
  }

  public void stopNode(int i) {
    if (nodes[i] != null) {
      nodes[i].close();
      nodes[i] = null;
    }
  }

  public PlbNode node(int i) {
    return nodes[i];
  }

  public int size() {
    return nodes.length;
  }

  public Path dataDir(int i) {
    return root.resolve(ids.get(i));
  }

  /** API endpoints of all nodes, running or not. */
  public List<String> endpoints() {
    List<String> out = new ArrayList<>();
    for (String id : ids) {
      out.add(base.get("peer." + id + ".api"));
    }
    return out;
  }

  public String endpoint(int i) {
    return base.get("peer." + ids.get(i) + ".api");
  }

  /** Waits for a leader among the running nodes; returns its index. */
  public int awaitLeader(Duration timeout) {
    int[] found = {-1};
    await(timeout, "a leader", () -> {
      for (int i = 0; i < nodes.length; i++) {
        if (nodes[i] != null && nodes[i].isLeader()) {
          found[0] = i;
          return true;
        }
      }
      return false;
    });
    return found[0];
  }

  /** Waits until every running node has applied at least {@code version}. */
  public void awaitAllApplied(long version, Duration timeout) {
    await(timeout, "all nodes at version " + version, () -> {
      for (PlbNode n : nodes) {
        if (n != null && n.publisher().appliedIndex() < version) {
          return false;
        }
      }
      return true;
    });
  }

  /**
   * Polls {@code condition} until it holds or {@code timeout} passes; fails naming {@code what}.
   * Each poll yields the CPU briefly (Thread.onSpinWait between checks and a short park), so it
   * waits on the condition, not on a guessed duration.
   */
  public static void await(Duration timeout, String what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        printThreads("timed out waiting for " + what);
        throw new AssertionError("timed out after " + timeout.toMillis() + " ms waiting for "
            + what);
      }
      java.util.concurrent.locks.LockSupport.parkNanos(10_000_000L);
    }
  }

  /**
   * The result of {@code future}, waited for up to {@code timeout}; when it does not come, every
   * thread's stack goes to standard error (the test report keeps it) before the test fails, so a
   * hang seen once on a loaded machine can be read afterwards.
   */
  public static <T> T awaitResult(java.util.concurrent.Future<T> future, Duration timeout,
      String what) throws Exception {
    try {
      return future.get(timeout.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.TimeoutException e) {
      printThreads("timed out waiting for " + what);
      throw new AssertionError("timed out after " + timeout.toMillis() + " ms waiting for "
          + what, e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw e.getCause() instanceof Exception x ? x : e;
    }
  }

  /** Every live thread's name, state and stack, to standard error. */
  public static void printThreads(String why) {
    StringBuilder out = new StringBuilder("---- threads (" + why + ") ----\n");
    for (var t : Thread.getAllStackTraces().entrySet()) {
      out.append('"').append(t.getKey().getName()).append("\" ").append(t.getKey().getState())
          .append('\n');
      for (StackTraceElement f : t.getValue()) {
        out.append("    at ").append(f).append('\n');
      }
    }
    System.err.print(out.append("---- end of threads ----\n"));
  }

  @Override
  public void close() {
    for (int i = 0; i < nodes.length; i++) {
      stopNode(i);
    }
  }
}
