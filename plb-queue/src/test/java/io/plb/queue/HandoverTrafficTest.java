package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.RangeEntry;
import io.plb.queue.testing.QueueCluster;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The promise of the hold handover under load: many producers and consumers on three queue
 * servers, continuous traffic over many keys, hundreds of random moves (ranges moved back and
 * forth, concurrent handovers up to the limits) — nothing lost, no key reordered.
 *
 * <p>Scale: {@code -Dplb.traffic.moves} (default 220), {@code -Dplb.traffic.seconds} (60),
 * {@code -Dplb.traffic.keys} (10000), {@code -Dplb.traffic.rate} (300).
 */
class HandoverTrafficTest {
  @TempDir Path tmp;

  @Test
  void hundredsOfMovesUnderTrafficLoseAndReorderNothing() throws Exception {
    int moves = Integer.getInteger("plb.traffic.moves", 220);
    int seconds = Integer.getInteger("plb.traffic.seconds", 60);
    int keys = Integer.getInteger("plb.traffic.keys", 10_000);
    int rate = Integer.getInteger("plb.traffic.rate", 300);
    try (QueueCluster c = QueueCluster.start(tmp, 3,
        Map.of("handover.maxPerServer", "3", "handover.maxTotal", "8"),
        // Traffic, not durability, is tested here: unsynced writes keep a 2-core machine fast.
        Map.of("sync", "false"))) {
      c.layOut(12);
      long epochsBefore = epochSum(c);
      Workload w = new Workload(Workload.Options.defaults(c.plb().endpoints())
          .withKeys(keys).withRate(rate).withDuration(Duration.ofSeconds(seconds))
          .withClients(4, 3).withMoves(moves), System.out);
      Workload.Result r = w.run();
      HistoryChecker.Verdict v = r.verdict();
      System.out.println(v);
      TestCluster.await(Duration.ofSeconds(60), "every handover completed or aborted",
          () -> c.map().ranges().stream().allMatch(x -> x.handover() == null));
      long handovers = epochSum(c) - epochsBefore;
      System.out.printf("moves started %d, refused %d; handovers ended %d; router %s%n",
          r.movesStarted(), r.movesRefused(), handovers, r.router());
      if (v.failed() == 0) {
        // Every message answered WRONG_OWNER or OVERLOADED was sent again before it was taken.
        assertTrue(r.router().resent() >= r.router().redirected() + r.router().overloaded(),
            r.router().toString());
      }
      assertEquals(0, v.lost(), v.toString());
      assertEquals(0, v.reorderedKeys(), v.toString());
      assertEquals(0, v.unexplainedDuplicates(), v.toString());
      assertEquals(0, v.phantom(), v.toString());
      assertTrue(v.acknowledged() > (long) rate * seconds / 2, v.toString());
      assertTrue(handovers >= Math.min(200, moves) * 9L / 10 && r.movesStarted() >= moves * 0.9,
          "handovers ended: " + handovers + ", moves started: " + r.movesStarted());
    }
  }

  private static long epochSum(QueueCluster c) {
    long n = 0;
    for (RangeEntry r : c.map().ranges()) {
      n += r.epoch();
    }
    return n;
  }
}
