package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.queue.testing.QueueCluster;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The PLB leader is stopped twice while producers publish and ranges move: the new leader
 * continues every open handover from its committed phase, and nothing is lost or reordered.
 */
class LeaderFailureTrafficTest {
  @TempDir Path tmp;

  @Test
  void leaderLossDuringMovesLosesAndReordersNothing() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 3,
        Map.of("handover.maxPerServer", "3", "handover.maxTotal", "6"), Map.of("sync", "false"))) {
      c.layOut(9);
      Workload w = new Workload(Workload.Options.defaults(c.plb().endpoints())
          .withKeys(2000).withRate(200).withDuration(Duration.ofSeconds(25))
          .withClients(2, 2).withMoves(60), System.out);
      CompletableFuture<Workload.Result> run = CompletableFuture.supplyAsync(() -> {
        try {
          return w.run();
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
      });
      for (int round = 0; round < 2; round++) {
        long seen = w.history().deliveries();
        TestCluster.await(Duration.ofSeconds(30), "traffic flowing",
            () -> w.history().deliveries() > seen + 500);
        int leader = c.plb().awaitLeader(Duration.ofSeconds(20));
        System.out.println("stopping the PLB leader n" + (leader + 1));
        c.plb().stopNode(leader);
        int next = c.plb().awaitLeader(Duration.ofSeconds(20));
        assertTrue(next != leader);
        c.plb().startNode(leader);
      }
      Workload.Result r = TestCluster.awaitResult(run,
          Duration.ofSeconds(180), "the workload to end");
      HistoryChecker.Verdict v = r.verdict();
      System.out.println(v + "; moves started " + r.movesStarted());
      TestCluster.await(Duration.ofSeconds(90), "every handover completed or aborted",
          () -> c.map().ranges().stream().allMatch(x -> x.handover() == null));
      assertEquals(0, v.lost(), v.toString());
      assertEquals(0, v.reorderedKeys(), v.toString());
      assertEquals(0, v.unexplainedDuplicates(), v.toString());
      assertEquals(0, v.phantom(), v.toString());
      assertTrue(r.movesStarted() > 20, "moves started: " + r.movesStarted());
    }
  }
}
