package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.AgentServiceGrpc;
import io.plb.proto.v1.HandoverReport;
import io.plb.proto.v1.HandoverReportResponse;
import io.plb.proto.v1.ListHandoversResponse;
import io.plb.proto.v1.MoveRangeResponse;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The leader's handover driver on a real cluster, driven by the reports a queue server's agent
 * sends (AgentService over gRPC): phases commit in order, late and duplicated reports change
 * nothing, bad reports are refused, stalled handovers are aborted, budgets hold, and a new leader
 * carries on every open handover with timeouts counted from its own takeover.
 */
class HandoverDriverTest {
  private static final Duration T = Duration.ofSeconds(20);
  private static final long MID = Long.MIN_VALUE; // 2^63

  @TempDir Path dir;

  /** Reports as a queue server sends them, to whichever node leads. */
  private static final class Agent implements AutoCloseable {
    private final TestCluster cluster;
    private ManagedChannel channel;
    private int channelNode = -1;

    Agent(TestCluster cluster) {
      this.cluster = cluster;
    }

    private AgentServiceGrpc.AgentServiceBlockingStub stub() {
      int leader = cluster.awaitLeader(T);
      if (leader != channelNode) {
        close();
        channel = NettyChannelBuilder.forTarget(cluster.endpoint(leader)).usePlaintext().build();
        channelNode = leader;
      }
      return AgentServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    private static HandoverReport report(String server, long start, long epoch) {
      return HandoverReport.newBuilder()
          .setServerId(server).setRangeStart(start).setHandoverEpoch(epoch).build();
    }

    HandoverReportResponse ready(String server, long start, long epoch) {
      return retry(() -> stub().handoverReady(report(server, start, epoch)));
    }

    HandoverReportResponse drained(String server, long start, long epoch) {
      return retry(() -> stub().handoverDrained(report(server, start, epoch)));
    }

    HandoverReportResponse reversed(String server, long start, long epoch) {
      return retry(() -> stub().abortReversed(report(server, start, epoch)));
    }

    /** A new leader may not be ready for a moment after election. */
    private static HandoverReportResponse retry(
        java.util.function.Supplier<HandoverReportResponse> call) {
      StatusRuntimeException last = null;
      for (int i = 0; i < 50; i++) {
        try {
          return call.get();
        } catch (StatusRuntimeException e) {
          if (e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
            throw e;
          }
          last = e;
          java.util.concurrent.locks.LockSupport.parkNanos(100_000_000L);
        }
      }
      throw last;
    }

    @Override
    public void close() {
      if (channel != null) {
        channel.shutdownNow();
        channel = null;
        channelNode = -1;
      }
    }
  }

  private static void setUp(PlbAdminClient admin) {
    admin.registerServer("q1", "127.0.0.1:9001", 1.0);
    admin.registerServer("q2", "127.0.0.1:9002", 1.0);
    admin.registerServer("q3", "127.0.0.1:9003", 1.0);
    admin.splitAtHash(0, MID);
    admin.assign(0, "q1", false);
    admin.assign(MID, "q2", false);
  }

  private static RangeEntry range(PlbAdminClient admin, long version, long start) {
    ClusterImage image = admin.getMap(version);
    return image.range(image.indexOfStart(start));
  }

  private static Status.Code code(Runnable r) {
    return assertThrows(StatusRuntimeException.class, r::run).getStatus().getCode();
  }

