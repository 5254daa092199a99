package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.PlannedAction;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The leader's balancer with its default acting settings (the ones the simulator benchmarks as
 * {@code predictive}): an uneven but quiet cluster is left alone, and says why; the same cluster
 * with its servers over capacity is planned down. Capacities are changed through the admin API,
 * so the same reported traffic is first far below and then far above what the servers serve.
 * The balancer is paused: the dry run ({@code plan}) shows what it would do.
 */
class BalancerDefaultsTest {
  @TempDir Path dir;

  @Test
  void aQuietClusterIsLeftAloneAndAServerOverCapacityIsPlannedDown() throws Exception {
    Map<String, String> s = TestCluster.compressedBalancer();
    s.put("balancer.interval", "500ms");
    s.put("balancer.capacityPerWeight", "100");
    try (TestCluster c = TestCluster.start(dir, 3, s);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(Duration.ofSeconds(20));
      admin.setBalancerPaused(true, "test");
      admin.registerServer("q1", "127.0.0.1:9001", 1000.0);
      admin.registerServer("q2", "127.0.0.1:9002", 1000.0);
      admin.splitAtHash(0, Long.MIN_VALUE);
      admin.assign(0, "q1", false);
      admin.assign(Long.MIN_VALUE, "q2", false);
      long[] seq = {0};

      // q1 carries about ten times q2's traffic, but both are nearly idle for their capacity.
      PlanResponse quiet = awaitPlan(admin, seq, "a plan that sees q1 busier than q2",
          p -> p.getServersCount() == 2 && utilisation(p, "q1") > 5 * utilisation(p, "q2"));
      assertEquals("MAX_MEAN_OR_HIGH_WATER", quiet.getCriterion());
      assertFalse(quiet.getActing(), quiet.toString());
      assertEquals(0, quiet.getActionsCount(), quiet.toString());
      assertTrue(quiet.getNotesList().stream().anyMatch(n -> n.contains("at or below actAbove "
          + "0.700: a quiet cluster is left as it is")), quiet.toString());

      // The same traffic on a thousandth of the capacity: q1 far over it. Planned down.
      admin.updateServer("q1", null, 1.0, null);
      admin.updateServer("q2", null, 1.0, null);
      PlanResponse hot = awaitPlan(admin, seq, "a plan that relieves q1",
          p -> p.getActing() && p.getActionsCount() > 0);
      assertTrue(utilisation(hot, "q1") > 1.0, hot.toString());
      // The first move relieves q1. Once q2 has taken half of q1's load it may itself be the
      // hotter of the two, and a later move of the same round may even them out from q2's side:
      // what the plan must do is bring the hottest server down, q1 with it.
      PlannedAction firstMove = hot.getActionsList().stream()
          .filter(a -> a.getKind() == PlannedAction.Kind.MOVE).findFirst().orElseThrow();
      assertEquals("q1", firstMove.getFrom(), hot.toString());
      assertEquals("q2", firstMove.getTo(), hot.toString());
      assertTrue(after(hot, "q1") < utilisation(hot, "q1"), hot.toString());
      assertTrue(Math.max(after(hot, "q1"), after(hot, "q2")) < utilisation(hot, "q1"),
          hot.toString());
      assertTrue(hot.getCriterionAfter() < hot.getCriterionBefore(), hot.toString());
    }
  }

  /** Reports load (q1 on four slices of its half, q2 on one) until the dry run satisfies it. */
  private static PlanResponse awaitPlan(PlbAdminClient admin, long[] seq, String what,
      java.util.function.Predicate<PlanResponse> ok) {
    PlanResponse[] last = new PlanResponse[1];
    TestCluster.await(Duration.ofSeconds(60), what, () -> {
      seq[0]++;
      LoadReport.Builder q1 = LoadReport.newBuilder().setServerId("q1").setSession(1)
          .setSeq(seq[0]).setIntervalMillis(50);
      for (int slice : new int[] {10, 300, 900, 1500}) {
        q1.addSlices(BalancerFailoverTest.slice(slice, 25));
      }
      admin.reportLoad(q1.build());
      admin.reportLoad(LoadReport.newBuilder().setServerId("q2").setSession(1).setSeq(seq[0])
          .setIntervalMillis(50).addSlices(BalancerFailoverTest.slice(3000, 10)).build());
      last[0] = admin.plan();
      return ok.test(last[0]);
    });
    return last[0];
  }

  private static double after(PlanResponse p, String server) {
    return p.getServersList().stream().filter(u -> u.getServerId().equals(server))
        .mapToDouble(u -> u.getAfter()).findFirst().orElse(Double.NaN);
  }

  private static double utilisation(PlanResponse p, String server) {
    return p.getServersList().stream().filter(u -> u.getServerId().equals(server))
        .mapToDouble(u -> u.getBefore()).findFirst().orElse(Double.NaN);
  }
}
