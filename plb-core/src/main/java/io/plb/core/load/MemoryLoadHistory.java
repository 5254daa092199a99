package io.plb.core.load;

import io.plb.core.command.Command.AppendLoadSamples;
import java.util.Collections;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The load history held in memory: the same rules as the RocksDB store of a PLB node
 * ({@link LoadHistory}), for tests, the simulator and tools.
 *
 * <p>Not thread-safe.
 */
public final class MemoryLoadHistory {
  private HistoryState state = HistoryState.EMPTY;
  private final TreeMap<Long, LoadBucket> fine = new TreeMap<>();
  private final TreeMap<Long, LoadBucket> coarse = new TreeMap<>();

  /**
   * Appends one entry.
   *
   * @throws io.plb.core.error.PlbException when the entry is rejected; nothing changes then
   */
  public HistoryUpdate append(AppendLoadSamples entry) {
    HistoryUpdate u = LoadHistory.apply(state, entry, coarse::get);
    apply(u);
    return u;
  }

  /** Carries out an update computed by {@link LoadHistory#apply}. */
  public void apply(HistoryUpdate u) {
    fine.put(u.fine().startMillis(), u.fine());
    coarse.put(u.coarse().startMillis(), u.coarse());
    if (u.deleteFineBelow() >= 0) {
      fine.headMap(u.deleteFineBelow(), false).clear();
    }
    if (u.deleteCoarseBelow() >= 0) {
      coarse.headMap(u.deleteCoarseBelow(), false).clear();
    }
    state = u.next();
  }

  /** Makes this history a copy of {@code other} (as a snapshot install would). */
  public void restore(MemoryLoadHistory other) {
    fine.clear();
    fine.putAll(other.fine);
    coarse.clear();
    coarse.putAll(other.coarse);
    state = other.state;
  }

  public HistoryState state() {
    return state;
  }

  /** The buckets of one resolution by start, oldest first. */
  public NavigableMap<Long, LoadBucket> buckets(Resolution r) {
    return Collections.unmodifiableNavigableMap(r == Resolution.FINE ? fine : coarse);
  }

  /** Rows a store would hold for this history (see {@link LoadBucket#rows()}). */
  public long rows() {
    long n = 0;
    for (LoadBucket b : fine.values()) {
      n += b.rows();
    }
    for (LoadBucket b : coarse.values()) {
      n += b.rows();
    }
    return n;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof MemoryLoadHistory m && state.equals(m.state) && fine.equals(m.fine)
        && coarse.equals(m.coarse);
  }

  @Override
  public int hashCode() {
    return Objects.hash(state, fine, coarse);
  }
}