  @Test
  void forwardHandoverWithLateAndBadReports() throws Exception {
    try (TestCluster cluster = TestCluster.start(dir);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
        Agent agent = new Agent(cluster)) {
      cluster.awaitLeader(T);
      setUp(admin);

      MoveRangeResponse move = admin.move(0, "q3");
      assertEquals(2, move.getHandoverEpoch());
      RangeEntry prepare = range(admin, move.getVersion(), 0);
      assertEquals(HandoverPhase.PREPARE, prepare.handover().phase());
      assertEquals("q3", prepare.handover().target());

      // A move during a move, and moves the rules refuse.
      assertThrows(PlbClientException.FailedPrecondition.class, () -> admin.move(0, "q2"));
      assertThrows(PlbClientException.FailedPrecondition.class, () -> admin.move(MID, "q2"));
      assertThrows(PlbClientException.NotFound.class, () -> admin.move(MID, "nobody"));
      assertThrows(PlbClientException.NotFound.class, () -> admin.move(12345, "q1"));

      // Bad reports: wrong reporter, an epoch no handover has, an unknown range, no server id.
      assertEquals(Status.Code.FAILED_PRECONDITION, code(() -> agent.ready("q1", 0, 2)));
      assertEquals(Status.Code.FAILED_PRECONDITION, code(() -> agent.ready("q3", 0, 9)));
      assertEquals(Status.Code.NOT_FOUND, code(() -> agent.ready("q3", 777, 2)));
      assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> agent.ready("", 0, 2)));
      assertEquals(Status.Code.INVALID_ARGUMENT, code(() -> agent.ready("q3", 0, 0)));

      HandoverReportResponse ready = agent.ready("q3", 0, 2);
      assertFalse(ready.getIgnored());
      assertEquals(HandoverPhase.SWITCH, range(admin, ready.getVersion(), 0).handover().phase());
      HandoverReportResponse again = agent.ready("q3", 0, 2);
      assertTrue(again.getIgnored(), "a duplicated ready is recognised");
      assertEquals(ready.getVersion(), again.getVersion(), "and changes nothing");

      assertEquals(Status.Code.FAILED_PRECONDITION, code(() -> agent.drained("q3", 0, 2)));
      HandoverReportResponse drained = agent.drained("q1", 0, 2);
      RangeEntry done = range(admin, drained.getVersion(), 0);
      assertEquals("q3", done.owner());
      assertEquals(2, done.epoch());
      assertNull(done.handover());

