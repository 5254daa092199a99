package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * Handover transfers and late hand-offs larger than a queue server's heap (docs/design.md §5
 * "Chunked transfers"). The queue servers are processes of their own with a heap of
 * {@code -Dplb.transfer.heap} (256m) that exit on OutOfMemoryError, so a server that reads a
 * whole buffer or backlog into memory dies and the test sees it. Payloads are 512 KiB: few
 * messages, many bytes.
 *
 * <p>The amount moved is {@code -Dplb.transfer.mib} (default 320: more than the heap, and past
 * the 256 MiB a queue server takes in one request, which a single-request transfer needed;
 * {@code -Dplb.transfer.mib=1024 -Dplb.transfer.heap=512m} for the figures in bench/RESULTS.md
 * §4.2). Each case ends with the history checker: nothing lost, no key reordered.
 */
class LargeTransferTest {
  private static final Duration WAIT = Duration.ofSeconds(300);
  private static final int PAYLOAD = 512 << 10;
  private static final long MIB = Long.getLong("plb.transfer.mib", 320);
  private static final int COUNT = (int) (MIB * (1 << 20) / PAYLOAD);
  private static final int KEYS = 8;
  /** The servers' heap: less than what moves ({@code -Dplb.transfer.heap}, default 256m). */
  private static final String HEAP = System.getProperty("plb.transfer.heap", "256m");
  private static final List<String> JVM = List.of("-Xmx" + HEAP, "-XX:+ExitOnOutOfMemoryError");
  private static final String PAYLOAD_TEXT = "x".repeat(PAYLOAD);
  /** As TestCluster.liveness expects of queue servers: heartbeats well within the lease. */
  private static final Map<String, String> QUEUE = Map.of("heartbeatInterval", "200ms",
      "resendInterval", "200ms");

  private static Map<String, String> withQueue(String key, String value) {
    Map<String, String> m = new HashMap<>(QUEUE);
    m.put(key, value);
    return m;
  }

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp; // the servers' logs stay when it fails
  private final List<AutoCloseable> closeLater = new ArrayList<>();

  @AfterEach
  void closeClients() throws Exception {
    for (AutoCloseable c : closeLater) {
      c.close();
    }
  }

