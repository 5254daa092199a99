package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.router.FakeMapService;
import io.plb.client.router.TestMaps;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.StoredMessage;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * An agent on a map of many ranges asks its store only about the ranges the store holds anything
 * of, on every map version and resend round: asking about every range cost an idle server on a
 * million-range map about 67 ms per round under the agent's lock.
 */
class AgentLargeMapTest {
  private static final int RANGES = 20_000;

  /** A store that holds one queued message, in a range another server owns, and counts asks. */
  private static final class CountingStore implements HandoverStore {
    final AtomicLong backlogAsks = new AtomicLong();
    final AtomicLong rounds = new AtomicLong();
    final AtomicLong orphanAsks = new AtomicLong();
    final long queuedHash;

    CountingStore(long queuedHash) {
      this.queuedHash = queuedHash;
    }

    public long backlog(long start, long end) {
      backlogAsks.incrementAndGet();
      boolean in = Long.compareUnsigned(queuedHash, start) >= 0
          && (end == 0 || Long.compareUnsigned(queuedHash, end) < 0);
      return in ? 1 : 0;
    }

    public Chunk readChunk(long r, long e, List<Buffer> b, byte[] cursor, int max,
        long maxBytes) {
      return new Chunk(List.of(), cursor, true);
    }

    public Progress transferProgress(long r, long e, Buffer into) {
      return Progress.NONE;
    }

    public void forgetTransfers(long r, long e) {}

    public void storeChunk(long r, long e, Buffer into, List<StoredMessage> m, Progress p) {}

    public void release(long r, long e, List<Buffer> b) {}

    public void discard(long r, long e, List<Buffer> b) {}

    public List<BufferedHandover> bufferedHandovers() {
      rounds.incrementAndGet(); // asked once per look for leftovers
      return List.of();
    }

    public OptionalLong nextQueuedHash(long from) {
      return Long.compareUnsigned(from, queuedHash) <= 0 ? OptionalLong.of(queuedHash)
          : OptionalLong.empty();
    }

    public List<Held> buffered(long rangeStart, long handoverEpoch, int max,
        long maxBytes) {
      return List.of();
    }

    public List<Held> queued(long start, long end, int max, long maxBytes) {
      orphanAsks.incrementAndGet();
      return List.of();
    }

    public void drop(List<Held> copies) {}

    public void requeueLate(List<Held> copies) {}

    public void queueLate(List<StoredMessage> m, String fromServer, byte[] receipt) {}

    public byte[] lateReceipt(String fromServer) {
      return new byte[0];
    }

    public void saveAgentState(byte[] state) {}

    public byte[] loadAgentState() {
      return new byte[0];
    }

    public int markQueuedLate(long start, long end) {
      return 0;
    }

    public List<io.plb.proto.v1.ProducerSequence> sequencesIn(long start, long end) {
      return List.of();
    }

    public void mergeSequences(List<io.plb.proto.v1.ProducerSequence> sequences,
        long rangeStart, long handoverEpoch, Buffer buffer) {}
  }

  @Test
  void anAgentAsksItsStoreOnlyAboutRangesItHoldsAnythingOf() throws Exception {
    List<QueueServerInfo> servers = List.of(
        new QueueServerInfo("q1", "127.0.0.1:9001", 1.0, ServerState.ACTIVE),
        new QueueServerInfo("q2", "127.0.0.1:9002", 1.0, ServerState.ACTIVE));
    List<RangeEntry> ranges = new ArrayList<>();
    long step = Long.divideUnsigned(-1L, RANGES);
    for (int i = 0; i < RANGES; i++) {
      ranges.add(TestMaps.owned(i * step, i + 1 == RANGES ? 0L : (i + 1) * step,
          i % 2 == 0 ? "q1" : "q2", 1));
    }
    ClusterImage map = ClusterImage.of(7, ranges, servers);
    // One message queued in a range q2 owns: an orphan of q1's.
    long orphan = map.range(1).start() + 5;
    CountingStore store = new CountingStore(orphan);
    try (FakeMapService node = new FakeMapService()) {
      node.set(map);
      try (QueueServerAgent agent = QueueServerAgent.builder("q1", store)
          .plbEndpoints(List.of(node.address()))
          .resendInterval(Duration.ofMillis(20))
          .build().start()) {
        TestMaps.until(() -> agent.version() == 7 && store.orphanAsks.get() >= 1,
            Duration.ofSeconds(10), "the map, and the orphan found and sent on");
        long seen = store.rounds.get();
        TestMaps.until(() -> store.rounds.get() >= seen + 5, Duration.ofSeconds(10),
            "five more rounds on the map");
      }
    }
    // Only the range holding the queued message was asked about (in each look for leftovers,
    // and when its orphan is gathered), never the other 19,999: before, every look asked about
    // all of them.
    long rounds = store.rounds.get() + 1;
    assertTrue(store.backlogAsks.get() <= 2 * rounds,
        store.backlogAsks.get() + " backlog asks in " + rounds + " rounds");
  }
}
