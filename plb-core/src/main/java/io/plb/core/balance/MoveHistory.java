package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * What the balancer did recently: the moves started (for the cluster's window budget and each
 * range's dwell) and whether the last plan left the balancer engaged (hysteresis). Immutable; a
 * caller keeps the latest value and passes it to the next {@link Planner#plan}.
 *
 * <p>Moves made by other paths (an operator's move, a drain) may be added with {@link #withMove}
 * so that they count against the same budgets.
 */
public final class MoveHistory {
  /** A move started at {@code atMillis}: range {@code [rangeStart, rangeEnd)}, from → to. */
  public record Entry(long atMillis, long rangeStart, long rangeEnd, String from, String to) {
    public Entry {
      Objects.requireNonNull(from, "from");
      Objects.requireNonNull(to, "to");
      if (rangeEnd != Ring.RING_END && Long.compareUnsigned(rangeEnd, rangeStart) <= 0) {
        throw new IllegalArgumentException(
            "empty range in move history: " + Ring.formatRange(rangeStart, rangeEnd));
      }
    }
  }

  /** No moves; not engaged. */
  public static final MoveHistory EMPTY = new MoveHistory(List.of(), false);

  private final List<Entry> entries; // by time, then range start
  private final boolean engaged;

  private MoveHistory(List<Entry> entries, boolean engaged) {
    this.entries = entries;
    this.engaged = engaged;
  }

  /** A history of these moves (any order); {@code engaged} as left by the last plan. */
  public static MoveHistory of(List<Entry> entries, boolean engaged) {
    List<Entry> sorted = new ArrayList<>(entries);
    sorted.sort(
        Comparator.comparingLong(Entry::atMillis)
            .thenComparing(Entry::rangeStart, Long::compareUnsigned));
    return new MoveHistory(List.copyOf(sorted), engaged);
  }

  /** The moves, oldest first. */
  public List<Entry> entries() {
    return entries;
  }

  /** Whether the last plan left the balancer engaged (see {@link Plan#engaged()}). */
  public boolean engaged() {
    return engaged;
  }

  /** How many moves started after {@code afterMillis} (exclusive). */
  public int movesAfter(long afterMillis) {
    int n = 0;
    for (int i = entries.size() - 1; i >= 0 && entries.get(i).atMillis() > afterMillis; i--) {
      n++;
    }
    return n;
  }

  /** This history with one more move. */
  public MoveHistory withMove(Entry entry) {
    List<Entry> next = new ArrayList<>(entries);
    next.add(entry);
    return of(next, engaged);
  }

  /**
   * The history after {@code plan} was put into effect at {@code nowMillis}: its moves added, its
   * {@link Plan#engaged()} kept, and moves older than both the move window and the dwell dropped
   * (they no longer count for anything).
   */
  public MoveHistory record(Plan plan, long nowMillis, BalancerConfig config) {
    long keep = Math.max(config.moveWindow().toMillis(), config.minDwell().toMillis());
    List<Entry> next = new ArrayList<>();
    for (Entry e : entries) {
      if (e.atMillis() > nowMillis - keep) {
        next.add(e);
      }
    }
    for (PlanAction.Move m : plan.moves()) {
      next.add(new Entry(nowMillis, m.rangeStart(), m.rangeEnd(), m.from(), m.to()));
    }
    return of(next, plan.engaged());
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof MoveHistory h && h.engaged == engaged && h.entries.equals(entries);
  }

  @Override
  public int hashCode() {
    return entries.hashCode() * 31 + Boolean.hashCode(engaged);
  }

  @Override
  public String toString() {
    return "MoveHistory[" + entries.size() + " moves, engaged " + engaged + "]";
  }
}
