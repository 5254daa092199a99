package io.plb.bench;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.queue.QueueServer;
import io.plb.queue.config.QueueConfig;
import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * PLB and reference queue servers in this JVM, for the harnesses: a 3-node {@link TestCluster}
 * (Ratis over gRPC, RocksDB, gRPC APIs on free loopback ports) and {@code q1..qN}
 * {@link QueueServer}s, each with its own RocksDB folder under {@code root}. Queue servers run with
 * their product defaults (sync on, resend 500 ms, heartbeat 1 s) unless {@code queueSettings} says
 * otherwise. The PLB nodes have TestCluster's settings: election timeout 500–1000 ms, and queue
 * servers are never declared DOWN (a loaded 2-core machine must not turn a slow heartbeat into
 * a forced handover in the middle of a measurement).
 *
 * <p>Not thread-safe: set up and close from one thread. {@link #close} stops everything.
 */
final class BenchCluster implements AutoCloseable {
  final Path root;
  final TestCluster plb;
  final PlbAdminClient admin;
  final List<QueueServer> queues = new ArrayList<>();
  private final int leader;

  private BenchCluster(Path root, int queueCount, Map<String, String> queueSettings,
      String agentsWatch, Map<String, String> nodeSettings) throws IOException {
    this.root = root;
    this.plb = TestCluster.start(root.resolve("plb"), 3, nodeSettings);
    this.leader = plb.awaitLeader(Duration.ofSeconds(30));
    this.admin = PlbAdminClient.newBuilder().endpoints(leaderFirst())
        .deadline(Duration.ofSeconds(30)).build();
    try {
      for (int i = 1; i <= queueCount; i++) {
        String id = "q" + i;
        Map<String, String> s = new HashMap<>(Map.of("id", id,
            "data", root.resolve(id).toString(),
            "plb", String.join(",", agentEndpoints(agentsWatch, i - 1))));
        s.putAll(queueSettings);
        queues.add(QueueServer.start(QueueConfig.of(s)));
      }
    } catch (IOException | RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * Starts it all. {@code agentsWatch} says which PLB node each queue server's agent watches
   * first (a watcher stays on the first node of its list while it answers): {@code leader} — the
   * start-up leader; {@code follower} — a follower; {@code spread} — q1 node 1, q2 node 2, ...
   * (with any leader, some agents then watch followers, which learn of a commit later).
   */
  static BenchCluster start(Path root, int queueCount, Map<String, String> queueSettings,
      String agentsWatch) throws IOException {
    return start(root, queueCount, queueSettings, agentsWatch, Map.of());
  }

  /** As above, with PLB node settings for all three nodes (over TestCluster's). */
  static BenchCluster start(Path root, int queueCount, Map<String, String> queueSettings,
      String agentsWatch, Map<String, String> nodeSettings) throws IOException {
    if (!List.of("leader", "follower", "spread").contains(agentsWatch)) {
      throw new IllegalArgumentException("agents-watch must be leader, follower or spread");
    }
    return new BenchCluster(root, queueCount, queueSettings, agentsWatch, nodeSettings);
  }

  private List<String> agentEndpoints(String agentsWatch, int queueIndex) {
    int first = switch (agentsWatch) {
      case "leader" -> leader;
      case "follower" -> leader + 1;
      default -> queueIndex;
    };
    return rotate(plb.endpoints(), first);
  }

  private static List<String> rotate(List<String> list, int first) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < list.size(); i++) {
      out.add(list.get((first + i) % list.size()));
    }
    return out;
  }

  /** The node that was leader after start (index into the TestCluster). */
  int leader() {
    return leader;
  }

  /** The PLB endpoints with the start-up leader first. */
  List<String> leaderFirst() {
    return rotate(plb.endpoints(), leader);
  }

  /**
   * Splits the ring into {@code ranges} equal ranges and gives them owners round-robin over the
   * queue servers; returns the map after the last write.
   */
  ClusterImage layOut(int ranges) {
    long step = Long.divideUnsigned(-1L, ranges) + 1;
    for (int i = 1; i < ranges; i++) {
      admin.splitAtHash((i - 1) * step, i * step);
    }
    long v = 0;
    for (int i = 0; i < ranges; i++) {
      v = admin.assign(i * step, queues.get(i % queues.size()).id(), false);
    }
    return admin.getMap(v);
  }

  QueueServer queue(String id) {
    for (QueueServer q : queues) {
      if (q.id().equals(id)) {
        return q;
      }
    }
    throw new IllegalArgumentException("no queue server " + id);
  }

  @Override
  public void close() {
    for (QueueServer q : queues) {
      q.close();
    }
    if (admin != null) {
      admin.close();
    }
    plb.close();
  }
}
