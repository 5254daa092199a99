package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.client.admin.PlbAdminClient;
import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.Traffic;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crashes, not stops: three queue servers as separate processes, each killed with SIGKILL in
 * turn under checked traffic and random moves, and started again on its data at once — back
 * within {@code server.downAfter}, so never declared DOWN. Nothing acknowledged may be lost, no
 * key reordered, and nothing delivered twice unflagged: a message stored just before the kill
 * whose acknowledgement never left is resent by its router and recognised (idempotent publish).
 */
class QueueCrashTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final Map<String, String> PLB = TestCluster.liveness("8s", "3s");
  private static final Map<String, String> QUEUE = Map.of("heartbeatInterval", "200ms",
      "resendInterval", "100ms");

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp; // the servers' logs stay when it fails

  @Test
  void queueServersKilledAndRestartedUnderTrafficAndMovesLoseAndReorderNothing()
      throws Exception {
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3, PLB);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 3,
            QUEUE, false)) {
      plb.awaitLeader(WAIT);
      for (int i = 0; i < 3; i++) {
        queues.awaitServing(i, WAIT);
      }
      layOut(admin, 6, 3);
      try (Traffic t = Traffic.start(Workload.Options.defaults(plb.endpoints()).withKeys(1000)
          .withRate(400).withClients(2, 2).withMoves(40).withDuration(Duration.ofSeconds(80)))) {
        t.awaitMoreDeliveries(400, WAIT, "traffic flowing");
        for (int round = 0; round < 3; round++) {
          queues.kill(round);
          queues.start(round);
          queues.awaitServing(round, WAIT);
          t.awaitMoreDeliveries(400, WAIT, queues.id(round) + " back and traffic flowing");
        }
        Workload.Result result = t.stopAndCheck();
        HistoryChecker.Verdict v = result.verdict();
        System.out.println("crash run: " + result.movesStarted() + " moves started; " + v);
        assertEquals(0, v.lost(), v.toString());
        assertEquals(0, v.reorderedKeys(), v.toString());
        assertEquals(0, v.phantom(), v.toString());
        assertEquals(0, v.unexplainedDuplicates(), v.toString());
      }
    }
  }

  /** {@code ranges} equal ranges, owners round-robin over q1..q{servers}. */
  static void layOut(PlbAdminClient admin, int ranges, int servers) {
    long step = Long.divideUnsigned(-1L, ranges) + 1;
    for (int i = 1; i < ranges; i++) {
      admin.splitAtHash((i - 1) * step, i * step);
    }
    for (int i = 0; i < ranges; i++) {
      admin.assign(i * step, "q" + (i % servers + 1), false);
    }
  }
}
