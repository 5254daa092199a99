package io.plb.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.NodeRole;
import io.plb.proto.v1.NodeStatus;
import io.plb.server.testing.TestCluster;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Three PLB nodes as separate JVM processes, as {@code deploy/local-cluster.sh} runs them; the
 * leader is killed with SIGKILL (no shutdown hook, no final snapshot). A new leader is elected
 * (the time it took is printed), every acknowledged write is there, a watcher on a surviving
 * node sees no gap, and the killed node restarts from its own disk to the same state.
 */
class MultiProcessKillTest {
  @TempDir Path dir;
  private final Process[] processes = new Process[3];
  private final String[] api = new String[3];

  @AfterEach
  void stopAll() {
    for (Process p : processes) {
      if (p != null) {
        p.destroyForcibly();
      }
    }
  }

  private void startNode(int i) throws IOException {
    String classpath = System.getProperty("surefire.test.class.path",
        System.getProperty("java.class.path"));
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    ProcessBuilder pb = new ProcessBuilder(
        java, "-Xmx256m", "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.log.org.apache.ratis=warn",
        "-cp", classpath, "io.plb.server.PlbMain", "server",
        "--config", dir.resolve("n" + (i + 1) + ".conf").toString());
    pb.redirectErrorStream(true);
    pb.redirectOutput(ProcessBuilder.Redirect.appendTo(
        dir.resolve("n" + (i + 1) + ".log").toFile()));
    processes[i] = pb.start();
  }

  @Test
  void killNineOnTheLeaderProcess() throws Exception {
    List<String> peers = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      api[i] = "127.0.0.1:" + TestCluster.freePort();
      peers.add("peer.n" + (i + 1) + ".raft = 127.0.0.1:" + TestCluster.freePort());
      peers.add("peer.n" + (i + 1) + ".api = " + api[i]);
    }
    for (int i = 0; i < 3; i++) {
      List<String> lines = new ArrayList<>(peers);
      lines.add("node.id = n" + (i + 1));
      // The registered servers never heartbeat: keep the leader from declaring them DOWN
      // (more entries) while a slow machine runs this test.
      lines.add("server.suspectAfter = 1h");
      lines.add("server.downAfter = 1h");
      lines.add("node.dataDir = " + dir.resolve("n" + (i + 1)).toString().replace(File.separatorChar, '/'));
      Files.write(dir.resolve("n" + (i + 1) + ".conf"), lines);
      startNode(i);
    }
    try (PlbAdminClient admin = PlbAdminClient.newBuilder()
        .endpoints(List.of(api)).deadline(Duration.ofSeconds(20)).build()) {
      int leader = awaitLeader(admin, -1, Duration.ofSeconds(60));
      List<Long> acked = new ArrayList<>();
      for (int i = 0; i < 20; i++) {
        acked.add(admin.registerServer("q" + i, "127.0.0.1:" + (9100 + i), 1.0));
      }

      int survivor = (leader + 1) % 3;
      RecordingListener listener = new RecordingListener();
      try (Endpoints eps = new Endpoints(List.of(api[survivor]));
          MapWatcher watcher = new MapWatcher(eps, listener).start()) {
        long before = acked.get(acked.size() - 1);
        TestCluster.await(Duration.ofSeconds(10), "watcher at " + before,
            () -> listener.last() >= before);

        long killedAt = System.nanoTime();
        processes[leader].destroyForcibly().waitFor(); // SIGKILL
        // How fast is measured, not asserted here: a busy machine may take longer than usual.
        int newLeader = awaitLeader(admin, leader, Duration.ofSeconds(20));
        long millis = (System.nanoTime() - killedAt) / 1_000_000;
        assertNotEquals(leader, newLeader);
        System.out.println("new leader " + newLeader + " after " + millis + " ms");

        for (int i = 20; i < 40; i++) {
          acked.add(admin.registerServer("q" + i, "127.0.0.1:" + (9100 + i), 1.0));
        }
        long last = acked.get(acked.size() - 1);
        ClusterImage image = admin.getMap(last);
        for (int i = 0; i < 40; i++) {
          assertNotNull(image.server("q" + i), "acknowledged write q" + i);
        }
        TestCluster.await(Duration.ofSeconds(10), "survivor watcher at " + last,
            () -> listener.last() >= last);
        assertEquals(List.of(), listener.violations());
        assertEquals(1, listener.fullMaps());

        // The killed node restarts from its own disk and reaches the same state.
        startNode(leader);
        try (PlbAdminClient restarted = PlbAdminClient.newBuilder()
            .endpoints(List.of(api[leader])).deadline(Duration.ofSeconds(60)).build()) {
          assertEquals(image, restarted.getMap(last));
        }
      }
    }
  }

  private int awaitLeader(PlbAdminClient admin, int notThis, Duration timeout) {
    int[] found = {-1};
    TestCluster.await(timeout, "a leader other than " + notThis, () -> {
      for (int i = 0; i < 3; i++) {
        if (i == notThis || processes[i] == null || !processes[i].isAlive()) {
          continue;
        }
        try {
          NodeStatus s = admin.nodeStatus(api[i]);
          if (s.getRole() == NodeRole.LEADER) {
            found[0] = i;
            return true;
          }
        } catch (RuntimeException e) {
          // not up yet
        }
      }
      return false;
    });
    return found[0];
  }

}
