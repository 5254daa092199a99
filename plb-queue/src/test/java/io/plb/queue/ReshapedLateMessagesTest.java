package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferHeldResponse;
import io.plb.proto.v1.TransferOutcome;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A handover's source dies in SWITCH with a backlog and a hold buffer, is declared DOWN, and its
 * range is forced to the target; then the range is reshaped before the source returns — merged
 * with its neighbour, or split with the halves on different servers. What the source held is
 * keyed by the range it had, which no longer exists as it was; on its return every message still
 * goes to whoever owns its key now, marked late, and the source ends up empty. The history
 * checker's verdict: nothing lost, no duplicate, no key reordered apart from late messages.
 *
 * <p>All messages come from producer "p". Keys {@code a} hash below 2^63 and {@code b} at or
 * above, so the ring's two halves {@code [0, 2^63)} and {@code [2^63, 2^64)} separate them.
 */
class ReshapedLateMessagesTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final long HALF = Long.MIN_VALUE; // 2^63 as an unsigned ring position
  private static final Map<String, String> FAST_DOWN =
      TestCluster.liveness("3s", "1s");

  @TempDir Path tmp;

  /**
   * q2 owns the ring's upper half and moves it to q1: b1 waits in q2's backlog, b2 in its hold
   * buffer, b3 in q1's held queue. q2 dies, the half is forced to q1 and merged with q1's lower
   * half, so the range q2's hold buffer belongs to is gone when q2 returns.
   */
  @Test
  void aForcedRangeMergedWithItsNeighbourGetsItsLateMessages() throws Exception {
    String b = keyIn(true);
    try (QueueCluster c = QueueCluster.start(tmp, 2, FAST_DOWN, Map.of());
        Recorder got = new Recorder()) {
      c.layOut(2); // [0, 2^63) q1, [2^63, 2^64) q2
      long v = awaitBoth(c, c.map().version(), 0, 1);
      got.publish(c, 1, 1, b, v);
      long prepare = c.admin().move(HALF, "q1").getVersion();
      long sw = awaitSwitch(c, HALF, 0, 1);
      got.publish(c, 1, 2, b, prepare); // routed under PREPARE, arrives after SWITCH: held
      got.publish(c, 0, 3, b, sw);
      assertEquals(1, c.queue(1).store().held());
      assertEquals(1, c.queue(0).store().held());

      c.stopQueue(1);
      TestCluster.await(WAIT, "q2 DOWN and its range forced to q1", () -> {
        var m = c.map();
        RangeEntry r = m.rangeFor(HALF);
        return m.server("q2").state() == ServerState.DOWN && r.owner().equals("q1")
            && r.handover() == null;
      });
      c.admin().merge(0, HALF);
      assertEquals(1, c.map().ranges().size());
      got.subscribe(c, 0, "c1");
      c.startQueue(1);
      got.awaitAll(c, 2, 3);
      got.assertLate("b1", "b2");
    }
  }

  /**
   * q1 owns the ring and moves it to q2: a1, b1 wait in q1's backlog, a2, b2 in its hold buffer,
   * a3, b3 in q2's held queue. q1 dies, the ring is forced to q2, split at 2^63, and the upper
   * half moved on to q3, so q1's hold buffer belongs to two owners when q1 returns.
   */
  @Test
  void aForcedRangeSplitBetweenTwoOwnersGetsItsLateMessages() throws Exception {
    String a = keyIn(false);
    String b = keyIn(true);
    try (QueueCluster c = QueueCluster.start(tmp, 3, FAST_DOWN, Map.of());
        Recorder got = new Recorder()) {
      c.layOut(1); // q1 owns the ring
      long v = awaitBoth(c, c.map().version(), 0, 1);
      got.publish(c, 0, 1, a, v);
      got.publish(c, 0, 2, b, v);
      long prepare = c.admin().move(0, "q2").getVersion();
      long sw = awaitSwitch(c, 0, 0, 1);
      got.publish(c, 0, 3, a, prepare);
      got.publish(c, 0, 4, b, prepare);
      got.publish(c, 1, 5, a, sw);
      got.publish(c, 1, 6, b, sw);
      assertEquals(2, c.queue(0).store().held());

      c.stopQueue(0);
      TestCluster.await(WAIT, "q1 DOWN and the ring forced to q2", () -> {
        var m = c.map();
        return m.server("q1").state() == ServerState.DOWN && m.rangeFor(0).owner().equals("q2")
            && m.rangeFor(0).handover() == null;
      });
      got.subscribe(c, 1, "c2");
      got.subscribe(c, 2, "c3");
      c.admin().splitAtHash(0, HALF);
      c.admin().move(HALF, "q3");
      TestCluster.await(WAIT, "the upper half moved to q3", () -> {
        RangeEntry r = c.map().rangeFor(HALF);
        return r.owner().equals("q3") && r.handover() == null;
      });
      c.startQueue(0);
      got.awaitAll(c, 3, 6);
      got.assertLate("a1", "b2", "a3", "b4");
      got.assertDeliveredBy("q2", "a1", "a3", "a5", "b6"); // b6 before the upper half moved
      got.assertDeliveredBy("q3", "b2", "b4");
    }
  }

  /**
   * The split case with many keys and small late batches (5 messages): q1 holds 12 queued
   * messages and 12 in its hold buffer over six keys of each half, so its leftovers go out in
   * several batches per owner, each of one owner's keys.
   */
  @Test
  void manyLateMessagesGoOutInSmallBatchesToEachKeysOwner() throws Exception {
    List<String> keys = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      keys.add(keyIn(false, i));
      keys.add(keyIn(true, i));
    }
    try (QueueCluster c = QueueCluster.start(tmp, 3, FAST_DOWN, Map.of("lateBatch.messages", "5"));
        Recorder got = new Recorder()) {
      c.layOut(1);
      long v = awaitBoth(c, c.map().version(), 0, 1);
      long seq = 0;
      for (String k : keys) {
        got.publish(c, 0, ++seq, k, v);
      }
      long prepare = c.admin().move(0, "q2").getVersion();
      awaitSwitch(c, 0, 0, 1);
      for (String k : keys) {
        got.publish(c, 0, ++seq, k, prepare);
      }
      assertEquals(12, c.queue(0).store().held());
      c.stopQueue(0);
      TestCluster.await(WAIT, "q1 DOWN and the ring forced to q2", () -> {
        var m = c.map();
        return m.server("q1").state() == ServerState.DOWN && m.rangeFor(0).owner().equals("q2")
            && m.rangeFor(0).handover() == null;
      });
      got.subscribe(c, 1, "c2");
      got.subscribe(c, 2, "c3");
      c.admin().splitAtHash(0, HALF);
      c.admin().move(HALF, "q3");
      TestCluster.await(WAIT, "the upper half moved to q3", () -> {
        RangeEntry r = c.map().rangeFor(HALF);
        return r.owner().equals("q3") && r.handover() == null;
      });
      c.startQueue(0);
      got.awaitAll(c, 3, 24);
      assertEquals(24, got.all.stream().filter(Delivery::getLate).count());
      assertEquals(12, c.queue(1).agent().lateReceived());
      assertEquals(12, c.queue(2).agent().lateReceived());
    }
  }

  /**
   * The receiving side by hand: a late batch of keys of two owners is taken in part, the answer
   * naming what was not taken; the same batch again (its answer lost) is answered the same and
   * stores nothing; an older batch of the sender, arriving after a newer one was taken, stores
   * nothing; a batch of none of the receiver's keys is refused whole.
   */
  @Test
  void aLateBatchIsTakenInPartAndAResendStoresNothing() throws Exception {
    String a = keyIn(false);
    String b = keyIn(true);
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of());
        RawQueueClient q1 = new RawQueueClient(c.queue(0).address())) {
      c.layOut(2); // [0, 2^63) q1, [2^63, 2^64) q2
      long v = awaitBoth(c, c.map().version(), 0, 1);
      TransferHeldResponse r = q1.transfer(late(v, 1, a + ":1", b + ":2", a + ":3"));
      assertEquals(TransferOutcome.PARTLY_STORED, r.getOutcome(), r.toString());
      assertEquals(List.of(1), r.getNotTakenList());
      assertEquals(2, c.queue(0).store().queued());
      TransferHeldResponse again = q1.transfer(late(v, 1, a + ":1", b + ":2", a + ":3"));
      assertEquals(TransferOutcome.ALREADY_STORED, again.getOutcome(), again.toString());
      assertEquals(List.of(1), again.getNotTakenList());
      assertEquals(2, c.queue(0).store().queued(), "a resend stores nothing");

      assertEquals(TransferOutcome.STORED, q1.transfer(late(v, 2, a + ":4")).getOutcome());
      assertEquals(TransferOutcome.TRANSFER_REFUSED,
          q1.transfer(late(v, 1, a + ":1", b + ":2", a + ":3")).getOutcome());
      assertEquals(TransferOutcome.TRANSFER_REFUSED,
          q1.transfer(late(v, 3, b + ":5")).getOutcome(), "none of q1's keys");
      assertEquals(3, c.queue(0).store().queued());
      assertEquals(3, c.queue(0).agent().lateReceived());
      assertEquals(0, c.queue(1).store().queued());
    }
  }

  /**
   * Late messages count against {@code maxQueued}: a batch that would pass it is answered
   * RESOURCE_EXHAUSTED and nothing of it is stored; one that fits is taken.
   */
  @Test
  void aLateBatchBeyondMaxQueuedIsExhaustedAndStoresNothing() throws Exception {
    String a = keyIn(false);
    try (QueueCluster c = QueueCluster.start(tmp, 1, Map.of(), Map.of("maxQueued", "2"));
        RawQueueClient q1 = new RawQueueClient(c.queue(0).address())) {
      c.layOut(1);
      long v = awaitBoth(c, c.map().version(), 0);
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
          () -> q1.transfer(late(v, 1, a + ":1", a + ":2", a + ":3")));
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("maxQueued"), e.getMessage());
      assertEquals(0, c.queue(0).store().queued());
      assertEquals(TransferOutcome.STORED,
          q1.transfer(late(v, 1, a + ":1", a + ":2")).getOutcome());
      assertEquals(2, c.queue(0).store().queued());
    }
  }

  /** A late batch from "q9" (session 1) of messages "key:seq" from producer "p". */
  private static TransferHeldRequest late(long version, long batch, String... messages) {
    TransferHeldRequest.Builder req = TransferHeldRequest.newBuilder().setFromServer("q9")
        .setDirection(TransferDirection.LATE).setMapVersion(version).setLateSession(1)
        .setLateBatch(batch);
    for (String m : messages) {
      String[] kv = m.split(":");
      req.addMessages(StoredMessage.newBuilder().setKey(ByteString.copyFromUtf8(kv[0]))
          .setPayload(ByteString.copyFromUtf8(m)).setProducer("p")
          .setSeq(Long.parseLong(kv[1])));
    }
    return req.build();
  }

  /** A key whose hash lies in the upper half of the ring ({@code upper}) or the lower. */
  private static String keyIn(boolean upper) {
    return keyIn(upper, 0);
  }

  /** The {@code n}-th such key (from 0). */
  private static String keyIn(boolean upper, int n) {
    String prefix = upper ? "b" : "a";
    for (int i = 0; ; i++) {
      String k = prefix + i;
      if (KeyHash.hash(k.getBytes(StandardCharsets.UTF_8)) < 0 == upper && n-- == 0) {
        return k;
      }
    }
  }

  /** Waits until the queue servers reached {@code version}; returns it. */
  private static long awaitBoth(QueueCluster c, long version, int... queues) {
    for (int q : queues) {
      TestCluster.await(WAIT, "q" + (q + 1) + " at version " + version,
          () -> c.queue(q).agent().version() >= version);
    }
    return version;
  }

  /** Waits for the move of the range at {@code start} to be in SWITCH at both servers. */
  private static long awaitSwitch(QueueCluster c, long start, int... queues) {
    TestCluster.await(WAIT, "SWITCH", () -> {
      RangeEntry r = c.map().rangeFor(start);
      return r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH;
    });
    return awaitBoth(c, c.map().version(), queues);
  }

  /**
   * Publishes and records for the history checker; subscribes acknowledging consumers. Payloads
   * are the key's letter and the message's seq ("a1", "b2", ...).
   */
  private static final class Recorder implements AutoCloseable {
    final History history = new History();
    final List<Delivery> all = new CopyOnWriteArrayList<>();
    final Map<String, String> deliveredBy = new HashMap<>();
    final List<RawQueueClient> clients = new ArrayList<>();

    void publish(QueueCluster c, int queue, long seq, String key, long tag) throws Exception {
      try (RawQueueClient q = new RawQueueClient(c.queue(queue).address())) {
        history.publishSent("p", seq, key);
        assertEquals(PublishStatus.ACCEPTED,
            q.publish("p", seq, key, key.charAt(0) + "" + seq, tag).getStatus());
        history.publishAcked("p", seq);
      }
    }

    void subscribe(QueueCluster c, int queue, String name) {
      RawQueueClient q = new RawQueueClient(c.queue(queue).address());
      clients.add(q);
      String server = "q" + (queue + 1);
      q.subscribe(name, d -> {
        history.delivered(name, d.getProducer(), d.getSeq(),
            d.getKey().toString(StandardCharsets.UTF_8), d.getRedelivered(), d.getLate());
        deliveredBy.put(payload(d), server);
        all.add(d);
      });
    }

    /** Waits for n deliveries and the first {@code servers} servers empty; asks the checker. */
    void awaitAll(QueueCluster c, int servers, int n) {
      TestCluster.await(WAIT, n + " deliveries", () -> all.size() >= n);
      TestCluster.await(WAIT, "every queue server empty", () -> {
        for (int i = 0; i < servers; i++) {
          if (c.queue(i).store().queued() + c.queue(i).store().held() > 0) {
            return false;
          }
        }
        return true;
      });
      HistoryChecker.Verdict v = HistoryChecker.check(history);
      System.out.println(v);
      assertTrue(v.ok(), v.toString());
      assertEquals(0, v.lost(), v.toString());
      assertEquals(0, v.duplicates(), v.toString());
      assertEquals(0, v.reorderedKeys(), v.toString());
      assertEquals(n, all.size(), "nothing delivered twice");
    }

    void assertLate(String... payloads) {
      List<String> late = new ArrayList<>();
      for (Delivery d : all) {
        if (d.getLate()) {
          late.add(payload(d));
        }
      }
      late.sort(null);
      List<String> expected = new ArrayList<>(List.of(payloads));
      expected.sort(null);
      assertEquals(expected, late);
    }

    void assertDeliveredBy(String server, String... payloads) {
      for (String p : payloads) {
        assertEquals(server, deliveredBy.get(p), p + " delivered by");
      }
    }

    private static String payload(Delivery d) {
      return d.getPayload().toString(StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
      clients.forEach(RawQueueClient::close);
    }
  }
}
