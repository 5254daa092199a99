package io.plb.core.load;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Counts a queue server's load per slice between two load reports (DESIGN §6): messages and bytes
 * in (accepted from producers) with the hot keys among them, and messages and bytes out (delivered
 * to consumers). {@link #drain} takes what was counted and starts the next period, adding the queue
 * depth and oldest age per slice that the server samples at that moment.
 *
 * <p><b>Thread model.</b> Thread-safe. {@link #recordIn} takes this object's monitor: the counters
 * in and the hot-key sketch move together, so a report's hot keys and its slice counts describe the
 * same messages. A queue server calls it where its publish path is already serialised (the
 * reference server: under the agent's lock, where it places a batch), so the monitor is
 * uncontended but for one drain a report interval. {@link #recordOut} takes no lock: one atomic add
 * per counter, so the delivery path never waits on the publish path.
 *
 * <p><b>Memory</b> is fixed: four arrays of 4096 counters and a sketch of {@code hotKeys} counters.
 */
public final class SliceLoadAccumulator {
  private final long[] messagesIn = new long[Ring.SLICES];
  private final long[] bytesIn = new long[Ring.SLICES];
  private final AtomicLongArray messagesOut = new AtomicLongArray(Ring.SLICES);
  private final AtomicLongArray bytesOut = new AtomicLongArray(Ring.SLICES);
  private final SpaceSaving sketch;

  /** The sampled gauges of a queue server: queue depth and oldest age per slice. */
  @FunctionalInterface
  public interface Gauges {
    /** Calls {@code sink} once per slice with queued messages, as of {@code nowMillis}. */
    void sample(long nowMillis, GaugeSink sink);
  }

  /** Receives sampled gauges. */
  @FunctionalInterface
  public interface GaugeSink {
    void slice(int slice, long queueDepth, long oldestAgeMillis);
  }

  /** No gauges: depth and age read 0. */
  public static final Gauges NO_GAUGES = (now, sink) -> {};

  /** What one period counted: slices with load (sorted) and the hot keys among messages in. */
  public record Drained(List<SliceLoad> slices, HotKeys hotKeys) {}

  public SliceLoadAccumulator(int hotKeys) {
    this.sketch = new SpaceSaving(hotKeys);
  }

  /** A message accepted from a producer, with its payload size. */
  public synchronized void recordIn(long hash, long payloadBytes) {
    int s = Ring.sliceOf(hash);
    messagesIn[s]++;
    bytesIn[s] += payloadBytes;
    sketch.offer(hash, payloadBytes);
  }

  /** A message delivered to a consumer, with its payload size. Lock-free. */
  public void recordOut(long hash, long payloadBytes) {
    int s = Ring.sliceOf(hash);
    messagesOut.incrementAndGet(s);
    bytesOut.addAndGet(s, payloadBytes);
  }

  /**
   * Takes what was counted since the last drain, with the gauges sampled now, and starts counting
   * anew. A message recorded while this runs lands in this period or the next, never in both.
   */
  public Drained drain(long nowMillis, Gauges gauges) {
    long[] in = new long[Ring.SLICES];
    long[] inBytes = new long[Ring.SLICES];
    HotKeys hot;
    synchronized (this) {
      System.arraycopy(messagesIn, 0, in, 0, in.length);
      System.arraycopy(bytesIn, 0, inBytes, 0, inBytes.length);
      java.util.Arrays.fill(messagesIn, 0);
      java.util.Arrays.fill(bytesIn, 0);
      hot = sketch.summary();
      sketch.clear();
    }
    long[] depth = new long[Ring.SLICES];
    long[] age = new long[Ring.SLICES];
    gauges.sample(nowMillis, (slice, d, a) -> {
      if (slice >= 0 && slice < Ring.SLICES) {
        depth[slice] = LoadFigures.add(depth[slice], Math.max(0, d));
        age[slice] = Math.max(age[slice], Math.max(0, a));
      }
    });
    List<SliceLoad> out = new ArrayList<>();
    for (int s = 0; s < Ring.SLICES; s++) {
      long mo = messagesOut.getAndSet(s, 0);
      long bo = bytesOut.getAndSet(s, 0);
      LoadFigures f = new LoadFigures(in[s], inBytes[s], mo, bo, depth[s], age[s]);
      if (!f.isZero()) {
        out.add(new SliceLoad(s, f));
      }
    }
    return new Drained(out, hot);
  }
}
