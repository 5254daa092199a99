package io.plb.queue.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.plb.core.handover.Participant.Buffer;
import io.plb.proto.v1.StoredMessage;
import io.plb.queue.store.QueueStore.Placed;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The hold-time histogram: bucket bounds, percentiles, differences, and what a release records. */
class HoldTimesTest {
  @TempDir Path tmp;

  @Test
  void everyValueFallsInABucketWhoseBoundsHoldIt() {
    Random rnd = new Random(7);
    for (int n = 0; n < 200_000; n++) {
      long v = n < 10_000 ? n : (rnd.nextLong() >>> 1) >>> rnd.nextInt(63);
      int i = HoldTimes.index(v);
      assertTrue(i >= 0 && i < HoldTimes.BUCKETS, "index of " + v);
      assertTrue(v <= HoldTimes.upperBound(i), v + " above its bucket's top");
      assertTrue(i == 0 || v > HoldTimes.upperBound(i - 1), v + " not above the bucket below");
      // at most ~3 % wide
      assertTrue(HoldTimes.upperBound(i) - v <= Math.max(0, v / 32), "bucket of " + v);
    }
    assertEquals(HoldTimes.BUCKETS - 1, HoldTimes.index(Long.MAX_VALUE));
    assertEquals(Long.MAX_VALUE, HoldTimes.upperBound(HoldTimes.BUCKETS - 1));
  }

  @Test
  void percentilesAreWithinABucketOfTheExactOnes() {
    HoldTimes h = new HoldTimes();
    Random rnd = new Random(11);
    long[] values = new long[5_000];
    for (int i = 0; i < values.length; i++) {
      values[i] = 1_000 + rnd.nextInt(200_000);
      h.record(values[i]);
    }
    Arrays.sort(values);
    HoldTimes.Snapshot s = h.snapshot();
    assertEquals(values.length, s.total());
    assertEquals(values[values.length - 1], s.max());
    for (double p : new double[] {1, 50, 90, 99, 100}) {
      long exact = values[(int) Math.ceil(p / 100 * values.length) - 1];
      long got = s.percentile(p);
      assertTrue(got >= exact && got <= exact + exact / 32, "p" + p + ": " + got + " vs " + exact);
    }
    assertEquals(0, HoldTimes.Snapshot.EMPTY.percentile(99));
  }

  @Test
  void aDifferenceCountsOnlyWhatCameAfter() {
    HoldTimes h = new HoldTimes();
    h.record(5_000_000);
    h.record(-3); // counts as 0
    HoldTimes.Snapshot before = h.snapshot();
    h.record(40_000);
    h.record(60_000);
    HoldTimes.Snapshot d = h.snapshot().since(before);
    assertEquals(2, d.total());
    assertTrue(d.percentile(50) >= 40_000 && d.percentile(50) < 42_000, d.toString());
    assertTrue(d.max() >= 60_000 && d.max() < 62_000, d.toString());
  }

  @Test
  void aReleaseRecordsHowLongEachMessageWasHeld() throws Exception {
    try (QueueStore s = QueueStore.open(tmp, false)) {
      long start = System.nanoTime();
      long now = System.currentTimeMillis() * 1_000;
      s.append(List.of(
          new Placed(msg("a", 1, now - 80_000), 0, Buffer.HOLD, 0, 3),
          new Placed(msg("b", 2, now - 20_000), 0, Buffer.HOLD, 0, 3)));
      s.storeChunk(0, 3, Buffer.RETURNED, List.of(msg("c", 3, now - 50_000)),
          io.plb.client.agent.HandoverStore.Progress.NONE);
      assertEquals(0, s.holdTimes().snapshot().total()); // held, not yet released
      s.discard(0, 3, List.of(Buffer.RETURNED));
      s.release(0, 3, List.of(Buffer.HOLD));
      long elapsed = (System.nanoTime() - start) / 1_000 + 2_000; // + clock granularity
      HoldTimes.Snapshot h = s.holdTimes().snapshot();
      assertEquals(2, h.total()); // a discarded buffer is not a release
      assertTrue(h.percentile(50) >= 20_000 && h.percentile(50) <= 20_000 + elapsed * 33 / 32,
          h.toString());
      assertTrue(h.max() >= 80_000 && h.max() <= 80_000 + elapsed, h.toString());
    }
  }

  private static StoredMessage msg(String key, long seq, long acceptedAt) {
    return StoredMessage.newBuilder().setKey(ByteString.copyFromUtf8(key)).setProducer("p")
        .setSeq(seq).setPayload(ByteString.copyFromUtf8("m" + seq))
        .setAcceptedAtMicros(acceptedAt).build();
  }
}
