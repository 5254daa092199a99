package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.HotKey;
import io.plb.proto.v1.LoadBucket;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.Resolution;
import io.plb.proto.v1.SliceLoad;
import io.plb.proto.v1.SliceRange;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Load telemetry end to end on real parts: two reference queue servers count what producers
 * publish and consumers take, their agents report it, the PLB leader commits it bucket by bucket,
 * and every replica's load history holds exactly the published figures per slice — queue depth
 * and age while nothing is consumed, hot keys with exact counts. The PLB leader is then killed:
 * the new leader and every replica read the same history, and it keeps growing.
 */
class LoadHistoryTrafficTest {
  @TempDir Path tmp;

  /** What the published traffic must show in the history. */
  static final class Expected {
    final Map<Integer, long[]> bySlice = new HashMap<>(); // in, bytesIn
    long hot;
  }

  static LoadHistoryResponse history(PlbAdminClient admin, String node, Resolution r) {
    return history(admin, node, r, 0);
  }

  /** The buckets starting before {@code to} (0: all), every slice. */
  static LoadHistoryResponse history(PlbAdminClient admin, String node, Resolution r, long to) {
    return admin.loadHistory(node, LoadHistoryRequest.newBuilder().setResolution(r)
        .setToMillis(to)
        .setSlices(SliceRange.newBuilder().setFirst(0).setLast(Ring.SLICES - 1)).build());
  }

  /**
   * Waits until node {@code i} holds the bucket at {@code newest}, then returns its fine buckets
   * up to it (idle agents keep adding buckets, so replicas are compared up to one bucket).
   */
  static List<LoadBucket> upTo(QueueCluster c, int i, long newest) {
    String node = c.plb().endpoint(i);
    TestCluster.await(Duration.ofSeconds(10), "node " + i + " at bucket " + newest,
        () -> history(c.admin(), node, Resolution.FINE, 0).getNewestBucketMillis() >= newest);
    return history(c.admin(), node, Resolution.FINE, newest + 1).getBucketsList();
  }

  /** {in, bytesIn, out, bytesOut} per slice, summed over the buckets. */
  static Map<Integer, List<Long>> sums(LoadHistoryResponse h) {
    Map<Integer, long[]> acc = new HashMap<>();
    for (LoadBucket b : h.getBucketsList()) {
      for (SliceLoad s : b.getSlicesList()) {
        long[] a = acc.computeIfAbsent(s.getSlice(), k -> new long[4]);
        a[0] += s.getMessagesIn();
        a[1] += s.getBytesIn();
        a[2] += s.getMessagesOut();
        a[3] += s.getBytesOut();
      }
    }
    Map<Integer, List<Long>> out = new HashMap<>();
    acc.forEach((k, v) -> out.put(k, List.of(v[0], v[1], v[2], v[3])));
    return out;
  }

  static Map<Integer, List<Long>> expectedSums(Expected e, boolean delivered) {
    Map<Integer, List<Long>> out = new HashMap<>();
    e.bySlice.forEach((k, v) -> out.put(k,
        List.of(v[0], v[1], delivered ? v[0] : 0L, delivered ? v[1] : 0L)));
    return out;
  }

  static long hotCount(LoadHistoryResponse h, long hash) {
    long n = 0;
    for (LoadBucket b : h.getBucketsList()) {
      for (HotKey k : b.getHotKeys().getKeysList()) {
        if (k.getHash() == hash) {
          assertEquals(0, k.getError(), "every sketch had a free counter: exact");
          n += k.getCount();
        }
      }
    }
    return n;
  }

  private static long seq;

  /** Publishes {@code n} messages: every third to the hot key, the rest over 40 keys. */
  static void publish(QueueCluster c, Expected e, int n) throws InterruptedException {
    ClusterImage map = c.map();
    Map<String, RawQueueClient> clients = new HashMap<>();
    try {
      for (int i = 0; i < n; i++) {
        String key = i % 3 == 0 ? "hot-key" : "key-" + (i % 40);
        String payload = "x".repeat(10 + i % 90);
        long hash = KeyHash.hash(key.getBytes(StandardCharsets.UTF_8));
        String owner = map.rangeFor(hash).owner();
        String address = map.server(owner).address();
        RawQueueClient client = clients.computeIfAbsent(address, RawQueueClient::new);
        assertEquals(PublishStatus.ACCEPTED,
            client.publish("p1", ++seq, key, payload, map.version()).getStatus());
        long[] s = e.bySlice.computeIfAbsent(Ring.sliceOf(hash), k -> new long[2]);
        s[0]++;
        s[1] += payload.length();
        if (key.equals("hot-key")) {
          e.hot++;
        }
      }
    } finally {
      clients.values().forEach(RawQueueClient::close);
    }
  }

  static void awaitHistory(QueueCluster c, Expected e, boolean delivered) {
    Map<Integer, List<Long>> want = expectedSums(e, delivered);
    for (int i = 0; i < c.plb().size(); i++) {
      if (c.plb().node(i) == null) {
        continue;
      }
      String node = c.plb().endpoint(i);
      TestCluster.await(Duration.ofSeconds(30), "node " + i + " history holds the traffic",
          () -> sums(history(c.admin(), node, Resolution.FINE)).equals(want)
              && sums(history(c.admin(), node, Resolution.COARSE)).equals(want));
    }
  }