      HandoverReportResponse late = agent.drained("q1", 0, 2);
      assertTrue(late.getIgnored(), late.getDetail());
      assertTrue(agent.ready("q3", 0, 2).getIgnored());
      assertEquals(drained.getVersion(), admin.getMap(0).version());
      assertEquals(0, admin.handovers().getHandoversCount());
    }
  }

  @Test
  void stalledHandoversAreAbortedAndBudgetsHold() throws Exception {
    Map<String, String> settings = Map.of(
        // Long enough that each step below lands before the timeout it races on a busy machine
        // (the second move must find the budget spent, the ready must beat the PREPARE timeout,
        // the operator abort must come before the timeout's own).
        "handover.prepareTimeout", "5s",
        "handover.drainTimeout", "2s",
        "handover.maxTotal", "1");
    try (TestCluster cluster = TestCluster.start(dir, 3, settings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
        Agent agent = new Agent(cluster)) {
      cluster.awaitLeader(T);
      setUp(admin);

      // PREPARE with a target that never answers: cleared after prepareTimeout.
      MoveRangeResponse move = admin.move(0, "q3");
      var budget = assertThrows(PlbClientException.class, () -> admin.move(MID, "q3"));
      assertEquals(io.plb.core.error.ErrorCode.RESOURCE_EXHAUSTED, budget.code());
      TestCluster.await(T, "the stalled PREPARE aborted",
          () -> range(admin, 0, 0).handover() == null);
      RangeEntry afterAbort = range(admin, 0, 0);
      assertEquals("q1", afterAbort.owner());
      assertEquals(2, afterAbort.epoch(), "clearing an aborted move bumps the epoch");
      assertTrue(agent.ready("q3", 0, move.getHandoverEpoch()).getIgnored(),
          "a ready after the abort is late");

      // SWITCH with a source that never drains: reversed after drainTimeout, then cleared when
      // the source reports that it took everything back.
      MoveRangeResponse second = admin.move(0, "q3");
      agent.ready("q3", 0, second.getHandoverEpoch());
      TestCluster.await(T, "the stalled SWITCH reversed",
          () -> range(admin, 0, 0).handover() != null
              && range(admin, 0, 0).handover().phase() == HandoverPhase.ABORT_SWITCH);
      assertTrue(agent.drained("q1", 0, second.getHandoverEpoch()).getIgnored(),
          "a drained report after the abort is late");
      assertEquals(Status.Code.FAILED_PRECONDITION,
          code(() -> agent.reversed("q3", 0, second.getHandoverEpoch())));
      HandoverReportResponse reversed = agent.reversed("q1", 0, second.getHandoverEpoch());
      RangeEntry back = range(admin, reversed.getVersion(), 0);
      assertNull(back.handover());
      assertEquals("q1", back.owner());

      // An operator abort from PREPARE.
      admin.move(MID, "q1");
      admin.abortHandover(MID, "changed my mind");
      assertNull(range(admin, 0, MID).handover());
      assertThrows(PlbClientException.FailedPrecondition.class,
          () -> admin.abortHandover(MID, "nothing open"));
    }
  }

  /**
   * An ABORT_SWITCH whose source never reports the handback (its target is gone) is ended at
   * handover.abortSwitchTimeout: the owner stays, the epoch moves past the handover's, and a
   * late reversal report changes nothing. Before the deadline existed it stayed open for good.
   */
  @Test
  void anAbortNotReversedInTimeIsEnded() throws Exception {
    Map<String, String> settings = Map.of("handover.drainTimeout", "1s",
        "handover.abortSwitchTimeout", "2s");
    try (TestCluster cluster = TestCluster.start(dir, 3, settings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
        Agent agent = new Agent(cluster)) {
      cluster.awaitLeader(T);
      setUp(admin);
      MoveRangeResponse move = admin.move(0, "q3");
      agent.ready("q3", 0, move.getHandoverEpoch());
      TestCluster.await(T, "the stalled SWITCH reversed",
          () -> range(admin, 0, 0).handover() != null
              && range(admin, 0, 0).handover().phase() == HandoverPhase.ABORT_SWITCH);
      TestCluster.await(T, "the ABORT_SWITCH ended at its deadline",
          () -> range(admin, 0, 0).handover() == null);
      RangeEntry ended = range(admin, 0, 0);
      assertEquals("q1", ended.owner());
      assertEquals(move.getHandoverEpoch() + 1, ended.epoch(),
          "the epoch skips the handover's own, which a reversal would have taken");
      assertTrue(agent.reversed("q1", 0, move.getHandoverEpoch()).getIgnored(),
          "a reversal reported after the deadline is late");
    }
  }

  @Test
  void newLeaderCarriesOnAndTimesOutFromItsTakeover() throws Exception {
    Map<String, String> settings = Map.of("handover.drainTimeout", "60s");
    try (TestCluster cluster = TestCluster.start(dir, 3, settings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
        Agent agent = new Agent(cluster)) {
      int leader = cluster.awaitLeader(T);
      setUp(admin);
      MoveRangeResponse move = admin.move(0, "q3");
      agent.ready("q3", 0, move.getHandoverEpoch());
      TestCluster.await(T, "the handover has aged on the first leader",
          () -> admin.handovers().getHandovers(0).getAgeMillis() >= 1500);

      long stoppedAt = System.nanoTime();
      cluster.stopNode(leader);
      cluster.awaitLeader(T);
      ListHandoversResponse seen = admin.handovers();
      long sinceStop = (System.nanoTime() - stoppedAt) / 1_000_000;
      assertEquals(1, seen.getHandoversCount(), "the new leader drives the open handover");
      assertEquals(HandoverPhase.SWITCH.name(),
          seen.getHandovers(0).getRange().getHandover().getPhase().name());
      // Counted from the old leader's start it would be at least 1500 ms more than that.
      assertTrue(seen.getHandovers(0).getAgeMillis() <= sinceStop,
          "its age counts from the takeover, not from the old leader's clock: "
              + seen.getHandovers(0).getAgeMillis() + " ms, " + sinceStop + " ms since the stop");

      HandoverReportResponse drained = agent.drained("q1", 0, move.getHandoverEpoch());
      RangeEntry done = range(admin, drained.getVersion(), 0);
      assertEquals("q3", done.owner());
      assertEquals(move.getHandoverEpoch(), done.epoch());
    }
  }
}
