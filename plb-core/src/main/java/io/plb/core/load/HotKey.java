package io.plb.core.load;

import java.util.Comparator;

/**
 * One tracked hot key: its hash (XXH64 of the key, unsigned) and how many messages and bytes it
 * had over a period, as a space-saving summary knows them.
 *
 * <p>Error bounds: the true message count lies in {@code [count - error, count]}; {@code bytes}
 * is a lower bound on its payload bytes (those seen while it was tracked), exact when {@code error}
 * is 0.
 */
public record HotKey(long hash, long count, long error, long bytes) {

  /** Highest count first; equal counts by unsigned hash, so the order is total and stable. */
  public static final Comparator<HotKey> BY_COUNT =
      (a, b) -> a.count != b.count ? Long.compare(b.count, a.count)
          : Long.compareUnsigned(a.hash, b.hash);

  /** The smallest count the key certainly had. */
  public long lowerBound() {
    return count - error;
  }
}
