package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.ForecastRequest;
import io.plb.proto.v1.ForecastResponse;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.Resolution;
import io.plb.proto.v1.SliceLoad;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The balancer across leader changes, on a real three-node cluster: load reports build a history;
 * after reporting stops, each new leader warms its forecasters from its own replica of the
 * committed history, and two leaders in a row (each taking over from a killed one) serve exactly
 * the same forecast. The pause is committed state; the admin calls validate their input.
 */
class BalancerFailoverTest {
  @TempDir Path dir;

  static Map<String, String> settings() {
    Map<String, String> s = TestCluster.compressedBalancer();
    s.put("balancer.interval", "500ms");
    // The loads here are sized for MAX_MEAN 1.15 acting at any load.
    s.putAll(TestCluster.maxMeanPlanner());
    // q1 at about half its capacity, q2 at a quarter: unbalanced, and q1's range too hot for q2.
    s.put("balancer.capacityPerWeight", "100");
    return s;
  }

  static SliceLoad slice(int s, long in) {
    return SliceLoad.newBuilder().setSlice(s).setMessagesIn(in).setBytesIn(in * 100).build();
  }

  /** The balancer's status once the leader's balancer answers, from node {@code id}. */
  static BalancerStatus statusFrom(PlbAdminClient admin, String id) {
    BalancerStatus[] out = new BalancerStatus[1];
    TestCluster.await(Duration.ofSeconds(30), "the balancer of " + id, () -> {
      try {
        out[0] = admin.balancerStatus();
        return out[0].getLeaderId().equals(id);
      } catch (PlbClientException e) {
        return false;
      }
    });
    return out[0];
  }

  static void expect(Class<? extends PlbClientException> type, String part, Runnable call) {
    PlbClientException e = assertThrows(type, call::run);
    assertTrue(e.getMessage().contains(part), e.getMessage());
  }

