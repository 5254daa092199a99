package io.plb.server;

import static org.junit.jupiter.api.Assertions.assertThrows;

import io.plb.core.command.Command;
import io.plb.proto.v1.CommandResult;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node's writes work again after a write ran out of retries because the group had no leader
 * for longer than the node's Raft client retries (~3 s). Ratis closes an ordered client whose
 * request failed for good, and every later request on it failed with AlreadyClosedException:
 * a node that then led could commit nothing — the nemesis saw a leader unable to declare a
 * silent queue server DOWN for 90 s.
 */
class ProposerRecoveryTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path dir;

  @Test
  void writesWorkAgainAfterOneRanOutOfRetriesWithoutAQuorum() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, Map.of())) {
      c.awaitLeader(T);
      c.stopNode(1);
      c.stopNode(2);
      // No quorum: this write fails once its retries are spent.
      ExecutionException lost = assertThrows(ExecutionException.class, () -> c.node(0)
          .propose(new Command.RegisterServer("q1", "127.0.0.1:9001", 1.0), 0)
          .get(30, TimeUnit.SECONDS));
      System.out.println("without a quorum: " + lost.getCause());
      c.startNode(1);
      c.startNode(2);
      c.awaitLeader(T);
      TestCluster.await(T, "a write through node 0 committed again", () -> {
        try {
          CommandResult r = c.node(0)
              .propose(new Command.RegisterServer("q2", "127.0.0.1:9002", 1.0), 0)
              .get(10, TimeUnit.SECONDS);
          return r.getOk();
        } catch (ExecutionException | CompletionException e) {
          return false;
        } catch (Exception e) {
          throw new AssertionError(e);
        }
      });
    }
  }
}
