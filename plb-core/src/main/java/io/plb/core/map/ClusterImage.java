package io.plb.core.map;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * An immutable image of PLB's replicated state at one map version: the shard map (ranges sorted
 * by unsigned start, covering the ring exactly) and the queue-server registry.
 *
 * <p>Thread-safe: immutable. Invariants, checked by {@link #checkInvariants()} on every apply:
 * ranges are sorted by start, the first starts at 0, each ends where the next starts, the last ends
 * at 2^64; every range owner and handover target is a registered server.
 *
 * <p>Ranges are kept in a flat array: a change copies it (O(ranges)), a few milliseconds at a
 * million ranges, and map writes are rare.
 */
public final class ClusterImage {
  /** The image of a new cluster: one unassigned range over the whole ring, no servers. */
  public static final ClusterImage EMPTY =
      new ClusterImage(0L, new RangeEntry[] {RangeEntry.wholeRing()}, new TreeMap<>());

  private final long version;
  private final RangeEntry[] ranges;
  private final NavigableMap<String, QueueServerInfo> servers;

  private ClusterImage(
      long version, RangeEntry[] ranges, NavigableMap<String, QueueServerInfo> servers) {
    this.version = version;
    this.ranges = ranges;
    this.servers = Collections.unmodifiableNavigableMap(servers);
  }

  /** Builds an image from a full map, checking the invariants. */
  public static ClusterImage of(
      long version, List<RangeEntry> ranges, Iterable<QueueServerInfo> servers) {
    RangeEntry[] sorted = ranges.toArray(new RangeEntry[0]);
    Arrays.sort(sorted, (a, b) -> Long.compareUnsigned(a.start(), b.start()));
    TreeMap<String, QueueServerInfo> byId = new TreeMap<>();
    for (QueueServerInfo s : servers) {
      byId.put(s.id(), s);
    }
    ClusterImage image = new ClusterImage(version, sorted, byId);
    image.checkInvariants();
    return image;
  }

  /** The Raft log index of the entry that produced this image (0 for a new cluster). */
  public long version() {
    return version;
  }

  /** The ranges sorted by start. */
  public List<RangeEntry> ranges() {
    return Collections.unmodifiableList(Arrays.asList(ranges));
  }

  public int rangeCount() {
    return ranges.length;
  }

  public RangeEntry range(int index) {
    return ranges[index];
  }

  public NavigableMap<String, QueueServerInfo> servers() {
    return servers;
  }

  public QueueServerInfo server(String id) {
    return servers.get(id);
  }

  /** The index of the range that contains {@code hash}. */
  public int indexOfHash(long hash) {
    int lo = 0;
    int hi = ranges.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (Long.compareUnsigned(ranges[mid].start(), hash) <= 0) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** The range that contains {@code hash}. */
  public RangeEntry rangeFor(long hash) {
    return ranges[indexOfHash(hash)];
  }

  /** The index of the range that starts exactly at {@code start}, or -1. */
  public int indexOfStart(long start) {
    int i = indexOfHash(start);
    return ranges[i].start() == start ? i : -1;
  }

  /**
   * The ACTIVE server, other than {@code except}, that owns the fewest ranges (ties to the
   * smallest id); null if there is none. Where a forced handover sends a DOWN server's ranges.
   */
  public String leastLoadedActive(String except) {
    String best = null;
    int bestCount = Integer.MAX_VALUE;
    for (QueueServerInfo s : servers().values()) {
      if (s.state() != ServerState.ACTIVE || s.id().equals(except)) {
        continue;
      }
      int n = rangesOf(s.id()).size();
      if (n < bestCount) {
        best = s.id();
        bestCount = n;
      }
    }
    return best;
  }

  /** Ranges owned by, or moving to, {@code serverId}. */
  public List<RangeEntry> rangesOf(String serverId) {
    List<RangeEntry> out = new ArrayList<>();
    for (RangeEntry r : ranges) {
      if (r.owner().equals(serverId)
          || (r.handover() != null && r.handover().target().equals(serverId))) {
        out.add(r);
      }
    }
    return out;
  }

  /**
   * The image after {@code delta}. The one replay path: the state machine, followers, snapshot
   * load and every subscriber apply deltas through this method.
   *
   * @throws IllegalStateException if the delta does not follow this image or breaks an invariant
   */
  public ClusterImage apply(MapDelta delta) {
    if (delta.prevVersion() != version) {
      throw new IllegalStateException(
          "delta " + delta.version() + " follows version " + delta.prevVersion()
              + ", but the image is at " + version);
    }
    if (delta.version() <= version) {
      throw new IllegalStateException(
          "delta version " + delta.version() + " does not exceed image version " + version);
    }
    RangeEntry[] next = ranges;
    if (!delta.removedRangeStarts().isEmpty() || !delta.upsertedRanges().isEmpty()) {
      next = mergeRanges(delta);
    }
    NavigableMap<String, QueueServerInfo> nextServers = servers;
    if (!delta.removedServers().isEmpty() || !delta.upsertedServers().isEmpty()) {
      TreeMap<String, QueueServerInfo> copy = new TreeMap<>(servers);
      for (String id : delta.removedServers()) {
        copy.remove(id);
      }
      for (QueueServerInfo s : delta.upsertedServers()) {
        copy.put(s.id(), s);
      }
      nextServers = copy;
    }
    ClusterImage image = new ClusterImage(delta.version(), next, nextServers);
    image.checkInvariants();
    return image;
  }

  /**
   * The range array after removing {@code delta}'s starts and putting its upserts (a later upsert
   * of one start replaces an earlier one): one merge of two sorted runs, O(ranges + changes log
   * changes), so a map of a million ranges takes a change in milliseconds.
   */
  private RangeEntry[] mergeRanges(MapDelta delta) {
    long[] removed = new long[delta.removedRangeStarts().size()];
    for (int i = 0; i < removed.length; i++) {
      long start = delta.removedRangeStarts().get(i);
      if (indexOfStart(start) < 0) {
        throw new IllegalStateException("delta removes unknown range at " + Ring.hex(start));
      }
      removed[i] = start;
    }
    // Sorted as unsigned: flipping the sign bit makes signed order the unsigned one.
    for (int i = 0; i < removed.length; i++) {
      removed[i] ^= Long.MIN_VALUE;
    }
    Arrays.sort(removed);
    for (int i = 0; i < removed.length; i++) {
      removed[i] ^= Long.MIN_VALUE;
      if (i > 0 && removed[i] == removed[i - 1]) {
        throw new IllegalStateException("delta removes unknown range at " + Ring.hex(removed[i]));
      }
    }
    RangeEntry[] sorted = delta.upsertedRanges().toArray(new RangeEntry[0]);
    // Stable, so of two upserts of one start the later one comes last and is kept.
    Arrays.sort(sorted, (a, b) -> Long.compareUnsigned(a.start(), b.start()));
    int m = 0;
    for (RangeEntry r : sorted) {
      if (m > 0 && sorted[m - 1].start() == r.start()) {
        m--;
      }
      sorted[m++] = r;
    }
    RangeEntry[] out = new RangeEntry[ranges.length + m];
    int n = 0;
    int i = 0;
    int j = 0;
    int k = 0;
    while (i < ranges.length || j < m) {
      int c = i == ranges.length ? 1
          : j == m ? -1 : Long.compareUnsigned(ranges[i].start(), sorted[j].start());
      if (c < 0) {
        long start = ranges[i++].start();
        while (k < removed.length && Long.compareUnsigned(removed[k], start) < 0) {
          k++;
        }
        if (k == removed.length || removed[k] != start) {
          out[n++] = ranges[i - 1];
        }
      } else {
        if (c == 0) {
          i++; // replaced by the upsert, removed first or not
        }
        out[n++] = sorted[j++];
      }
    }
    return n == out.length ? out : Arrays.copyOf(out, n);
  }

  /**
   * Checks that the ranges cover the ring exactly and that every owner and handover target is a
   * registered server.
   *
   * @throws IllegalStateException naming the first violation
   */
  public void checkInvariants() {
    if (ranges.length == 0) {
      throw new IllegalStateException("the map has no ranges");
    }
    if (ranges[0].start() != 0L) {
      throw new IllegalStateException("the first range starts at " + Ring.hex(ranges[0].start()));
    }
    String registered = null; // an owner already found registered: neighbours mostly share it
    for (int i = 0; i < ranges.length; i++) {
      RangeEntry r = ranges[i];
      boolean last = i + 1 == ranges.length;
      long expectedEnd = last ? Ring.RING_END : ranges[i + 1].start();
      // Only the last range may end at the ring's end; RING_END (0) must not pass for a start of 0.
      if (r.end() != expectedEnd || (!last && r.end() == Ring.RING_END)) {
        throw new IllegalStateException(
            "range " + r.rangeText() + " does not end where the next starts ("
                + Ring.hexEnd(expectedEnd) + "): gap or overlap");
      }
      if (r.isAssigned() && !r.owner().equals(registered)) {
        if (!servers.containsKey(r.owner())) {
          throw new IllegalStateException(
              "range " + r.rangeText() + " is owned by unregistered server " + r.owner());
        }
        registered = r.owner();
      }
      if (r.handover() != null && !servers.containsKey(r.handover().target())) {
        throw new IllegalStateException(
            "range " + r.rangeText() + " moves to unregistered server " + r.handover().target());
      }
    }
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof ClusterImage other)) {
      return false;
    }
    return version == other.version
        && Arrays.equals(ranges, other.ranges)
        && servers.equals(other.servers);
  }

  @Override
  public int hashCode() {
    return Long.hashCode(version) * 31 + Arrays.hashCode(ranges);
  }

  @Override
  public String toString() {
    return "ClusterImage{version=" + version + ", ranges=" + ranges.length + ", servers="
        + servers.keySet() + "}";
  }
}
