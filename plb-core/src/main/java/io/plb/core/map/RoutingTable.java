package io.plb.core.map;

import java.util.Objects;

/**
 * The shard map flattened for routing: range starts in one sorted {@code long[]} and a route per
 * range in a parallel array, so {@link #route(long)} is a branch-light binary search that does not
 * allocate. Starts are stored with the sign bit flipped, which turns unsigned order into signed
 * order and lets the search use plain {@code <}.
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

  private final long version;
  private final long[] flippedStarts;
  private final Route[] routes;

  private RoutingTable(long version, long[] flippedStarts, Route[] routes) {
    this.version = version;
    this.flippedStarts = flippedStarts;
    this.routes = routes;
  }

  /** Flattens an image. O(ranges). */
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
    int lo = 0;
    int n = a.length;
    // Branch-light lower search: find the last start <= key. a[0] is the minimum (start 0).
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