  @Test
  void historyHoldsThePublishedLoadAndSurvivesALeaderKill() throws Exception {
    Map<String, String> plb = Map.of("history.bucket", "200ms", "history.coarseBucket", "1s",
        // Retention longer than the test runs: trimming is not what it checks.
        "history.fineRetention", "10m", "history.coarseRetention", "30m",
        "telemetry.hotKeys", "8");
    Map<String, String> queue = Map.of("sync", "false", "telemetry.reportInterval", "50ms",
        "telemetry.hotKeys", "64");
    try (QueueCluster c = QueueCluster.start(tmp, 2, plb, queue)) {
      c.layOut(2);
      PlbAdminClient admin = c.admin();
      long hotHash = KeyHash.hash("hot-key".getBytes(StandardCharsets.UTF_8));
      Expected e = new Expected();

      // Nothing consumes yet: the messages wait, and the history shows depth and age.
      publish(c, e, 150);
      awaitHistory(c, e, false);
      int leader = c.plb().awaitLeader(Duration.ofSeconds(10));
      LoadHistoryResponse waiting = history(admin, c.plb().endpoint(leader), Resolution.FINE);
      long hotSlicePeak = 0;
      long agePeak = 0;
      for (LoadBucket b : waiting.getBucketsList()) {
        for (SliceLoad s : b.getSlicesList()) {
          if (s.getSlice() == Ring.sliceOf(hotHash)) {
            hotSlicePeak = Math.max(hotSlicePeak, s.getQueueDepth());
            agePeak = Math.max(agePeak, s.getOldestAgeMillis());
          }
        }
      }
      long publishedToHotSlice = e.bySlice.get(Ring.sliceOf(hotHash))[0];
      assertTrue(hotSlicePeak > 0 && hotSlicePeak <= publishedToHotSlice,
          "peak depth " + hotSlicePeak + " of " + publishedToHotSlice);
      assertTrue(agePeak > 0, "the oldest message aged");

      // Consumers take everything: the history counts it out.
      List<Delivery> got = new CopyOnWriteArrayList<>();
      RawQueueClient c1 = new RawQueueClient(c.queue(0).address());
      RawQueueClient c2 = new RawQueueClient(c.queue(1).address());
      try {
        c1.subscribe("c1", got);
        c2.subscribe("c2", got);
        TestCluster.await(Duration.ofSeconds(30), "all delivered", () -> got.size() >= 150);
        awaitHistory(c, e, true);
        assertEquals(e.hot, hotCount(history(admin, c.plb().endpoint(leader), Resolution.FINE),
            hotHash));

        // Every replica holds the same history; then the leader is killed.
        LoadHistoryResponse before = history(admin, c.plb().endpoint(leader), Resolution.FINE);
        LoadHistoryResponse coarseBefore =
            history(admin, c.plb().endpoint(leader), Resolution.COARSE);
        for (int i = 0; i < 3; i++) {
          assertEquals(before.getBucketsList(), upTo(c, i, before.getNewestBucketMillis()),
              "node " + i);
        }
        c.plb().stopNode(leader);
        int next = c.plb().awaitLeader(Duration.ofSeconds(20));
        for (int i = 0; i < 3; i++) {
          if (c.plb().node(i) == null) {
            continue;
          }
          // Idle agents may have added buckets since; the committed ones are unchanged.
          List<LoadBucket> now =
              history(admin, c.plb().endpoint(i), Resolution.FINE).getBucketsList();
          assertEquals(before.getBucketsList(), now.subList(0, before.getBucketsCount()),
              "node " + i);
          List<LoadBucket> coarseNow =
              history(admin, c.plb().endpoint(i), Resolution.COARSE).getBucketsList();
          int complete = coarseBefore.getBucketsCount() - 1; // the newest may still grow
          assertEquals(coarseBefore.getBucketsList().subList(0, complete),
              coarseNow.subList(0, complete), "node " + i);
        }

        // The new leader takes the reports and the history grows past what was there.
        publish(c, e, 90);
        TestCluster.await(Duration.ofSeconds(30), "all delivered", () -> got.size() >= 240);
        awaitHistory(c, e, true);
        LoadHistoryResponse after = history(admin, c.plb().endpoint(next), Resolution.FINE);
        assertTrue(after.getNewestBucketMillis() > before.getNewestBucketMillis());
        assertEquals(e.hot, hotCount(after, hotHash));
        for (int i = 0; i < 3; i++) {
          if (c.plb().node(i) != null) {
            assertEquals(after.getBucketsList(), upTo(c, i, after.getNewestBucketMillis()),
                "node " + i);
          }
        }
        assertTrue(c.queue(0).agent().loadReportsSent() > 0);
      } finally {
        c1.close();
        c2.close();
      }
    }
  }
}
