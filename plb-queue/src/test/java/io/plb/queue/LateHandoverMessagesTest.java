package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.admin.PlbAdminClient.Report;
import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.handover.Participant;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.HandoverReportResponse;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferHeldResponse;
import io.plb.proto.v1.TransferOutcome;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.queue.testing.Staging;
import io.plb.server.PlbNode;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Handover reports ({@code HandoverReady}, {@code HandoverDrained}, {@code AbortReversed}) and
 * transfers ({@code TransferHeld}) sent again by hand over gRPC, as a lost answer, a resend timer
 * or a slow link would deliver them: duplicated while their handover is open, late after it
 * ended, and naming a handover of the range that is over (an earlier epoch). Each is recognised —
 * the leader answers "ignored" without a log entry, a queue server answers ALREADY_STORED or
 * TRANSFER_REFUSED — and changes nothing: the map version and the Raft log stay where they were,
 * no message is stored twice, none is delivered twice.
 *
 * <p>Transfers are duplicated while their handover is held open on purpose: with two of the three
 * PLB nodes stopped the map cannot move, so the source's drained report (or the reversal's) waits
 * for a quorum while the transfer it followed is already stored.
 *
 * <p>All messages come from producer "p" on key "k" (Staging: m1..m3 in the source's queue, m4 in
 * its hold buffer, m5 in the target's held queue).
 */
class LateHandoverMessagesTest {
  private static final Duration WAIT = Duration.ofSeconds(60);

  @TempDir Path tmp;

  @Test
  void duplicatedAndLateReportsAreIgnoredAndChangeNothing() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      Deliveries got = new Deliveries();
      Staging.switchWithHoldBuffer(c);
      PlbAdminClient admin = c.admin();
      RangeEntry r = c.map().rangeFor(0);
      long he = r.epoch() + 1;
      assertTrue(he >= 2, "a handover before this one to be late about");

      // While the handover is in SWITCH.
      long v = c.map().version();
      long applied = applied(c);
      assertIgnored(v, admin.report(Report.READY, "q2", 0, he)); // duplicate
      assertIgnored(v, admin.report(Report.READY, "q2", 0, he - 1)); // an earlier handover
      assertIgnored(v, admin.report(Report.DRAINED, "q1", 0, he - 1));
      assertIgnored(v, admin.report(Report.REVERSED, "q1", 0, he)); // not being reversed
      // Not late but wrong: an epoch the range never reached, a step that is not the reporter's.
      assertThrows(PlbClientException.FailedPrecondition.class,
          () -> admin.report(Report.DRAINED, "q1", 0, he + 1));
      assertThrows(PlbClientException.FailedPrecondition.class,
          () -> admin.report(Report.DRAINED, "q2", 0, he));
      assertEquals(v, c.map().version());
      assertEquals(applied, applied(c), "no log entry for a report the leader ignores");
      assertEquals(HandoverPhase.SWITCH, c.map().rangeFor(0).handover().phase());

      // Let it complete, then repeat every report of it.
      RawQueueClient q1 = got.subscribe(c, 0, "c1");
      RawQueueClient q2 = got.subscribe(c, 1, "c2");
      awaitOwner(c, "q2", he);
      got.await(5);
      long v2 = c.map().version();
      long applied2 = applied(c);
      assertIgnored(v2, admin.report(Report.READY, "q2", 0, he));
      assertIgnored(v2, admin.report(Report.DRAINED, "q1", 0, he));
      assertIgnored(v2, admin.report(Report.REVERSED, "q1", 0, he));
      assertEquals(v2, c.map().version());
      assertEquals(applied2, applied(c));

      // An aborted attempt, then the next attempt on the same range: the aborted one's reports,
      // arriving now, must not be taken for the next one's (the epoch bump on clearing).
      q2.close(); // q2's next message stays in its backlog: with the holder below
      RawQueueClient holderClient = new RawQueueClient(c.queue(1).address());
      List<Delivery> heldOut = new CopyOnWriteArrayList<>();
      AutoCloseable holder = holderClient.hold("holder", 1, d -> {
        got.record("holder", d);
        heldOut.add(d);
      });
      try (RawQueueClient p = new RawQueueClient(c.queue(1).address())) {
        got.sent(6);
        p.publish("p", 6, "k", "m6", c.map().version());
        got.acked(6);
      }
      TestCluster.await(WAIT, "the holder takes m6", () -> heldOut.size() == 1);
      long heA = he + 1;
      admin.move(0, "q1");
      awaitPhase(c, HandoverPhase.SWITCH);
      admin.abortHandover(0, "an attempt to be late about");
      awaitOwner(c, "q2", heA); // reversed and cleared: owner stays, epoch bumped
      long heB = heA + 1;
      admin.move(0, "q1");
      awaitPhase(c, HandoverPhase.SWITCH);
      assertEquals(heB, c.map().rangeFor(0).epoch() + 1);
      long v3 = c.map().version();
      long applied3 = applied(c);
      assertIgnored(v3, admin.report(Report.DRAINED, "q2", 0, heA));
      assertIgnored(v3, admin.report(Report.REVERSED, "q2", 0, heA));
      assertIgnored(v3, admin.report(Report.READY, "q1", 0, heA));
      assertEquals(v3, c.map().version());
      assertEquals(applied3, applied(c));
      assertEquals(HandoverPhase.SWITCH, c.map().rangeFor(0).handover().phase(),
          "attempt B is untouched by attempt A's reports");

      // Attempt B completes once m6 is acknowledged.
      holder.close();
      holderClient.close();
      q2 = got.subscribe(c, 1, "c2b");
      awaitOwner(c, "q1", heB);
      got.await(7); // m1..m6, m6 twice: first to the holder, again marked redelivered
      got.assertDeliveredOnce(c, List.of("m1", "m2", "m3", "m4", "m5", "m6"));
      q1.close();
      q2.close();
    }
  }

  /**
   * The same report sent many times at once — an agent's resend timer firing while its first
   * report is still being committed — makes one log entry: repeats that arrive while it is in
   * flight share its outcome, repeats after it are ignored.
   */
  @Test
  void aReportRepeatedWhileBeingCommittedMakesOneLogEntry() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      c.layOut(1);
      c.stopQueue(1); // the target is away: only the reports sent here move the handover on
      long he = c.map().rangeFor(0).epoch() + 1;
      c.admin().move(0, "q2");
      awaitPhase(c, HandoverPhase.PREPARE);
      TestCluster.await(WAIT, "every node at PREPARE", () -> applied(c) == minApplied(c));
      long applied = applied(c);
      int n = 8;
      ExecutorService pool = Executors.newFixedThreadPool(n);
      try {
        CountDownLatch go = new CountDownLatch(1);
        List<Future<HandoverReportResponse>> answers = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          answers.add(pool.submit(() -> {
            go.await();
            return c.admin().report(Report.READY, "q2", 0, he);
          }));
        }
        go.countDown();
        long version = -1;
        for (Future<HandoverReportResponse> f : answers) {
          HandoverReportResponse r = f.get(60, TimeUnit.SECONDS);
          version = version < 0 ? r.getVersion() : version;
          assertEquals(version, r.getVersion(), "every repeat answered with one version: " + r);
        }
        assertEquals(HandoverPhase.SWITCH, c.map().rangeFor(0).handover().phase());
        assertEquals(version, c.map().version());
        long switched = version;
        TestCluster.await(WAIT, "every node applied it", () -> minApplied(c) >= switched);
        assertEquals(applied + 1, applied(c), "one log entry for " + n + " copies of a report");
      } finally {
        pool.shutdownNow();
      }
    }
  }

  @Test
  void duplicatedAndStaleForwardTransfersAreRecognised() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      Deliveries got = new Deliveries();
      Staging.switchWithHoldBuffer(c);
      RangeEntry r = c.map().rangeFor(0);
      long he = r.epoch() + 1;
      long v = c.map().version();
      freezeMap(c);
      RawQueueClient c1 = got.subscribe(c, 0, "c1"); // m1..m3 acknowledged: q1 seals
      TestCluster.await(WAIT, "q2 stored q1's hold buffer as its prefix",
          () -> side(c, 1).prefixStored() && side(c, 0).bufferTransferred());
      assertEquals(HandoverPhase.SWITCH, c.map().rangeFor(0).handover().phase(),
          "the drained report waits for a quorum");
      long held2 = c.queue(1).store().held(); // prefix m4 and held m5
      assertEquals(2, held2);

      try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address());
          RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
        // The same transfer again (its acknowledgement lost): acknowledged, stored once.
        assertOutcome(TransferOutcome.ALREADY_STORED,
            q2.transfer(transfer("q1", he, TransferDirection.FORWARD, v, 4)));
        // One of an earlier handover of the range, and of one the range never reached.
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q2.transfer(transfer("q1", he - 1, TransferDirection.FORWARD, v, 4)));
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q2.transfer(transfer("q1", he + 1, TransferDirection.FORWARD, v, 4)));
        // A handback to a source whose handover was never aborted; a forward to the source.
        long queued1 = c.queue(0).store().queued() + c.queue(0).store().held();
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q1.transfer(transfer("q2", he, TransferDirection.REVERSE, v, 5)));
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q1.transfer(transfer("q2", he, TransferDirection.FORWARD, v, 5)));
        assertEquals(held2, c.queue(1).store().held());
        assertEquals(0, c.queue(1).store().queued());
        assertEquals(queued1, c.queue(0).store().queued() + c.queue(0).store().held());

        thawMap(c);
        awaitOwner(c, "q2", he);
        RawQueueClient c2 = got.subscribe(c, 1, "c2");
        got.await(5);
        long v2 = c.map().version();
        // The forward transfer once more, after COMPLETE; and late messages sent to a server
        // that no longer owns the range.
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q2.transfer(transfer("q1", he, TransferDirection.FORWARD, v2, 4)));
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q1.transfer(transfer("q2", he, TransferDirection.LATE, v2, 5)));
        assertEquals(v2, c.map().version());
        got.assertDeliveredOnce(c, List.of("m1", "m2", "m3", "m4", "m5"));
        c1.close();
        c2.close();
      }
    }
  }

  @Test
  void aDuplicatedHandbackIsAcknowledgedAndStoredOnce() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      Deliveries got = new Deliveries();
      Staging.switchWithHoldBuffer(c);
      long he = c.map().rangeFor(0).epoch() + 1;
      int port2 = c.queue(1).port();
      c.stopQueue(1); // the target cannot hand back yet
      long abort = c.admin().abortHandover(0, "reversed while the target is away");
      TestCluster.await(WAIT, "q1 in ABORT_SWITCH", () -> c.queue(0).agent().version() >= abort);
      freezeMap(c);
      // q2 returns on its address (registered there; no quorum to register again) and hands
      // back m5; q1 releases m4, m5 behind m1..m3 and reports the reversal, which waits.
      c.startQueue(1, port2, Map.of("register", "false"));
      TestCluster.await(WAIT, "q1 took the handback and q2 let go of it",
          () -> side(c, 0).returned() && c.queue(1).store().held() == 0);
      assertEquals(5, c.queue(0).store().queued());
      assertEquals(HandoverPhase.ABORT_SWITCH, c.map().rangeFor(0).handover().phase());

      try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address())) {
        assertOutcome(TransferOutcome.ALREADY_STORED,
            q1.transfer(transfer("q2", he, TransferDirection.REVERSE, abort, 5)));
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q1.transfer(transfer("q2", he - 1, TransferDirection.REVERSE, abort, 5)));
        assertEquals(5, c.queue(0).store().queued(), "the handback is not stored twice");
        assertEquals(0, c.queue(0).store().held());

        thawMap(c);
        awaitOwner(c, "q1", he); // cleared: owner stays, epoch bumped
        RawQueueClient c1 = got.subscribe(c, 0, "c1");
        got.await(5);
        assertOutcome(TransferOutcome.TRANSFER_REFUSED,
            q1.transfer(transfer("q2", he, TransferDirection.REVERSE, c.map().version(), 5)));
        got.assertDeliveredOnce(c, List.of("m1", "m2", "m3", "m4", "m5"));
        c1.close();
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Stops two of the three PLB nodes: no quorum, so no report can change the map. */
  private static void freezeMap(QueueCluster c) {
    c.plb().stopNode(1);
    c.plb().stopNode(2);
  }

  private static void thawMap(QueueCluster c) throws Exception {
    c.plb().startNode(1);
    c.plb().startNode(2);
    c.plb().awaitLeader(WAIT);
  }

  /** The highest Raft index any running node has applied (rejected entries count too). */
  private static long applied(QueueCluster c) {
    long max = 0;
    for (int i = 0; i < c.plb().size(); i++) {
      PlbNode n = c.plb().node(i);
      if (n != null) {
        max = Math.max(max, n.publisher().appliedIndex());
      }
    }
    return max;
  }

  /** The lowest Raft index the running nodes have applied. */
  private static long minApplied(QueueCluster c) {
    long min = Long.MAX_VALUE;
    for (int i = 0; i < c.plb().size(); i++) {
      PlbNode n = c.plb().node(i);
      if (n != null) {
        min = Math.min(min, n.publisher().appliedIndex());
      }
    }
    return min;
  }

  private static Participant.Side side(QueueCluster c, int queue) {
    List<Participant.Side> sides = c.queue(queue).agent().sides();
    assertEquals(1, sides.size(), "one open handover side on q" + (queue + 1));
    return sides.get(0);
  }

  private static void assertIgnored(long version, HandoverReportResponse r) {
    assertTrue(r.getIgnored(), "ignored: " + r);
    assertEquals(version, r.getVersion(), r.toString());
  }

  private static void assertOutcome(TransferOutcome expected, TransferHeldResponse r) {
    assertEquals(expected, r.getOutcome(), r.toString());
  }

  private static void awaitOwner(QueueCluster c, String owner, long epoch) {
    TestCluster.await(WAIT, owner + " owns the range at epoch " + epoch, () -> {
      RangeEntry r = c.map().rangeFor(0);
      return r.handover() == null && r.owner().equals(owner) && r.epoch() == epoch;
    });
  }

  private static void awaitPhase(QueueCluster c, HandoverPhase phase) {
    TestCluster.await(WAIT, "phase " + phase, () -> {
      RangeEntry r = c.map().rangeFor(0);
      return r.handover() != null && r.handover().phase() == phase;
    });
  }

  /** A transfer as a peer's agent sends it, carrying staged message {@code seq}. */
  private static TransferHeldRequest transfer(String from, long he, TransferDirection dir,
      long version, long seq) {
    return TransferHeldRequest.newBuilder().setFromServer(from).setRangeStart(0).setRangeEnd(0)
        .setHandoverEpoch(he).setDirection(dir).setMapVersion(version)
        .setLateSession(dir == TransferDirection.LATE ? 1 : 0).setLateBatch(seq)
        .addMessages(StoredMessage.newBuilder().setKey(ByteString.copyFromUtf8("k"))
            .setPayload(ByteString.copyFromUtf8("m" + seq)).setProducer("p").setSeq(seq))
        .build();
  }

  /** Deliveries of the staged messages, recorded for the history checker. */
  private static final class Deliveries {
    final History history = new History();
    final List<Delivery> all = new CopyOnWriteArrayList<>();

    Deliveries() {
      for (int i = 1; i <= 5; i++) { // Staging's m1..m5 were all acknowledged
        sent(i);
        acked(i);
      }
    }

    void sent(long seq) {
      history.publishSent("p", seq, "k");
    }

    void acked(long seq) {
      history.publishAcked("p", seq);
    }

    void record(String consumer, Delivery d) {
      history.delivered(consumer, d.getProducer(), d.getSeq(),
          d.getKey().toString(StandardCharsets.UTF_8), d.getRedelivered(), d.getLate());
      all.add(d);
    }

    /** An acknowledging consumer of queue server {@code queue}; close the client to end it. */
    RawQueueClient subscribe(QueueCluster c, int queue, String name) {
      RawQueueClient q = new RawQueueClient(c.queue(queue).address());
      q.subscribe(name, d -> record(name, d));
      return q;
    }

    void await(int n) {
      TestCluster.await(WAIT, n + " deliveries", () -> all.size() >= n);
    }

    /**
     * Every message delivered, in order, none twice unless marked redelivered; and no server
     * holds anything more to deliver.
     */
    void assertDeliveredOnce(QueueCluster c, List<String> payloads) {
      TestCluster.await(WAIT, "both servers empty", () -> {
        for (int i = 0; i < 2; i++) {
          if (c.queue(i).store().queued() + c.queue(i).store().held() > 0) {
            return false;
          }
        }
        return true;
      });
      List<String> first = new ArrayList<>();
      for (Delivery d : all) {
        String p = d.getPayload().toString(StandardCharsets.UTF_8);
        if (!first.contains(p)) {
          first.add(p);
        }
      }
      assertEquals(payloads, first);
      HistoryChecker.Verdict v = HistoryChecker.check(history);
      System.out.println(v);
      assertTrue(v.ok(), v.toString());
      assertEquals(0, v.lost(), v.toString());
      assertEquals(0, v.reorderedKeys(), v.toString());
      assertEquals(0, v.unexplainedDuplicates(), v.toString());
      assertEquals(payloads.size(), v.delivered() - v.duplicates(), v.toString());
    }
  }
}
