package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.error.ErrorCode;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.SliceLoad;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A load report from a queue server the map does not list is refused NOT_FOUND before it is read
 * or queued on the leader's telemetry loop — even a malformed one — and the leader keeps taking
 * the reports of registered servers.
 */
class UnregisteredLoadReportTest {
  @TempDir Path dir;

  private static LoadReport report(String server, int slice, long seq) {
    return LoadReport.newBuilder().setServerId(server).setSession(7).setSeq(seq)
        .setIntervalMillis(50).addSlices(SliceLoad.newBuilder().setSlice(slice).setMessagesIn(1))
        .build();
  }

  @Test
  void reportsOfUnknownServersCostNothing() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, java.util.Map.of());
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      int leader = c.awaitLeader(Duration.ofSeconds(30));
      admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      TelemetryIntake intake = c.node(leader).telemetry();
      TestCluster.await(Duration.ofSeconds(30), "the intake leading", intake::isLeading);
      long queued = intake.reportsQueued();
      for (int i = 1; i <= 50; i++) {
        long seq = i;
        // Malformed (slice 4096) and from an unknown server: who reports is checked first.
        PlbClientException e = assertThrows(PlbClientException.class,
            () -> admin.reportLoad(report("q9", 4096, seq)));
        assertEquals(ErrorCode.NOT_FOUND, e.code(), e.getMessage());
        assertTrue(e.getMessage().contains("q9") && e.getMessage().contains("not registered"),
            e.getMessage());
        e = assertThrows(PlbClientException.class,
            () -> admin.reportLoad(report("q9", 10, seq)));
        assertEquals(ErrorCode.NOT_FOUND, e.code(), e.getMessage());
      }
      assertEquals(queued, intake.reportsQueued(), "nothing of them reached the intake's loop");
      // A registered server's malformed report is still INVALID_ARGUMENT, its good one taken.
      PlbClientException bad = assertThrows(PlbClientException.class,
          () -> admin.reportLoad(report("q1", 4096, 1)));
      assertEquals(ErrorCode.INVALID_ARGUMENT, bad.code(), bad.getMessage());
      assertFalse(admin.reportLoad(report("q1", 10, 1)).getDuplicate());
      assertEquals(queued + 1, intake.reportsQueued());
    }
  }
}
