package io.plb.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The admin client never reads the map back in time. The node it asks first is a node that stays
 * behind (a one-node group of its own, standing in for a node cut off from the cluster or still
 * catching up after a restart, which serves its older applied map): once the client has seen a
 * version, reads skip that node after a short wait and answer from a node that has the version.
 */
class MonotonicReadsTest {
  @TempDir Path dir;

  @Test
  void readsNeverGoBackInTimeAndSkipANodeThatStaysBehind() throws Exception {
    try (TestCluster behind = TestCluster.start(dir.resolve("behind"), 1, Map.of());
        TestCluster cluster = TestCluster.start(dir.resolve("cluster"))) {
      behind.awaitLeader(Duration.ofSeconds(20));
      cluster.awaitLeader(Duration.ofSeconds(20));
      long written;
      try (PlbAdminClient direct = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
          .build()) {
        for (int i = 0; i < 5; i++) {
          direct.registerServer("q" + i, "127.0.0.1:" + (9100 + i), null);
        }
        written = direct.getMap(0).version();
      }
      List<String> endpoints = new ArrayList<>();
      endpoints.add(behind.endpoint(0)); // asked first
      endpoints.addAll(cluster.endpoints());
      try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(endpoints)
          .deadline(Duration.ofSeconds(15)).build()) {
        ClusterImage first = admin.getMap(0);
        assertTrue(first.version() < written && first.servers().isEmpty(),
            "with nothing seen yet, the node asked first answers with its own, older map");

        ClusterImage fresh = admin.getMap(written);
        assertTrue(fresh.version() >= written, "a minimum version skips the node behind");
        assertEquals(5, fresh.servers().size());

        for (int i = 0; i < 3; i++) {
          ClusterImage again = admin.getMap(0);
          assertTrue(again.version() >= fresh.version(),
              "read " + i + " went back from " + fresh.version() + " to " + again.version());
          assertEquals(5, again.servers().size());
        }
      }
    }
  }
}
