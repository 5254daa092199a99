package io.plb.server.statemachine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.command.Command;
import io.plb.core.error.ErrorCode;
import io.plb.core.map.ClusterImage;
import io.plb.server.PlbNode;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An entry whose apply throws — a bug, here a failpoint on every replica — is rejected alike on
 * all three replicas: none stops, their map versions and applied indexes stay equal, the entry
 * changes nothing, and later writes commit.
 */
class ApplyFailureTest {
  static final Duration T = Duration.ofSeconds(30);
  @TempDir Path dir;

  @AfterEach
  void clearFailpoint() {
    PlbStateMachine.failApply = null;
  }

  @Test
  void anEntryThatThrowsIsRejectedOnEveryReplica() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, Map.of());
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      int leader = c.awaitLeader(T);
      long v1 = admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      // Valid on the leader, so it is proposed; applying it throws on every replica.
      PlbStateMachine.failApply = command ->
          command instanceof Command.RegisterServer r && r.id().equals("q-boom");
      PlbClientException e = assertThrows(PlbClientException.class,
          () -> admin.registerServer("q-boom", "127.0.0.1:9002", 1.0));
      assertEquals(ErrorCode.INTERNAL, e.code(), e.getMessage());
      assertTrue(e.getMessage().contains("failpoint"), e.getMessage());
      // The failpoint stands for a deterministic bug: it stays until every replica has met it.
      long rejectedAt = c.node(leader).publisher().appliedIndex();
      assertTrue(rejectedAt > v1, "the rejected entry took an index");
      c.awaitAllApplied(rejectedAt, T);
      PlbStateMachine.failApply = null;

      long v2 = admin.registerServer("q2", "127.0.0.1:9003", 1.0);
      assertTrue(v2 > rejectedAt, v2 + " after " + rejectedAt);
      c.awaitAllApplied(v2, T);
      for (int i = 0; i < 3; i++) {
        PlbNode n = c.node(i);
        ClusterImage image = n.publisher().image();
        assertEquals(v2, image.version(), "node " + i);
        assertEquals(v2, n.publisher().appliedIndex(), "node " + i);
        assertFalse(image.servers().containsKey("q-boom"), "node " + i);
        assertTrue(image.servers().containsKey("q2"), "node " + i);
      }
      // And the cluster keeps committing.
      long v3 = admin.registerServer("q3", "127.0.0.1:9004", 1.0);
      c.awaitAllApplied(v3, T);
    }
  }
}
