package io.plb.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.NodeStatus;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A follower that missed many entries catches up by snapshot installation after the leader purged
 * its log; after every node restarts, all replicas hold the same state at the same version.
 */
class CatchUpAndRestartTest {
  @TempDir Path dir;

  @Test
  void laggingFollowerCatchesUpBySnapshotAndRestartsAgree() throws Exception {
    Map<String, String> settings = Map.of(
        "raft.snapshotEvery", "40",
        "raft.segmentSize", "2KB",
        "raft.purgeUpToSnapshot", "true");
    try (TestCluster cluster = TestCluster.start(dir, 3, settings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build()) {
      int leader = cluster.awaitLeader(Duration.ofSeconds(20));
      admin.registerServer("q0", "127.0.0.1:9000", 1.0);
      int lagging = (leader + 1) % 3;
      long laggingApplied = cluster.node(lagging).publisher().appliedIndex();
      cluster.stopNode(lagging);

      long last = 0;
      long at = 0;
      for (int i = 1; i <= 240; i++) {
        // Alternate splits and registrations so the map itself grows.
        if (i % 2 == 0) {
          at += 1L << 50;
          last = admin.splitAtHash(lastStartBelow(admin, at), at);
        } else {
          last = admin.registerServer("q" + i, "127.0.0.1:" + (9000 + i), 1.0);
        }
      }
      int currentLeader = cluster.awaitLeader(Duration.ofSeconds(10));
      cluster.node(currentLeader).takeSnapshot();
      long finalLast = last;
      TestCluster.await(Duration.ofSeconds(20), "leader log purged past the lagging node",
          () -> cluster.node(currentLeader).localStatus().getLogStartIndex() > laggingApplied + 1);

      cluster.startNode(lagging);
      TestCluster.await(Duration.ofSeconds(60), "lagging node caught up",
          () -> cluster.node(lagging).publisher().appliedIndex() >= finalLast);
      NodeStatus caughtUp = cluster.node(lagging).localStatus();
      assertTrue(caughtUp.getSnapshotIndex() > laggingApplied,
          "the lagging node holds an installed snapshot: " + caughtUp);
      ClusterImage expected = admin.getMap(last);
      assertEquals(expected, cluster.node(lagging).image());

      // Every node restarts; each resumes after its last applied entry and all agree.
      for (int i = 0; i < 3; i++) {
        cluster.stopNode(i);
      }
      for (int i = 0; i < 3; i++) {
        cluster.startNode(i);
      }
      cluster.awaitLeader(Duration.ofSeconds(20));
      cluster.awaitAllApplied(last, Duration.ofSeconds(30));
      for (int i = 0; i < 3; i++) {
        assertEquals(expected, cluster.node(i).image(), "node " + i + " after restart");
      }
      long after = admin.registerServer("q-after", "127.0.0.1:9999", 1.0);
      assertTrue(after > last, "versions keep growing after a restart");
      cluster.awaitAllApplied(after, Duration.ofSeconds(10));
      for (int i = 0; i < 3; i++) {
        assertEquals(after, cluster.node(i).image().version());
      }
    }
  }

  private static long lastStartBelow(PlbAdminClient admin, long hash) {
    ClusterImage image = admin.getMap(0);
    return image.rangeFor(hash).start();
  }
}