  /** Runs plbctl in-process; returns its standard output, or standard error when it fails. */
  static String plbctl(int expectedExit, String... args) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
    int code = new io.plb.client.cli.PlbCtl(new java.io.PrintStream(out, true),
        new java.io.PrintStream(err, true), Map.of()).run(args);
    String o = out.toString(java.nio.charset.StandardCharsets.UTF_8);
    String e = err.toString(java.nio.charset.StandardCharsets.UTF_8);
    assertEquals(expectedExit, code, "plbctl " + String.join(" ", args) + ": " + o + e);
    return code == 0 ? o : e;
  }

  @Test
  void newLeadersForecastAlikeFromTheCommittedHistoryAndThePauseHolds() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, settings());
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(Duration.ofSeconds(20));
      admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      admin.registerServer("q2", "127.0.0.1:9002", 1.0);
      admin.splitAtHash(0, Long.MIN_VALUE);
      admin.assign(0, "q1", false);
      admin.assign(Long.MIN_VALUE, "q2", false);
      // The queue servers here are not real: the balancer must not move anything.
      admin.setBalancerPaused(true, "test");
      expect(PlbClientException.FailedPrecondition.class, "already paused",
          () -> admin.setBalancerPaused(true, "again"));

      // Load over several coarse buckets, a bucket at a time.
      long newest = -1;
      for (int seq = 1; seq <= 90; seq++) {
        long q1 = admin.reportLoad(LoadReport.newBuilder().setServerId("q1").setSession(1)
            .setSeq(seq).setIntervalMillis(50)
            .addSlices(slice(10, 40 + seq % 7)).addSlices(slice(900, 5 + seq % 3)).build())
            .getBucketStartMillis();
        long q2 = admin.reportLoad(LoadReport.newBuilder().setServerId("q2").setSession(1)
            .setSeq(seq).setIntervalMillis(50)
            .addSlices(slice(3000, 20 + seq % 5)).build()).getBucketStartMillis();
        newest = Math.max(q1, q2);
        if (seq % 3 == 0) {
          long bucket = newest;
          TestCluster.await(Duration.ofSeconds(10), "bucket " + bucket + " committed",
              () -> c.node(c.awaitLeader(Duration.ofSeconds(10))).stateMachine().historyState()
                  .lastBucketMillis() >= bucket);
        }
      }
      long last = newest;
      TestCluster.await(Duration.ofSeconds(10), "the last bucket on every node", () -> {
        for (int i = 0; i < c.size(); i++) {
          if (c.node(i).stateMachine().historyState().lastBucketMillis() < last) {
            return false;
          }
        }
        return true;
      });
      int first = c.awaitLeader(Duration.ofSeconds(10));
      long coarse = admin.loadHistory(LoadHistoryRequest.newBuilder()
          .setResolution(Resolution.COARSE).build()).getBucketsCount();
      assertTrue(coarse >= 5, coarse + " coarse buckets");

      // The input checks.
      expect(PlbClientException.NotFound.class, "q9",
          () -> admin.forecast(ForecastRequest.newBuilder().setServerId("q9").build()));
      expect(PlbClientException.NotFound.class, "no range starts at",
          () -> admin.forecast(ForecastRequest.newBuilder().setRangeStart(12345).build()));
      expect(PlbClientException.InvalidArgument.class, "buckets",
          () -> admin.forecast(ForecastRequest.newBuilder().setBuckets(500).build()));
      expect(PlbClientException.InvalidArgument.class, "time window",
          () -> admin.loadHistory(LoadHistoryRequest.newBuilder().setFromMillis(2000)
              .setToMillis(1000).build()));
      expect(PlbClientException.NotFound.class, "q9",
          () -> admin.loadHistory(LoadHistoryRequest.newBuilder().setServerId("q9").build()));
      ForecastResponse q1View = admin.forecast(ForecastRequest.newBuilder().setServerId("q1")
          .build());
      assertEquals(0, q1View.getFirstSlice());
      assertEquals(2047, q1View.getLastSlice());
      assertEquals(10, q1View.getSeries(0).getSlice(), q1View.toString()); // the busiest
      PlanResponse plan = admin.plan();
      assertTrue(plan.getPaused());
      assertEquals(2, plan.getServersCount());

      // Leader 2 takes over from the killed leader 1, and warms from its replica.
      c.stopNode(first);
      int second = c.awaitLeader(Duration.ofSeconds(20));
      BalancerStatus s2 = statusFrom(admin, c.node(second).id());
      assertTrue(s2.getPaused(), "the pause is committed");
      assertTrue(s2.getForecast().getWarmedBuckets() >= 4, s2.toString());
      assertEquals(3, s2.getForecast().getLiveSeries(), s2.toString());
      ForecastResponse f2 = admin.forecast(ForecastRequest.getDefaultInstance());
      assertFalse(f2.getAheadList().isEmpty());
      assertTrue(f2.getAhead(0).getForecast() > 0, f2.toString());

      // Leader 3 takes over from the killed leader 2: the same data, the same forecast.
      c.startNode(first);
      c.awaitAllApplied(c.node(second).publisher().appliedIndex(), Duration.ofSeconds(30));
      c.stopNode(second);
      int third = c.awaitLeader(Duration.ofSeconds(20));
      BalancerStatus s3 = statusFrom(admin, c.node(third).id());
      assertTrue(s3.getPaused());
      assertEquals(s2.getForecast(), s3.getForecast());
      ForecastResponse f3 = admin.forecast(ForecastRequest.getDefaultInstance());
      assertEquals(f2, f3);

      // Resume and pause again: committed each time. A round may act in the moment it runs, so
      // the automatic changes checked at the end count from here.
      long before = c.node(third).image().version();
      admin.setBalancerPaused(false, "test");
      assertFalse(admin.balancerStatus().getPaused());
      admin.setBalancerPaused(true, "test");
      assertTrue(admin.balancerStatus().getPaused());

      // The same through plbctl: tables, --json, and clear refusals.
      String eps = String.join(",", c.endpoints());
      String out = plbctl(0, "--endpoints", eps, "balancer", "status");
      assertTrue(out.contains("PAUSED by test") && out.contains("live series"), out);
      out = plbctl(0, "--endpoints", eps, "--json", "balancer", "status");
      assertTrue(out.startsWith("{\"leader\":") && out.contains("\"paused\":true"), out);
      out = plbctl(0, "--endpoints", eps, "plan");
      assertTrue(out.contains("PAUSED") && out.contains("UTIL NOW"), out);
      out = plbctl(0, "--endpoints", eps, "--json", "plan");
      assertTrue(out.contains("\"servers\":[{\"id\":\"q1\""), out);
      out = plbctl(0, "--endpoints", eps, "forecast", "--server", "q1");
      assertTrue(out.contains("forecast for server q1") && out.contains("(ahead)"), out);
      out = plbctl(0, "--endpoints", eps, "--json", "forecast", "--range", "0x8000000000000000");
      assertTrue(out.contains("\"first_slice\":2048") && out.contains("\"ahead\":["), out);
      out = plbctl(0, "--endpoints", eps, "history", "--server", "q2", "--resolution",
          "coarse");
      assertTrue(out.contains("coarse load history of server q2") && out.contains("MSGS IN"),
          out);
      out = plbctl(0, "--endpoints", eps, "--json", "history", "--range", "0", "--from",
          "-1h");
      assertTrue(out.contains("\"buckets\":[{\"start_ms\":"), out);
      assertTrue(plbctl(1, "--endpoints", eps, "history", "--from", "2000", "--to", "1000")
          .contains("INVALID_ARGUMENT"));
      assertTrue(plbctl(1, "--endpoints", eps, "forecast", "--server", "q9")
          .contains("NOT_FOUND"));
      assertTrue(plbctl(1, "--endpoints", eps, "history", "--range", "0x10")
          .contains("NOT_FOUND"));
      assertTrue(plbctl(2, "--endpoints", eps, "history", "--resolution", "medium")
          .contains("--resolution"));
      assertTrue(plbctl(1, "--endpoints", eps, "balancer", "pause").contains("already paused"));

      // Resumed, the balancer splits q1's range, too hot to hand to q2 whole, and moves a piece:
      // both committed with their causes. (q2 is not a real queue server: the move stays in
      // PREPARE until the leader aborts it.)
      admin.setBalancerPaused(false, "test");
      TestCluster.await(Duration.ofSeconds(30), "a split and a move with their causes", () -> {
        java.util.List<io.plb.core.map.MapDelta> auto = c.node(third).publisher()
            .recentChanges(1000).stream()
            .filter(d -> d.version() > before && d.actionCause() != null).toList();
        return auto.stream().anyMatch(d -> d.actionCause().reason().startsWith("SPLIT")
            || d.actionCause().reason().equals("ISOLATE_HOT_KEY"))
            && auto.stream().anyMatch(d -> d.actionCause().reason().equals("REBALANCE"));
      });
      admin.setBalancerPaused(true, "test");
      for (io.plb.core.map.MapDelta d : c.node(third).publisher().recentChanges(1000)) {
        if (d.version() <= before || d.actionCause() == null) {
          continue;
        }
        io.plb.core.map.ActionCause cause = d.actionCause();
        assertEquals("q1", cause.source(), cause.toString());
        assertEquals("MAX_MEAN", cause.criterion());
        assertTrue(cause.criterionValue() > 1.15, cause.toString());
        assertTrue(cause.meanLoad() > 0, cause.toString());
        if (cause.reason().equals("REBALANCE")) {
          assertEquals("q2", cause.target());
          assertTrue(cause.sourceAfter() < cause.sourceBefore(), cause.toString());
        } else {
          assertEquals("", cause.target(), "a split has no target");
          assertEquals(2, d.upsertedRanges().size(), d.toString());
        }
      }
    }
  }
}
