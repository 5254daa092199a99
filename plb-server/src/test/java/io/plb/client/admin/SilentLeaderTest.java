package io.plb.client.admin;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.server.testing.CuttableProxy;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A client whose idea of the leader is a node that takes in requests and answers none — what a
 * leader cut off by a partition that drops its packets looks like — loses one call to the
 * deadline, not every call after it: the next starts at another node, which leads or points to
 * the node that does. (Queue servers' heartbeats go through this client: stuck on an isolated
 * leader, every server was declared DOWN by the new one.)
 */
class SilentLeaderTest {
  @TempDir Path dir;

  @Test
  void aCallThatTimesOutMovesTheNextCallToAnotherNode() throws Exception {
    try (TestCluster cluster = TestCluster.start(dir)) {
      int leader = cluster.awaitLeader(Duration.ofSeconds(20));
      try (CuttableProxy silent = new CuttableProxy(cluster.endpoint(leader))) {
        List<String> endpoints = new ArrayList<>();
        endpoints.add(silent.address());
        for (int i = 0; i < 3; i++) {
          if (i != leader) {
            endpoints.add(cluster.endpoint(i));
          }
        }
        try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(endpoints)
            .deadline(Duration.ofSeconds(3)).build()) {
          silent.swallowReplies();
          assertThrows(PlbClientException.class, admin::balancerStatus);
          // The leader is alive and leads still; only the way to it is silent.
          assertTrue(admin.balancerStatus() != null, "the next call reached the leader");
        }
      }
    }
  }
}
