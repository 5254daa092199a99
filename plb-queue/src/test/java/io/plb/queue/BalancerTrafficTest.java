package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.PlanResponse;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.Traffic;
import io.plb.server.PlbNode;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The leader's balancer on real parts: three PLB nodes, three reference queue servers, checked
 * traffic over keys spread evenly on the ring, and a skewed map — q1 owns four of six equal
 * ranges, so it carries two thirds of the load. The balancer is paused first: its dry run wants to
 * move ranges off q1, but nothing moves, also after the leader is killed (the pause is committed).
 * Resumed, it moves ranges off q1 on its own until the servers are level; each move is committed
 * with its cause (criterion, utilisations before and after, load, forecast model). Nothing is lost
 * and no key is reordered.
 *
 * <p>Time is compressed: 200 ms history buckets, 1 s coarse buckets, a 60 s "day", a 2 s horizon
 * and a round every second.
 */
class BalancerTrafficTest {
  @TempDir Path tmp;

  static Map<String, String> settings() {
    Map<String, String> s = TestCluster.compressedBalancer();
    s.put("balancer.interval", "1s");
    // The loads here are sized for MAX_MEAN 1.15 acting at any load.
    s.putAll(TestCluster.maxMeanPlanner());
    s.put("balancer.moveWindow", "1m");
    s.put("balancer.minDwell", "1m");
    s.put("balancer.expectedHold", "1s");
    // About 330 cost units/s of traffic in all: q1 at ~0.7 of its capacity, the others ~0.2.
    s.put("balancer.capacityPerWeight", "300");
    return s;
  }

  /** Six equal ranges: q1 owns the first four, q2 and q3 one each. */
  static void skewedLayout(QueueCluster c) {
    PlbAdminClient admin = c.admin();
    long step = Long.divideUnsigned(-1L, 6) + 1;
    for (int i = 1; i < 6; i++) {
      admin.splitAtHash((i - 1) * step, i * step);
    }
    String[] owners = {"q1", "q1", "q1", "q1", "q2", "q3"};
    for (int i = 0; i < 6; i++) {
      admin.assign(i * step, owners[i], false);
    }
  }

  static long owned(ClusterImage map, String server) {
    return map.ranges().stream().filter(r -> r.owner().equals(server)).count();
  }

  /** The committed changes that carry a balancer cause, as the leader's publisher keeps them. */
  static List<MapDelta> automatic(QueueCluster c) {
    int leader = c.plb().awaitLeader(Duration.ofSeconds(20));
    List<MapDelta> out = new ArrayList<>();
    for (MapDelta d : c.plb().node(leader).publisher().recentChanges(10_000)) {
      if (d.actionCause() != null) {
        out.add(d);
      }
    }
    return out;
  }

