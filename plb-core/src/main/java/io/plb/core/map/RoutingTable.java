package io.plb.core.map;

import java.util.Objects;

/**
 * The shard map flattened for routing: range starts in one sorted {@code long[]} and a route per
 * range in a parallel array, so {@link #route(long)} is a branch-light binary search that does not
 * allocate. Starts are stored with the sign bit flipped, which turns unsigned order into signed
 * order and lets the search use plain {@code <}.
 *
 * <p>A first-level index on the top bits of the hash narrows the search before it starts: for
 * each of 2<sup>bits</sup> equal slices of the ring it keeps the index of the range holding the
 * slice's first position, so a lookup reads one {@code int} and then searches only the few starts
 * of its slice. Without it, a large map costs one dependent cache miss per search step: at 100k
 * ranges the starts alone (800 KB) overflow a core's L2, and the last steps of every lookup miss
 * it. The index is sized to the map, about four ranges per slice when they are even (capped at
 * 2<sup>16</sup> slices, 256 KB); an uneven map still searches only its own slice.
 *
 * <p>Immutable and thread-safe; a router swaps in a new table when the map changes.
 */
public final class RoutingTable {
  /** Where one range goes: its owner, the owner's address, and the map entry it was routed under. */
  public record Route(
      long start,
      long end,
      String owner,
      String address,
      long epoch,
      Handover handover) {
    public Route {
      Objects.requireNonNull(owner, "owner");
      Objects.requireNonNull(address, "address");
    }

    /** Whether the range has an owner to send to. */
    public boolean isAssigned() {
      return !owner.isEmpty();
    }
  }

  /** Most slices the first-level index divides the ring into: 2^16 ints, 256 KB. */
  static final int MAX_INDEX_BITS = 16;

  private final long version;
  private final long[] flippedStarts;
  private final Route[] routes;
  /** Right shift that turns a hash into its slice of the first-level index (64 - bits). */
  private final int sliceShift;
  /**
   * For slice {@code s}, the index of the range holding the slice's first ring position; one
   * more entry at the end holds the last range. A hash in slice {@code s} lies in a range between
   * {@code firstRange[s]} and {@code firstRange[s + 1]}, both included.
   */
  private final int[] firstRange;

  private RoutingTable(long version, long[] flippedStarts, Route[] routes) {
    this.version = version;
    this.flippedStarts = flippedStarts;
    this.routes = routes;
    int bits = indexBits(routes.length);
    this.sliceShift = 64 - bits;
    this.firstRange = buildIndex(flippedStarts, bits);
  }

  /** About four ranges per slice for an even map: bits = ceil(log2 n) - 2, within [1, 16]. */
  static int indexBits(int ranges) {
    int ceilLog2 = 32 - Integer.numberOfLeadingZeros(Math.max(1, ranges - 1));
    return Math.max(1, Math.min(MAX_INDEX_BITS, ceilLog2 - 2));
  }

  private static int[] buildIndex(long[] flippedStarts, int bits) {
    int slices = 1 << bits;
    int[] first = new int[slices + 1];
    int shift = 64 - bits;
    int i = 0;
    for (int s = 0; s < slices; s++) {
      long sliceStart = ((long) s << shift) ^ Long.MIN_VALUE; // flipped, like the starts
      while (i + 1 < flippedStarts.length && flippedStarts[i + 1] <= sliceStart) {
        i++;
      }
      first[s] = i;
    }
    first[slices] = flippedStarts.length - 1;
    return first;
  }

  /** Flattens an image. O(ranges + index slices). */
  public static RoutingTable of(ClusterImage image) {
    int n = image.rangeCount();
    long[] starts = new long[n];
    Route[] routes = new Route[n];
    for (int i = 0; i < n; i++) {
      RangeEntry r = image.range(i);
      QueueServerInfo owner = r.isAssigned() ? image.server(r.owner()) : null;
      starts[i] = r.start() ^ Long.MIN_VALUE;
      routes[i] =
          new Route(
              r.start(), r.end(), r.owner(), owner == null ? "" : owner.address(), r.epoch(),
              r.handover());
    }
    return new RoutingTable(image.version(), starts, routes);
  }

  /** The map version this table was built from. */
  public long version() {
    return version;
  }

  public int size() {
    return routes.length;
  }

  /** The route of the range containing ring position {@code hash}. Does not allocate. */
  public Route route(long hash) {
    long key = hash ^ Long.MIN_VALUE;
    long[] a = flippedStarts;
    int slice = (int) (hash >>> sliceShift);
    int lo = firstRange[slice];
    int n = firstRange[slice + 1] - lo + 1;
    // Branch-light lower search within the slice: the last start <= key. a[lo] <= key holds,
    // since range lo holds the slice's first position.
    while (n > 1) {
      int half = n >>> 1;
      if (a[lo + half] <= key) {
        lo += half;
      }
      n -= half;
    }
    return routes[lo];
  }
}
