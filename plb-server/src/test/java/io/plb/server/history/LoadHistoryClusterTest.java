package io.plb.server.history;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.error.ErrorCode;
import io.plb.proto.v1.HotKey;
import io.plb.proto.v1.HotKeys;
import io.plb.proto.v1.LoadBucket;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.LoadReportResponse;
import io.plb.proto.v1.NodeStatus;
import io.plb.proto.v1.Resolution;
import io.plb.proto.v1.SliceLoad;
import io.plb.proto.v1.SliceRange;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The load history on a real three-node cluster (Ratis, RocksDB, gRPC on loopback), fed with load
 * reports over the agent API: every replica holds the same history with the reported figures;
 * after the leader is killed the new leader and every replica read the same history, a report the
 * committed history already counts is recognised as a duplicate by the new leader, and the history
 * keeps growing; a replica that missed it all catches up by snapshot installation.
 */
class LoadHistoryClusterTest {
  @TempDir Path dir;

  private static final long HOT = (10L << 52) | 12345;

  static Map<String, String> settings() {
    Map<String, String> s = new LinkedHashMap<>();
    s.put("history.bucket", "200ms");
    s.put("history.coarseBucket", "1s");
    // Retention longer than the test runs: trimming is not what it checks.
    s.put("history.fineRetention", "10m");
    s.put("history.coarseRetention", "30m");
    s.put("telemetry.hotKeys", "8");
    return s;
  }

  /** Sends reports and remembers what a complete history must hold. */
  static final class Reporter {
    final PlbAdminClient admin;
    final Map<Integer, Long> expectedIn = new HashMap<>();
    long expectedHot;
    long lastBucket;
    LoadReport lastQ1;

    Reporter(PlbAdminClient admin) {
      this.admin = admin;
    }

    /** One round: q1 and q2 report seq {@code seq} of session 7. */
    void round(int seq) {
      LoadReport q1 = LoadReport.newBuilder().setServerId("q1").setSession(7).setSeq(seq)
          .setIntervalMillis(50)
          .addSlices(slice(10, seq, 4))
          .addSlices(slice(20, 1, 0))
          .setHotKeys(HotKeys.newBuilder().addKeys(HotKey.newBuilder().setHash(HOT)
              .setCount(seq).setBytes(seq * 100L)))
          .build();
      LoadReport q2 = LoadReport.newBuilder().setServerId("q2").setSession(7).setSeq(seq)
          .setIntervalMillis(50)
          .addSlices(slice(20, 2, 1))
          .addSlices(slice(4095, 3, 0))
          .build();
      LoadReportResponse r1 = admin.reportLoad(q1);
      LoadReportResponse r2 = admin.reportLoad(q2);
      assertFalse(r1.getDuplicate());
      assertFalse(r2.getDuplicate());
      expectedIn.merge(10, (long) seq, Long::sum);
      expectedIn.merge(20, 3L, Long::sum);
      expectedIn.merge(4095, 3L, Long::sum);
      expectedHot += seq;
      lastBucket = Math.max(r1.getBucketStartMillis(), r2.getBucketStartMillis());
      lastQ1 = q1;
    }

    static SliceLoad slice(int s, long in, long depth) {
      return SliceLoad.newBuilder().setSlice(s).setMessagesIn(in).setBytesIn(in * 100)
          .setMessagesOut(in).setBytesOut(in * 100).setQueueDepth(depth)
          .setOldestAgeMillis(depth * 10).build();
    }
  }

  static LoadHistoryResponse history(PlbAdminClient admin, String node, Resolution r) {
    return admin.loadHistory(node, LoadHistoryRequest.newBuilder().setResolution(r)
        .setSlices(SliceRange.newBuilder().setFirst(0).setLast(4095)).build());
  }

  /**
   * {@link #history} from a node that has just been started: the client's channel to it may still
   * be backing off from the refused connections while it was down, so an UNAVAILABLE answer is
   * retried until the node serves (any other error fails at once).
   */
  static LoadHistoryResponse historyOnceServing(PlbAdminClient admin, String node, Resolution r) {
    LoadHistoryResponse[] out = new LoadHistoryResponse[1];
    TestCluster.await(Duration.ofSeconds(30), node + " answers history reads", () -> {
      try {
        out[0] = history(admin, node, r);
        return true;
      } catch (PlbClientException.Unavailable e) {
        return false;
      }
    });
    return out[0];
  }