  @Test
  void pausedItHoldsStillAcrossALeaderKillResumedItLevelsTheLoadWithCommittedCauses()
      throws Exception {
    Map<String, String> queue = Map.of("sync", "false", "telemetry.reportInterval", "100ms");
    try (QueueCluster c = QueueCluster.start(tmp, 3, settings(), queue)) {
      PlbAdminClient admin = c.admin();
      admin.setBalancerPaused(true, "test");
      skewedLayout(c);
      try (Traffic traffic = Traffic.start(Workload.Options.defaults(c.plb().endpoints())
          .withKeys(600).withRate(300).withClients(2, 3).withDuration(Duration.ofMinutes(5)))) {
        // Paused: the dry run wants q1 relieved, but nothing moves.
        PlanResponse[] dryRun = new PlanResponse[1];
        TestCluster.await(Duration.ofSeconds(60), "a dry run that moves ranges off q1", () -> {
          dryRun[0] = admin.plan();
          return dryRun[0].getPaused() && dryRun[0].getActionsList().stream()
              .anyMatch(a -> a.getFrom().equals("q1"));
        });
        PlanResponse wanted = dryRun[0];
        assertEquals("MAX_MEAN", wanted.getCriterion());
        assertTrue(wanted.getCriterionBefore() > 1.15, wanted.toString());
        assertTrue(wanted.getCriterionAfter() < wanted.getCriterionBefore(), wanted.toString());
        BalancerStatus paused = admin.balancerStatus();
        assertTrue(paused.getPaused());
        assertEquals("test", paused.getPausedBy());
        assertEquals(4, owned(c.map(), "q1"));
        assertTrue(automatic(c).isEmpty());

        // Some complete coarse buckets are committed, for the next leader to warm from.
        TestCluster.await(Duration.ofSeconds(30), "two coarse buckets of history",
            () -> admin.balancerStatus().getForecast().getCoarseBuckets() >= 2);

        // The pause is committed: a new leader keeps it.
        int leader = c.plb().awaitLeader(Duration.ofSeconds(20));
        c.plb().stopNode(leader);
        int next = c.plb().awaitLeader(Duration.ofSeconds(20));
        PlbNode nextNode = c.plb().node(next);
        TestCluster.await(Duration.ofSeconds(20), "the new leader's balancer",
            () -> statusOrNull(admin) != null && statusOrNull(admin).getLeaderId()
                .equals(nextNode.id()));
        BalancerStatus after = admin.balancerStatus();
        assertTrue(after.getPaused(), after.toString());
        assertTrue(after.getForecast().getWarmedBuckets() > 0, after.toString());
        long from = after.getForecast().getNewestBucketMillis();
        TestCluster.await(Duration.ofSeconds(30), "the new leader follows 3 s more history",
            () -> admin.balancerStatus().getForecast().getNewestBucketMillis() >= from + 3000
                && admin.plan().getActionsCount() > 0);
        assertEquals(4, owned(c.map(), "q1"));
        assertTrue(automatic(c).isEmpty());
        c.plb().startNode(leader);
        c.plb().awaitAllApplied(c.map().version(), Duration.ofSeconds(30));

        // Resumed: the balancer relieves q1 by itself.
        admin.setBalancerPaused(false, "test");
        String resumedUnder = admin.balancerStatus().getLeaderId();
        TestCluster.await(Duration.ofSeconds(90), "q1 relieved, every handover done", () -> {
          ClusterImage m = c.map();
          return owned(m, "q1") <= 2 && m.ranges().stream().allMatch(r -> r.handover() == null);
        });
        BalancerStatus running = admin.balancerStatus();
        assertFalse(running.getPaused());
        if (running.getLeaderId().equals(resumedUnder)) {
          // The counters are the leader's own; a new leader (an election on a busy machine)
          // starts them again. The committed causes below are checked either way.
          assertTrue(running.getRounds() > 0 && running.getActionsCommitted() >= 2,
              running.toString());
        }
        traffic.awaitMoreDeliveries(300, Duration.ofSeconds(30), "traffic after the moves");
        Workload.Result r = traffic.stopAndCheck();
        HistoryChecker.Verdict v = r.verdict();
        System.out.println(v);
        assertEquals(0, v.lost(), v.toString());
        assertEquals(0, v.reorderedKeys(), v.toString());
        assertEquals(0, v.unexplainedDuplicates(), v.toString());
        assertEquals(0, v.phantom(), v.toString());
        assertTrue(v.acknowledged() > 1000, v.toString());
      }

      // Every automatic change is committed with its cause. The ones that relieved q1 moved
      // whole ranges to q2 and q3. (The balancer runs on while traffic drains; should the level
      // servers' upper forecasts drift apart by more than the criterion allows, it may act again
      // from another server, with a cause of its own.)
      List<MapDelta> changes = automatic(c);
      List<MapDelta> moves = new ArrayList<>();
      for (MapDelta d : changes) {
        ActionCause cause = d.actionCause();
        System.out.println("version " + d.version() + ": " + cause.summary());
        assertEquals("MAX_MEAN", cause.criterion());
        assertTrue(cause.criterionValue() > 1.1, cause.toString());
        assertTrue(cause.meanLoad() > 0 && cause.upperLoad() >= cause.meanLoad(),
            cause.toString());
        assertFalse(cause.model().isEmpty());
        assertTrue(cause.decidedAtMillis() > 0);
        if (!cause.reason().equals("REBALANCE")) {
          continue;
        }
        assertTrue(cause.sourceAfter() < cause.sourceBefore(), cause.toString());
        assertTrue(cause.targetAfter() > cause.targetBefore(), cause.toString());
        RangeEntry moved = d.upsertedRanges().get(0);
        assertEquals(cause.source(), moved.owner(), d.toString());
        assertEquals(cause.target(), moved.handover().target(), d.toString());
        if (cause.source().equals("q1")) {
          assertTrue(cause.target().equals("q2") || cause.target().equals("q3"),
              cause.toString());
          moves.add(d);
        }
      }
      assertTrue(moves.size() >= 2, changes.toString());
      // plbctl explains the version: the change after the index before it, with its cause. It
      // asks the leader, which applied the change live; a node whose change history does not
      // reach back that far (the restarted one) answers with a full map, as the watch contract
      // says.
      MapDelta first = moves.get(0);
      String leaderEndpoint = c.plb().endpoint(c.plb().awaitLeader(Duration.ofSeconds(20)));
      java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
      int code = new io.plb.client.cli.PlbCtl(new java.io.PrintStream(out, true), System.err,
          Map.of()).run(new String[] {"--endpoints", leaderEndpoint,
              "--json", "watch", "--from", Long.toString(first.version() - 1), "--count", "1"});
      String line = out.toString(java.nio.charset.StandardCharsets.UTF_8);
      assertEquals(0, code, line);
      assertTrue(line.startsWith("{\"version\":" + first.version() + ","), line);
      assertTrue(line.contains("\"action_cause\":{\"reason\":\"REBALANCE\",\"criterion\":"
          + "\"MAX_MEAN\""), line);
    }
  }

  private static BalancerStatus statusOrNull(PlbAdminClient admin) {
    try {
      return admin.balancerStatus();
    } catch (PlbClientException e) {
      return null;
    }
  }
}
