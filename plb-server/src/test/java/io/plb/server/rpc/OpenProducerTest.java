package io.plb.server.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.error.ErrorCode;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A named producer's epoch (idempotent publish, docs/design.md §5): each opening of an id gets a
 * higher one than every earlier opening, also across a change of leader; it changes no map
 * version; a bad id is refused.
 */
class OpenProducerTest {
  @TempDir Path dir;

  @Test
  void eachOpeningGetsAHigherEpochAcrossLeaders() throws Exception {
    try (TestCluster cluster = TestCluster.start(dir);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
            .deadline(Duration.ofSeconds(30)).build()) {
      int leader = cluster.awaitLeader(Duration.ofSeconds(20));
      long version = admin.getMap(0).version();
      long first = admin.openProducer("orders");
      long second = admin.openProducer("orders");
      long other = admin.openProducer("billing");
      assertTrue(first >= 1 && second > first && other > second, first + " " + second);
      assertEquals(version, admin.getMap(0).version(), "opening a producer changes no map");

      cluster.stopNode(leader);
      cluster.awaitLeader(Duration.ofSeconds(20));
      long third = admin.openProducer("orders");
      assertTrue(third > other, "after the leader changed: " + third + " > " + other);

      PlbClientException bad = assertThrows(PlbClientException.class,
          () -> admin.openProducer(""));
      assertEquals(ErrorCode.INVALID_ARGUMENT, bad.code(), bad.getMessage());
      assertThrows(PlbClientException.class, () -> admin.openProducer("x".repeat(257)));
    }
  }
}