  /** Messages in per slice, summed over a history's fine buckets. */
  static Map<Integer, Long> sums(LoadHistoryResponse h) {
    Map<Integer, Long> out = new HashMap<>();
    for (LoadBucket b : h.getBucketsList()) {
      for (SliceLoad s : b.getSlicesList()) {
        out.merge(s.getSlice(), s.getMessagesIn(), Long::sum);
      }
    }
    return out;
  }

  static long hotCount(LoadHistoryResponse h) {
    long n = 0;
    for (LoadBucket b : h.getBucketsList()) {
      for (HotKey k : b.getHotKeys().getKeysList()) {
        if (k.getHash() == HOT) {
          n += k.getCount();
        }
      }
    }
    return n;
  }

  /** Waits until every running node's history holds everything reported so far. */
  static void awaitComplete(TestCluster c, PlbAdminClient admin, Reporter rep) {
    for (int i = 0; i < c.size(); i++) {
      if (c.node(i) == null) {
        continue;
      }
      String node = c.endpoint(i);
      TestCluster.await(Duration.ofSeconds(20), "node " + i + " holds every reported load",
          () -> sums(history(admin, node, Resolution.FINE)).equals(rep.expectedIn)
              && sums(history(admin, node, Resolution.COARSE)).equals(rep.expectedIn));
    }
  }

  /** Reports rounds until they have spread over several buckets. */
  static void reportRounds(Reporter rep, int from, int to, TestCluster c, PlbAdminClient admin) {
    for (int seq = from; seq <= to; seq++) {
      rep.round(seq);
      if (seq % 3 == 0) {
        // Let the bucket close before the next rounds, so they land in a later one.
        long bucket = rep.lastBucket;
        int leader = c.awaitLeader(Duration.ofSeconds(10));
        TestCluster.await(Duration.ofSeconds(10), "bucket " + bucket + " committed",
            () -> history(admin, c.endpoint(leader), Resolution.FINE).getNewestBucketMillis()
                >= bucket);
      }
    }
  }

