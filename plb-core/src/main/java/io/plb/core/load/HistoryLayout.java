package io.plb.core.load;

import io.plb.core.error.PlbException;

/**
 * How the load history is laid out (DESIGN §6): the fine bucket width and how long fine buckets
 * are kept, the coarse bucket width and how long coarse buckets are kept, and how many hot keys a
 * bucket keeps. Every {@code AppendLoadSamples} entry carries the layout its leader used, so
 * applying it does not depend on any node's own configuration.
 *
 * <p>The footprint bound: at most {@link #fineBucketsKept()} fine and {@link #coarseBucketsKept()}
 * coarse buckets are kept, each with at most 1 + 4096 rows (a bucket row with its hot keys and
 * server totals, and one row per slice with load). With the defaults: 17,310 fine and 16,128
 * coarse buckets, at most 139 million rows when every slice has load in every bucket.
 */
public record HistoryLayout(
    long bucketMillis,
    long fineRetentionMillis,
    long coarseBucketMillis,
    long coarseRetentionMillis,
    int hotKeys) {

  private static final long DAY = 86_400_000L;

  /** 10 s buckets kept 2 days; 5 min buckets kept 8 weeks; 32 hot keys per bucket. */
  public static final HistoryLayout DEFAULT =
      new HistoryLayout(10_000, 2 * DAY, 300_000, 56 * DAY, 32);

  /** The narrowest fine bucket accepted. */
  public static final long MIN_BUCKET_MILLIS = 50;

  /** At most this many buckets are kept at each resolution. */
  public static final long MAX_BUCKETS_KEPT = 100_000;

  /**
   * Checks the layout. Messages name the configuration keys.
   *
   * @throws PlbException INVALID_ARGUMENT naming the first bad value
   */
  public HistoryLayout check() {
    if (bucketMillis < MIN_BUCKET_MILLIS || bucketMillis > DAY) {
      throw PlbException.invalid("history.bucket is " + bucketMillis + " ms; it must be between "
          + MIN_BUCKET_MILLIS + " ms and 1 day");
    }
    if (coarseBucketMillis < 2 * bucketMillis || coarseBucketMillis % bucketMillis != 0) {
      throw PlbException.invalid("history.coarseBucket (" + coarseBucketMillis
          + " ms) must be a whole multiple of history.bucket (" + bucketMillis
          + " ms), at least twice it");
    }
    if (coarseBucketMillis > 7 * DAY) {
      throw PlbException.invalid("history.coarseBucket is " + coarseBucketMillis
          + " ms; at most 7 days");
    }
    if (fineRetentionMillis < bucketMillis) {
      throw PlbException.invalid("history.fineRetention (" + fineRetentionMillis
          + " ms) must be at least one history.bucket (" + bucketMillis + " ms)");
    }
    if (coarseRetentionMillis < coarseBucketMillis
        || coarseRetentionMillis < fineRetentionMillis) {
      throw PlbException.invalid("history.coarseRetention (" + coarseRetentionMillis
          + " ms) must be at least one history.coarseBucket (" + coarseBucketMillis
          + " ms) and at least history.fineRetention (" + fineRetentionMillis + " ms)");
    }
    if (fineBucketsKept() > MAX_BUCKETS_KEPT || coarseBucketsKept() > MAX_BUCKETS_KEPT) {
      throw PlbException.invalid("the history would keep " + fineBucketsKept() + " fine and "
          + coarseBucketsKept() + " coarse buckets; at most " + MAX_BUCKETS_KEPT
          + " of each (raise history.bucket or history.coarseBucket, or shorten a retention)");
    }
    if (hotKeys < 1 || hotKeys > HotKeys.MAX_KEYS) {
      throw PlbException.invalid("telemetry.hotKeys is " + hotKeys + "; it must be 1.."
          + HotKeys.MAX_KEYS);
    }
    return this;
  }

  /**
   * The most fine buckets kept: those starting within {@code fineRetention} of the newest, and the
   * rest of their coarse bucket (fine buckets are deleted a coarse bucket at a time).
   */
  public long fineBucketsKept() {
    return ceilDiv(fineRetentionMillis, bucketMillis) + coarseBucketMillis / bucketMillis;
  }

  /** The most coarse buckets kept. */
  public long coarseBucketsKept() {
    return ceilDiv(coarseRetentionMillis, coarseBucketMillis);
  }

  /** The most rows the history can hold: every kept bucket with every slice busy. */
  public long maxRows() {
    return (fineBucketsKept() + coarseBucketsKept()) * (1L + io.plb.core.keyspace.Ring.SLICES);
  }

  public long widthOf(Resolution r) {
    return r == Resolution.FINE ? bucketMillis : coarseBucketMillis;
  }

  /** The start of the coarse bucket a fine bucket starting at {@code fineStart} falls in. */
  public long coarseStartOf(long fineStart) {
    return Math.floorDiv(fineStart, coarseBucketMillis) * coarseBucketMillis;
  }

  /** Whether entries laid out as {@code other} can extend a history laid out as this. */
  public boolean sameWidths(HistoryLayout other) {
    return bucketMillis == other.bucketMillis && coarseBucketMillis == other.coarseBucketMillis;
  }

  private static long ceilDiv(long a, long b) {
    return -Math.floorDiv(-a, b);
  }
}
