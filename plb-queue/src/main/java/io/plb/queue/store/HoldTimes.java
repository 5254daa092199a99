package io.plb.queue.store;

import java.util.Arrays;

/**
 * How long messages released from handover buffers were held: from their acceptance (the
 * {@code accepted_at_micros} stamp of the first server that took them) to the release that made
 * them deliverable. Shown in {@code GetQueueStatus} and read by the benchmarks.
 *
 * <p>A log-linear histogram in microseconds: exact below 32 µs, then 32 buckets per power of two,
 * so a percentile is at most about 3 % above the true value. A message transferred from another
 * server carries that server's stamp, so across machines the figure includes the clock offset
 * between them (a negative difference counts as 0).
 *
 * <p>Thread model: thread-safe, one monitor; {@link #record} is a few arithmetic operations.
 * Invariant: {@code total} is the sum of the counts.
 */
public final class HoldTimes {
  private static final int SUB_BITS = 5;
  private static final int SUB = 1 << SUB_BITS;
  /** Values below SUB are exact; above, one row of SUB buckets per power of two up to 2^63. */
  static final int BUCKETS = SUB + (63 - SUB_BITS) * SUB;

  private final long[] counts = new long[BUCKETS];
  private long total;
  private long max;

  /** Counts one message held {@code micros} (negative counts as 0). */
  public synchronized void record(long micros) {
    long v = Math.max(0, micros);
    counts[index(v)]++;
    total++;
    max = Math.max(max, v);
  }

  /** The counts so far. */
  public synchronized Snapshot snapshot() {
    return new Snapshot(counts.clone(), total, max);
  }

  static int index(long v) {
    if (v < SUB) {
      return (int) v;
    }
    int exp = 63 - Long.numberOfLeadingZeros(v); // >= SUB_BITS
    int sub = (int) (v >>> (exp - SUB_BITS)) & (SUB - 1);
    return SUB + (exp - SUB_BITS) * SUB + sub;
  }

  /** The largest value that falls in bucket {@code i}. */
  static long upperBound(int i) {
    if (i < SUB) {
      return i;
    }
    int exp = (i - SUB) / SUB + SUB_BITS;
    long sub = (i - SUB) % SUB;
    long width = 1L << (exp - SUB_BITS);
    return ((SUB + sub) << (exp - SUB_BITS)) + width - 1;
  }

  /**
   * Counts at one instant.
   *
   * @param counts per bucket
   * @param total messages counted
   * @param max the largest value recorded (for a difference of snapshots: the top of the highest
   *     bucket that grew, capped by the later snapshot's max)
   */
  public record Snapshot(long[] counts, long total, long max) {
    public static final Snapshot EMPTY = new Snapshot(new long[BUCKETS], 0, 0);

    /**
     * The nearest-rank percentile {@code p} (0 < p <= 100) in microseconds: the top of the bucket
     * it falls in, capped by {@link #max()}; 0 when nothing was counted.
     */
    public long percentile(double p) {
      if (total == 0) {
        return 0;
      }
      long rank = Math.max(1, (long) Math.ceil(p / 100.0 * total));
      long seen = 0;
      for (int i = 0; i < counts.length; i++) {
        seen += counts[i];
        if (seen >= rank) {
          return Math.min(upperBound(i), max);
        }
      }
      return max;
    }

    /** What was counted after {@code earlier} (a snapshot of the same histogram). */
    public Snapshot since(Snapshot earlier) {
      long[] d = new long[counts.length];
      int top = -1;
      for (int i = 0; i < d.length; i++) {
        d[i] = counts[i] - earlier.counts[i];
        if (d[i] > 0) {
          top = i;
        }
      }
      return new Snapshot(d, total - earlier.total, top < 0 ? 0 : Math.min(upperBound(top), max));
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Snapshot s && s.total == total && s.max == max
          && Arrays.equals(s.counts, counts);
    }

    @Override
    public int hashCode() {
      return Long.hashCode(total) * 31 + Arrays.hashCode(counts);
    }

    @Override
    public String toString() {
      return "HoldTimes[n=" + total + ", p50=" + percentile(50) + "us, p99=" + percentile(99)
          + "us, max=" + max + "us]";
    }
  }
}
