package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.plb.client.agent.HandoverStore.BufferedHandover;
import io.plb.client.agent.HandoverStore.Held;
import io.plb.client.agent.HandoverStore.Progress;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.keyspace.KeyHash;
import io.plb.proto.v1.StoredMessage;
import io.plb.queue.store.QueueStore;
import io.plb.queue.store.QueueStore.Placed;
import java.nio.file.Path;
import java.util.ArrayList;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What the store acknowledged survives a reopen: queue order, buffers, agent state. */
class QueueStoreDurabilityTest {
  @TempDir Path tmp;

  private static StoredMessage msg(String key, long seq) {
    return StoredMessage.newBuilder().setKey(ByteString.copyFromUtf8(key)).setProducer("p")
        .setSeq(seq).setPayload(ByteString.copyFromUtf8("m" + seq)).build();
  }

  @Test
  void queueBuffersAndStateSurviveReopen() throws Exception {
    Object consumer = new Object();
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(Placed.queue(msg("a", 1), 0), Placed.queue(msg("a", 2), 0),
          Placed.queue(msg("b", 3), 0),
          new Placed(msg("a", 4), 0, Buffer.HOLD, 0, 7)));
      var d = s.take(consumer, 10, h -> true); // heads of a and b
      assertEquals(2, d.size());
      s.ack(consumer, d.get(0).lsn(), d.get(0).message().getKey()); // a:1 acknowledged
      s.saveAgentState(new byte[] {1, 2, 3});
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      assertEquals(2, s.queued()); // a:2 and b:3 (b's delivery was never acknowledged)
      assertEquals(1, s.held(0, 7));
      assertEquals(3, s.loadAgentState().length);
      List<Long> seqs = new ArrayList<>();
      for (var d : s.take(consumer, 10, h -> true)) {
        seqs.add(d.message().getSeq());
      }
      assertEquals(List.of(2L, 3L), seqs.stream().sorted().toList());
      // the hold buffer released behind the queue keeps a's order: 2 then 4
      s.release(0, 7, List.of(Buffer.HOLD));
      assertEquals(0, s.held(0, 7));
      assertEquals(3, s.queued());
      assertEquals(3, s.backlog(0, 0));
    }
  }

  /**
   * A delivery whose acknowledgement never reached the store before it closed is delivered again
   * after the reopen marked redelivered, so a consumer (and the history checker) can tell the
   * repeat from a duplicate. Messages that arrive after the reopen are not marked.
   */
  @Test
  void anUnacknowledgedDeliveryIsMarkedRedeliveredAfterReopen() throws Exception {
    Object consumer = new Object();
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(Placed.queue(msg("a", 1), 0), Placed.queue(msg("a", 2), 0)));
      var d = s.take(consumer, 10, h -> true);
      assertEquals(1, d.size());
      assertEquals(false, d.get(0).redelivered());
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(Placed.queue(msg("c", 3), 0)));
      var d = s.take(consumer, 10, h -> true);
      assertEquals(2, d.size());
      assertEquals(1, d.get(0).message().getSeq());
      assertEquals(true, d.get(0).redelivered());
      assertEquals(3, d.get(1).message().getSeq());
      assertEquals(false, d.get(1).redelivered());
      s.ack(consumer, d.get(0).lsn(), d.get(0).message().getKey());
      var next = s.take(consumer, 10, h -> true);
      assertEquals(2, next.get(0).message().getSeq());
      assertEquals(false, next.get(0).redelivered());
    }
  }

  @Test
  void queuedMessagesOfARangeAreMarkedLateOnceAndStaySo() throws Exception {
    long ha = KeyHash.hash("a".getBytes(StandardCharsets.UTF_8));
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(Placed.queue(msg("a", 1), 0), Placed.queue(msg("a", 2), 0),
          Placed.queue(msg("b", 3), 0)));
      assertEquals(2, s.markQueuedLate(ha, ha + 1), "a's two messages, not b's");
      assertEquals(0, s.markQueuedLate(ha, ha + 1), "marked already");
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      Object consumer = new Object();
      for (var d : s.take(consumer, 10, h -> true)) {
        assertEquals(d.message().getKey().toStringUtf8().equals("a"), d.message().getLate(),
            d.message().toString());
      }
      assertEquals(3, s.queued());
    }
  }

  @Test
  void aReleaseQueuesAMessageInTwoBuffersOnce() throws Exception {
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(new Placed(msg("a", 1), 0, Buffer.HOLD, 0, 2)));
      s.storeChunk(0, 2, Buffer.RETURNED, List.of(msg("a", 1), msg("a", 2)),
          new Progress(1, new byte[] {7}, true));
      assertEquals(1, s.transferProgress(0, 2, Buffer.RETURNED).chunks());
      s.release(0, 2, List.of(Buffer.HOLD, Buffer.RETURNED));
      assertEquals(2, s.queued());
    }
  }

  /**
   * A release of any size moves its buffers in steps, holding one step in memory; an id in two
   * buffers (or twice in a step) is queued once, at its first place, across steps.
   */
  @Test
  void aReleaseInStepsQueuesEveryIdOnceInOrder() throws Exception {
    try (QueueStore s = QueueStore.open(tmp, true)) {
      List<Placed> hold = new ArrayList<>();
      List<StoredMessage> returned = new ArrayList<>();
      for (int i = 1; i <= 10; i++) {
        hold.add(new Placed(msg("a", i), 0, Buffer.HOLD, 0, 2));
        returned.add(msg("a", i)); // the target's handback repeats the whole hold buffer
      }
      returned.add(msg("a", 11));
      s.append(hold);
      s.storeChunk(0, 2, Buffer.RETURNED, returned, new Progress(1, new byte[0], true));
      s.append(List.of(new Placed(msg("a", 12), 0, Buffer.POST_ABORT, 0, 2)));
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.releaseStep(3, 1 << 20);
      s.release(0, 2, List.of(Buffer.HOLD, Buffer.RETURNED, Buffer.POST_ABORT));
      assertEquals(0, s.held());
      assertEquals(12, s.queued());
      Object consumer = new Object();
      List<Long> seqs = new ArrayList<>();
      for (int i = 0; i < 12; i++) {
        var d = s.take(consumer, 1, h -> true).get(0);
        seqs.add(d.message().getSeq());
        s.ack(consumer, d.lsn(), d.message().getKey());
      }
      assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L, 10L, 11L, 12L), seqs);
    }
  }

  /** A transfer is read chunk by chunk after a cursor, across buffers, within its limits. */
  @Test
  void aTransferIsReadInChunksAfterItsCursor() throws Exception {
    try (QueueStore s = QueueStore.open(tmp, true)) {
      List<Placed> in = new ArrayList<>();
      for (int i = 1; i <= 5; i++) {
        in.add(new Placed(msg("a", i), 0, i <= 3 ? Buffer.PREFIX : Buffer.HELD, 9, 4));
      }
      s.append(in);
      List<Buffer> both = List.of(Buffer.PREFIX, Buffer.HELD);
      List<Long> seen = new ArrayList<>();
      byte[] cursor = new byte[0];
      int chunks = 0;
      boolean last = false;
      while (!last) {
        var c = s.readChunk(9, 4, both, cursor, 2, 1 << 20);
        assertTrue(c.messages().size() <= 2);
        for (StoredMessage m : c.messages()) {
          seen.add(m.getSeq());
        }
        cursor = c.cursor();
        last = c.last();
        chunks++;
      }
      assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seen);
      assertEquals(3, chunks);
      // A message larger than the byte limit goes alone.
      assertEquals(1, s.readChunk(9, 4, both, new byte[0], 10, 1).messages().size());
      var empty = s.readChunk(9, 4, List.of(Buffer.HOLD), new byte[0], 10, 1 << 20);
      assertEquals(0, empty.messages().size());
      assertTrue(empty.last());
    }
  }

  @Test
  void theNextQueuedHashIsFoundInUnsignedOrder() throws Exception {
    // Two keys, one in each half of the ring (the upper half is negative as a long).
    String low = null;
    String high = null;
    for (int i = 0; low == null || high == null; i++) {
      String k = "k" + i;
      if (KeyHash.hash(k) < 0) {
        high = high == null ? k : high;
      } else {
        low = low == null ? k : low;
      }
    }
    long lo = KeyHash.hash(low);
    long hi = KeyHash.hash(high);
    try (QueueStore s = QueueStore.open(tmp, true)) {
      assertEquals(OptionalLong.empty(), s.nextQueuedHash(0));
      s.append(List.of(Placed.queue(msg(high, 1), hi), Placed.queue(msg(low, 2), lo),
          Placed.queue(msg(low, 3), lo)));
      assertEquals(OptionalLong.of(lo), s.nextQueuedHash(0));
      assertEquals(OptionalLong.of(lo), s.nextQueuedHash(lo));
      assertEquals(OptionalLong.of(hi), s.nextQueuedHash(lo + 1));
      assertEquals(OptionalLong.of(hi), s.nextQueuedHash(hi));
      assertEquals(OptionalLong.empty(), s.nextQueuedHash(hi + 1));
    }
  }

  @Test
  void leftoverBuffersAreFoundAfterAReopenAndTakenBackLate() throws Exception {
    long range = Long.MIN_VALUE; // a range start that prints negative
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(new Placed(msg("a", 1), 0, Buffer.HOLD, range, 7),
          new Placed(msg("a", 2), 0, Buffer.POST_ABORT, range, 7),
          new Placed(msg("b", 3), 0, Buffer.HELD, range, 12),
          new Placed(msg("c", 4), 0, Buffer.HOLD, 0, 3)));
      s.storeChunk(range, 7, Buffer.RETURNED, List.of(msg("a", 1), msg("a", 5)),
          new Progress(1, new byte[0], true));
      s.discard(range, 12, List.of(Buffer.HELD));
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      assertEquals(List.of(new BufferedHandover(0, 3), new BufferedHandover(range, 7)),
          s.bufferedHandovers(), "by range start, unsigned");
      List<Held> copies = s.buffered(range, 7, 100, 1 << 20);
      assertEquals(List.of(1L, 1L, 5L, 2L), seqs(copies), "HOLD, RETURNED, POST_ABORT");
      assertEquals(List.of(1L, 1L), seqs(s.buffered(range, 7, 2, 1 << 20)));
      s.requeueLate(copies);
      s.requeueLate(copies); // copies gone already: nothing
      assertEquals(List.of(new BufferedHandover(0, 3)), s.bufferedHandovers());
      assertEquals(0, s.held(range, 7));
      List<Long> seqs = new ArrayList<>();
      for (var d : s.take(new Object(), 10, h -> true)) {
        assertTrue(d.message().getLate(), "taken back as late: " + d.message().getSeq());
        seqs.add(d.message().getSeq());
      }
      assertEquals(List.of(1L), seqs, "one head per key; a:1 queued once");
      assertEquals(3, s.queued()); // a:1, a:2, a:5
    }
  }

  @Test
  void leftoversAreDroppedCopyByCopyAndLateReceiptsSurviveReopen() throws Exception {
    Object consumer = new Object();
    try (QueueStore s = QueueStore.open(tmp, true)) {
      s.append(List.of(Placed.queue(msg("a", 1), 0), Placed.queue(msg("a", 2), 0),
          Placed.queue(msg("b", 3), 0),
          new Placed(msg("c", 4), 0, Buffer.HOLD, 5, 2),
          new Placed(msg("d", 5), 0, Buffer.HOLD, 5, 2)));
      List<Held> queued = s.queued(0, 0, 10, 1 << 20);
      assertEquals(List.of(1L, 2L, 3L), seqs(queued));
      var out = s.take(consumer, 10, h -> true); // a:1 and b:3 out with a consumer
      assertEquals(2, out.size());
      // a:1 (out with a consumer), b:3 and c:4 were taken by their owners; d:5 was not.
      s.drop(List.of(queued.get(0), queued.get(2), s.buffered(5, 2, 1, 1 << 20).get(0)));
      assertEquals(1, s.queued());
      assertEquals(0, s.inFlight());
      assertEquals(List.of(2L), seqs(s.take(consumer, 10, h -> true)), "a:2 is a's head now");
      assertEquals(List.of(5L), seqs(s.buffered(5, 2, 10, 1 << 20)));
      s.drop(List.of(queued.get(0))); // gone already: nothing
      assertEquals(1, s.queued());
      s.queueLate(List.of(msg("e", 6)), "q9", new byte[] {4, 2});
    }
    try (QueueStore s = QueueStore.open(tmp, true)) {
      assertEquals(2, s.queued()); // a:2, e:6
      assertEquals(1, s.held());
      assertTrue(java.util.Arrays.equals(new byte[] {4, 2}, s.lateReceipt("q9")));
      assertEquals(0, s.lateReceipt("q8").length);
      assertEquals(List.of(2L, 6L), seqs(s.queued(0, 0, 10, 1 << 20)));
      assertTrue(s.queued(0, 0, 10, 1 << 20).get(1).message().getLate());
    }
  }

  private static List<Long> seqs(List<?> copies) {
    List<Long> out = new ArrayList<>();
    for (Object o : copies) {
      out.add(o instanceof Held h ? h.message().getSeq()
          : ((QueueStore.Delivered) o).message().getSeq());
    }
    return out;
  }
}