  @Test
  void historySurvivesALeaderKillAndEveryReplicaAgrees() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, settings());
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      int leader = c.awaitLeader(Duration.ofSeconds(20));
      admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      admin.registerServer("q2", "127.0.0.1:9002", 1.0);
      Reporter rep = new Reporter(admin);

      // Bad reports are refused and count nothing.
      PlbClientException bad = assertThrows(PlbClientException.class, () -> admin.reportLoad(
          LoadReport.newBuilder().setServerId("q1").setSession(7).setSeq(1)
              .addSlices(Reporter.slice(4096, 1, 0)).build()));
      assertEquals(ErrorCode.INVALID_ARGUMENT, bad.code(), bad.getMessage());
      assertTrue(bad.getMessage().contains("slice 4096"), bad.getMessage());
      PlbClientException unknown = assertThrows(PlbClientException.class, () -> admin.reportLoad(
          LoadReport.newBuilder().setServerId("q9").setSession(1).setSeq(1).build()));
      assertEquals(ErrorCode.NOT_FOUND, unknown.code(), unknown.getMessage());

      reportRounds(rep, 1, 12, c, admin);
      awaitComplete(c, admin, rep);
      assertTrue(admin.reportLoad(rep.lastQ1).getDuplicate(), "a resent report counts once");

      LoadHistoryResponse fineBefore = history(admin, c.endpoint(leader), Resolution.FINE);
      LoadHistoryResponse coarseBefore = history(admin, c.endpoint(leader), Resolution.COARSE);
      assertTrue(fineBefore.getBucketsCount() >= 3, "several buckets: " + fineBefore);
      assertEquals(rep.expectedHot, hotCount(fineBefore));
      assertEquals(rep.expectedHot, hotCount(coarseBefore));
      assertEquals(200, fineBefore.getLayout().getBucketMillis());
      for (int i = 0; i < 3; i++) {
        assertEquals(fineBefore.getBucketsList(),
            history(admin, c.endpoint(i), Resolution.FINE).getBucketsList(), "node " + i);
        assertEquals(coarseBefore.getBucketsList(),
            history(admin, c.endpoint(i), Resolution.COARSE).getBucketsList(), "node " + i);
      }
      // The map version does not move with load entries.
      assertEquals(admin.getMap(0).version(), c.node(leader).image().version());

      c.stopNode(leader);
      int next = c.awaitLeader(Duration.ofSeconds(20));
      // The new leader knows from the committed history that q1's last report was counted.
      TestCluster.await(Duration.ofSeconds(20), "the new leader takes reports", () -> {
        try {
          return admin.reportLoad(rep.lastQ1).getDuplicate();
        } catch (PlbClientException e) {
          return false;
        }
      });
      for (int i = 0; i < 3; i++) {
        if (c.node(i) != null) {
          assertEquals(fineBefore.getBucketsList(),
              history(admin, c.endpoint(i), Resolution.FINE).getBucketsList(), "node " + i);
        }
      }

      long newestBefore = fineBefore.getNewestBucketMillis();
      reportRounds(rep, 13, 21, c, admin);
      awaitComplete(c, admin, rep);
      LoadHistoryResponse fineAfter = history(admin, c.endpoint(next), Resolution.FINE);
      assertTrue(fineAfter.getNewestBucketMillis() > newestBefore);
      // What was committed before the kill is unchanged; the new leader appended after it.
      assertEquals(fineBefore.getBucketsList(),
          fineAfter.getBucketsList().subList(0, fineBefore.getBucketsCount()));
      assertEquals(rep.expectedHot, hotCount(fineAfter));

      // The old leader comes back and reads the same history.
      c.startNode(leader);
      NodeStatus status = c.node(next).localStatus();
      c.awaitAllApplied(status.getAppliedIndex(), Duration.ofSeconds(30));
      for (int i = 0; i < 3; i++) {
        assertEquals(fineAfter.getBucketsList(),
            historyOnceServing(admin, c.endpoint(i), Resolution.FINE).getBucketsList(),
            "node " + i);
      }
    }
  }

  @Test
  void aLaggingReplicaGetsTheHistoryBySnapshot() throws Exception {
    Map<String, String> s = settings();
    s.put("raft.snapshotEvery", "40");
    s.put("raft.segmentSize", "2KB");
    s.put("raft.purgeUpToSnapshot", "true");
    try (TestCluster c = TestCluster.start(dir, 3, s);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      int leader = c.awaitLeader(Duration.ofSeconds(20));
      admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      admin.registerServer("q2", "127.0.0.1:9002", 1.0);
      int lagging = (leader + 1) % 3;
      long laggingApplied = c.node(lagging).publisher().appliedIndex();
      c.stopNode(lagging);

      Reporter rep = new Reporter(admin);
      reportRounds(rep, 1, 9, c, admin);
      for (int i = 0; i < 50; i++) {
        admin.registerServer("filler" + i, "127.0.0.1:" + (9100 + i), 1.0);
      }
      reportRounds(rep, 10, 15, c, admin);
      awaitComplete(c, admin, rep);
      int current = c.awaitLeader(Duration.ofSeconds(10));
      c.node(current).takeSnapshot();
      TestCluster.await(Duration.ofSeconds(20), "leader log purged past the lagging node",
          () -> c.node(current).localStatus().getLogStartIndex() > laggingApplied + 1);

      c.startNode(lagging);
      long applied = c.node(current).localStatus().getAppliedIndex();
      TestCluster.await(Duration.ofSeconds(60), "lagging node caught up",
          () -> c.node(lagging).publisher().appliedIndex() >= applied);
      assertTrue(c.node(lagging).localStatus().getSnapshotIndex() > laggingApplied,
          "installed a snapshot");
      for (Resolution r : List.of(Resolution.FINE, Resolution.COARSE)) {
        assertEquals(history(admin, c.endpoint(current), r).getBucketsList(),
            historyOnceServing(admin, c.endpoint(lagging), r).getBucketsList(), r.name());
      }
      assertEquals(rep.expectedIn, sums(history(admin, c.endpoint(lagging), Resolution.FINE)));
    }
  }
}