  /**
   * A handover aborted from SWITCH while its target holds {@code plb.transfer.mib} of
   * acknowledged messages: the target hands them back in chunks, the source releases its hold
   * buffer, the handback and what arrived after the abort in steps, and every message is
   * delivered in order. Before chunking the target read everything into one request and died
   * of OutOfMemoryError (or the source refused the request), and the range stayed in
   * ABORT_SWITCH.
   */
  @Test
  void anAbortFromSwitchHandsBackMoreThanTheHeap() throws Exception {
    History history = new History();
    Map<String, String> plbSettings = new HashMap<>(TestCluster.liveness("20s", "2s"));
    plbSettings.put("handover.drainTimeout", "10m"); // the test aborts by hand
    plbSettings.put("handover.abortSwitchTimeout", "10m");
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3, plbSettings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 2,
            QUEUE, false, JVM);
        RawQueueClient q1 = new RawQueueClient(queues.address(0));
        RawQueueClient q2 = new RawQueueClient(queues.address(1))) {
      long v1 = layOut(plb, admin, queues);
      // One message of the range out with a consumer keeps the source from draining: SWITCH
      // stays open until the abort.
      publish(history, q1, 1, 1, v1);
      List<Delivery> held = new CopyOnWriteArrayList<>();
      RawQueueClient.Holding holder = q1.hold("holder", 1, d -> record(history, "holder", d,
          held));
      TestCluster.await(WAIT, "the holder takes k#1", () -> held.size() == 1);
      admin.move(0, "q2");
      TestCluster.await(WAIT, "SWITCH", () -> phase(admin) == HandoverPhase.SWITCH);
      long vs = admin.getMap(0).version();
      TestCluster.await(WAIT, "q2 at SWITCH", () -> q2.status().getMapVersion() >= vs);
      long t0 = System.nanoTime();
      publish(history, q2, 2, COUNT, vs);
      long published = System.nanoTime();
      assertEquals(COUNT, q2.status().getHeld(), "q2 holds everything routed to it");
      admin.abortHandover(0, "test");
      TestCluster.await(WAIT, "the reversal finished and the handover is cleared", () -> {
        assertAlive(queues);
        RangeEntry r = admin.getMap(0).rangeFor(0);
        return r.handover() == null;
      });
      long reversed = System.nanoTime();
      assertEquals("q1", admin.getMap(0).rangeFor(0).owner());
      holder.close(); // k#1 goes out again, marked redelivered
      AtomicLong got = new AtomicLong();
      q1.subscribe("c1", 4, d -> {
        record(history, "c1", d, null);
        got.incrementAndGet();
      });
      TestCluster.await(WAIT, "every message delivered by q1", () -> {
        assertAlive(queues);
        return got.get() >= COUNT + 1;
      });
      long drained = System.nanoTime();
      System.out.printf("abort from SWITCH, %d MiB held (%d x %d KiB): publish %.1f s, "
          + "abort to cleared %.1f s, delivery %.1f s%n", MIB, COUNT, PAYLOAD >> 10,
          seconds(published - t0), seconds(reversed - published), seconds(drained - reversed));
      assertEquals(0, q2.status().getHeld() + q2.status().getQueued(), "q2 kept nothing");
      check(history, 0);
    }
  }

  /**
   * A queue server killed with {@code plb.transfer.mib} queued is declared DOWN and its range
   * forced away; when it returns it hands its backlog to the new owner as late messages, batch
   * by batch, reading no more than a batch. Before, the late sender read up to lateBatch.messages
   * (1,000) whole messages per batch — the whole backlog here, more than the heap — and the
   * returning server died of OutOfMemoryError.
   */
  @Test
  void aReturningServerHandsOnABacklogLargerThanItsHeap() throws Exception {
    History history = new History();
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3,
            TestCluster.liveness("4s", "2s"));
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 2,
            QUEUE, false, JVM);
        RawQueueClient q1 = new RawQueueClient(queues.address(0));
        RawQueueClient q2 = new RawQueueClient(queues.address(1))) {
      long v1 = layOut(plb, admin, queues);
      publish(history, q1, 1, COUNT, v1);
      queues.kill(0);
      TestCluster.await(WAIT, "q1 DOWN and the ring forced to q2", () -> {
        var m = admin.getMap(0);
        return m.server("q1").state() == ServerState.DOWN && m.rangeFor(0).owner().equals("q2");
      });
      AtomicLong got = new AtomicLong();
      q2.subscribe("c2", 4, d -> {
        record(history, "c2", d, null);
        got.incrementAndGet();
      });
      long t0 = System.nanoTime();
      queues.start(0);
      TestCluster.await(WAIT, "q1's backlog delivered by q2 as late messages", () -> {
        assertTrue(queues.isAlive(0), "q1 died; see " + queues.log(0));
        return got.get() >= COUNT;
      });
      long done = System.nanoTime();
      TestCluster.await(WAIT, "q1 kept nothing",
          () -> q1.status().getQueued() + q1.status().getHeld() == 0);
      System.out.printf("late hand-off of a %d MiB backlog (%d x %d KiB): restart to all "
          + "delivered %.1f s%n", MIB, COUNT, PAYLOAD >> 10, seconds(done - t0));
      check(history, COUNT);
    }
  }

  /** The sender (the source) is killed with SIGKILL in the middle of a forward transfer. */
  @Test
  void aForwardTransferResumesAfterTheSenderIsKilled() throws Exception {
    killMidTransfer(0);
  }

  /** The receiver (the target) is killed with SIGKILL in the middle of a forward transfer. */
  @Test
  void aForwardTransferResumesAfterTheReceiverIsKilled() throws Exception {
    killMidTransfer(1);
  }

  /**
   * A source's hold buffer of {@code plb.transfer.mib} goes to the target one message a chunk
   * (transfer.chunkBytes at its minimum); server {@code victim} is killed with SIGKILL once the
   * target has stored part of it and started again at once (back before it could be declared
   * DOWN). The transfer resumes after the last chunk the target stored — a restarted source
   * sends less than the whole buffer — the handover completes, and the target delivers the hold
   * buffer once, in order. Before chunking the whole buffer went in one request, which the
   * target refused as too large: nothing was ever stored.
   */
  private void killMidTransfer(int victim) throws Exception {
    History history = new History();
    Map<String, String> plbSettings = new HashMap<>(TestCluster.liveness("20s", "2s"));
    plbSettings.put("handover.drainTimeout", "10m");
    plbSettings.put("handover.abortSwitchTimeout", "10m");
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3, plbSettings);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 2,
            withQueue("transfer.chunkBytes", "65536"), false, JVM);
        RawQueueClient q1 = new RawQueueClient(queues.address(0));
        RawQueueClient q2 = new RawQueueClient(queues.address(1))) {
      long v1 = layOut(plb, admin, queues);
      publish(history, q1, 1, 1, v1);
      List<Delivery> held = new CopyOnWriteArrayList<>();
      RawQueueClient.Holding holder = q1.hold("holder", 1, d -> record(history, "holder", d,
          held));
      TestCluster.await(WAIT, "the holder takes k#1", () -> held.size() == 1);
      admin.move(0, "q2");
      TestCluster.await(WAIT, "SWITCH", () -> phase(admin) == HandoverPhase.SWITCH);
      long vs = admin.getMap(0).version();
      TestCluster.await(WAIT, "q1 at SWITCH", () -> q1.status().getMapVersion() >= vs);
      // Routed under the map before SWITCH and arriving after it: the source's hold buffer.
      publish(history, q1, 2, COUNT, v1);
      assertEquals(COUNT, q1.status().getHeld(), "q1 holds them for the target");
      holder.ack(held.get(0).getDeliveryId()); // the backlog drains: seal and transfer
      TestCluster.await(WAIT, "q2 has stored part of the transfer", () -> {
        assertAlive(queues);
        return q2.status().getHeld() >= 16;
      });
      long partAtKill = q2.status().getHeld();
      queues.kill(victim);
      assertTrue(partAtKill < COUNT, "killed in the middle: " + partAtKill + " of " + COUNT);
      queues.start(victim);
      TestCluster.await(WAIT, "the handover completes", () -> {
        assertAlive(queues);
        RangeEntry r = admin.getMap(0).rangeFor(0);
        return r.handover() == null && r.owner().equals("q2");
      });
      AtomicLong got = new AtomicLong();
      RawQueueClient consumer = new RawQueueClient(queues.address(1)); // q2 may have restarted
      closeLater.add(consumer);
      consumer.subscribe("c2", 4, d -> {
        record(history, "c2", d, null);
        got.incrementAndGet();
      });
      try {
        TestCluster.await(WAIT, "the hold buffer delivered by q2", () -> {
          assertAlive(queues);
          return got.get() >= COUNT;
        });
      } catch (AssertionError e) {
        throw new AssertionError(e.getMessage() + ": " + got.get() + " of " + COUNT
            + " delivered; q2: " + consumer.status(), e);
      }
      String log = Files.readString(queues.log(0));
      Matcher sent = Pattern.compile("FORWARD transfer of range \\S+ stored by q2 \\((\\d+) "
          + "chunk\\(s\\); (\\d+) message\\(s\\) sent in this run\\)").matcher(log);
      assertTrue(sent.find(), "q1 logged the transfer's end");
      long chunks = Long.parseLong(sent.group(1));
      long sentInRun = Long.parseLong(sent.group(2));
      System.out.printf("forward transfer of %d MiB, %s killed with %d of %d stored: "
          + "%d chunks, %d messages sent by the run that finished it%n", MIB,
          queues.id(victim), partAtKill, COUNT, chunks, sentInRun);
      assertTrue(sentInRun < COUNT, "the transfer resumed, it did not start over: "
          + sentInRun + " of " + COUNT + " sent again");
      assertEquals(0, q2.status().getHeld(), "nothing left in q2's buffers");
      check(history, 0);
    }
  }

  // ------------------------------------------------------------------ helpers

  /** Waits for q1 and q2 and gives q1 the whole ring; returns that map version. */
  private static long layOut(TestCluster plb, PlbAdminClient admin, QueueProcesses queues)
      throws Exception {
    plb.awaitLeader(WAIT);
    queues.awaitServing(0, WAIT);
    queues.awaitServing(1, WAIT);
    TestCluster.await(WAIT, "q1 and q2 registered",
        () -> admin.getMap(0).servers().keySet().containsAll(List.of("q1", "q2")));
    admin.assign(0, "q1", false);
    long v = admin.getMap(0).version();
    try (RawQueueClient q1 = new RawQueueClient(queues.address(0))) {
      TestCluster.await(WAIT, "q1 at the layout", () -> q1.status().getMapVersion() >= v
          && q1.status().getLeaseHeld());
    }
    return v;
  }

  /** Publishes seq {@code from .. from+count-1} of producer p, keys round-robin, 8 a request. */
  private static void publish(History history, RawQueueClient q, long from, int count, long tag)
      throws Exception {
    for (long seq = from; seq < from + count; ) {
      List<PublishItem> batch = new ArrayList<>();
      for (; batch.size() < 8 && seq < from + count; seq++) {
        String key = "k" + (seq % KEYS);
        history.publishSent("p", seq, key);
        batch.add(RawQueueClient.item(seq, key, PAYLOAD_TEXT, tag));
      }
      while (!batch.isEmpty()) {
        List<PublishResult> results = q.publishBatch("p", batch);
        int i = 0;
        for (; i < batch.size() && results.get(i).getStatus() == PublishStatus.ACCEPTED; i++) {
          history.publishAcked("p", batch.get(i).getSeq());
        }
        if (i < batch.size()) {
          // A lease that ran out under load answers OVERLOADED; a router sends the rest again,
          // in order, once the server serves again.
          assertEquals(PublishStatus.OVERLOADED, results.get(i).getStatus(),
              "seq " + batch.get(i).getSeq() + ": " + results.get(i));
          TestCluster.await(WAIT, "the server holds its lease again",
              () -> q.status().getLeaseHeld());
        }
        batch = new ArrayList<>(batch.subList(i, batch.size()));
      }
    }
  }

  private static void record(History history, String consumer, Delivery d, List<Delivery> to) {
    history.delivered(consumer, d.getProducer(), d.getSeq(), d.getKey().toByteArray(),
        d.getRedelivered(), d.getLate());
    if (to != null) {
      to.add(d);
    }
  }

  private static HandoverPhase phase(PlbAdminClient admin) {
    RangeEntry r = admin.getMap(0).rangeFor(0);
    return r.handover() == null ? null : r.handover().phase();
  }

  private static void assertAlive(QueueProcesses queues) {
    for (int i = 0; i < 2; i++) {
      assertTrue(queues.isAlive(i), queues.id(i) + " died; see " + queues.log(i));
    }
  }

  private static void check(History history, long late) {
    HistoryChecker.Verdict verdict = HistoryChecker.check(history);
    System.out.println(verdict);
    assertTrue(verdict.ok(), verdict.toString());
    assertEquals(0, verdict.lost(), verdict.toString());
    assertEquals(0, verdict.reorderedKeys(), verdict.toString());
    assertEquals(late, verdict.late(), verdict.toString());
  }

  private static double seconds(long nanos) {
    return nanos / 1e9;
  }
}
