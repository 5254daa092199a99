package io.plb.core.map;

import io.plb.core.keyspace.Ring;
import java.util.Objects;

/**
 * One entry of the shard map: the half-open hash range {@code [start, end)} and who owns it
 * (DESIGN §4). Immutable.
 *
 * @param start first hash of the range (unsigned)
 * @param end first hash after the range, {@link Ring#RING_END} (0) for 2^64
 * @param owner id of the owning queue server; empty when the range is not assigned yet
 * @param epoch grows by one on every ownership change of the range
 * @param handover the handover in progress, or null
 * @param pinned whether the balancer must leave the range where it is
 */
public record RangeEntry(
    long start, long end, String owner, long epoch, Handover handover, boolean pinned) {

  public RangeEntry {
    Objects.requireNonNull(owner, "owner");
    if (end != Ring.RING_END && Long.compareUnsigned(end, start) <= 0) {
      throw new IllegalArgumentException(
          "empty range: end " + Ring.hexEnd(end) + " is not after start " + Ring.hex(start));
    }
  }

  /** The whole ring, unassigned: the map of a new cluster. */
  public static RangeEntry wholeRing() {
    return new RangeEntry(0L, Ring.RING_END, "", 0L, null, false);
  }

  public boolean contains(long hash) {
    return Ring.contains(start, end, hash);
  }

  public boolean isAssigned() {
    return !owner.isEmpty();
  }

  public RangeEntry withBounds(long newStart, long newEnd) {
    return new RangeEntry(newStart, newEnd, owner, epoch, handover, pinned);
  }

  public RangeEntry withOwner(String newOwner, long newEpoch) {
    return new RangeEntry(start, end, newOwner, newEpoch, handover, pinned);
  }

  public RangeEntry withPinned(boolean newPinned) {
    return new RangeEntry(start, end, owner, epoch, handover, newPinned);
  }

  /** {@code [0x..., 0x...)}. */
  public String rangeText() {
    return Ring.formatRange(start, end);
  }
}
