package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import java.util.Objects;

/**
 * One range of the shard map as the planner sees it. Immutable.
 *
 * @param start first hash of the range (unsigned)
 * @param end first hash after the range, {@link Ring#RING_END} (0) for 2^64
 * @param owner id of the owning server; empty when unassigned (the planner leaves such a range
 *     alone)
 * @param pinned an operator pinned the range: the planner never moves, splits or merges it
 * @param moving a handover of the range is in progress: the planner never touches it
 * @param lastMovedAtMillis when the range last changed owner, {@link #NEVER} if never; the planner
 *     does not move it again within {@code balancer.minDwell}
 * @param backlog cost queued at the owner and not yet delivered (cost units, ≥ 0): a move must wait
 *     for it to drain, so a backlog makes a move more disruptive
 */
public record BalanceRange(
    long start,
    long end,
    String owner,
    boolean pinned,
    boolean moving,
    long lastMovedAtMillis,
    double backlog) {

  /** {@code lastMovedAtMillis} of a range that has never moved. */
  public static final long NEVER = Long.MIN_VALUE;

  public BalanceRange {
    Objects.requireNonNull(owner, "owner");
    if (end != Ring.RING_END && Long.compareUnsigned(end, start) <= 0) {
      throw new IllegalArgumentException(
          "empty range: end " + Ring.hexEnd(end) + " is not after start " + Ring.hex(start));
    }
    if (!(backlog >= 0) || Double.isInfinite(backlog)) {
      throw new IllegalArgumentException(
          "range " + Ring.formatRange(start, end) + ": backlog must be finite and >= 0 (got "
              + backlog + ")");
    }
  }

  /** A range that is not pinned, not moving, has never moved and has no backlog. */
  public static BalanceRange of(long start, long end, String owner) {
    return new BalanceRange(start, end, owner, false, false, NEVER, 0.0);
  }

  public BalanceRange withOwner(String newOwner, long movedAtMillis) {
    return new BalanceRange(start, end, newOwner, pinned, false, movedAtMillis, backlog);
  }

  public BalanceRange withBounds(long newStart, long newEnd, double newBacklog) {
    return new BalanceRange(newStart, newEnd, owner, pinned, moving, lastMovedAtMillis, newBacklog);
  }

  /** Whether the range holds exactly one hash value (it cannot be split). */
  public boolean isSingleHash() {
    return end - start == 1L;
  }

  public String rangeText() {
    return Ring.formatRange(start, end);
  }
}
