package io.plb.core.load;

import java.util.Collections;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * What the state machine keeps about the load history besides its buckets: the layout fixed by
 * the first entry (null before it), the start of the newest fine bucket (entries must follow it),
 * where each resolution starts (every bucket before {@code fineFromMillis} or
 * {@code coarseFromMillis} has been deleted), and per queue server the last load report the
 * history counts — so a new leader does not count a resent report twice. Watermarks of servers
 * silent for longer than the fine retention are dropped, which bounds the map by the servers seen
 * in that window.
 *
 * <p>Immutable.
 */
public record HistoryState(
    HistoryLayout layout,
    long lastBucketMillis,
    long fineFromMillis,
    long coarseFromMillis,
    SortedMap<String, Watermark> watermarks) {

  /** No history yet. */
  public static final HistoryState EMPTY = new HistoryState(null, -1, 0, 0, new TreeMap<>());

  /** The last report of one server counted in the history, and the bucket it was counted in. */
  public record Watermark(long session, long seq, long bucketMillis) {}

  public HistoryState {
    watermarks = Collections.unmodifiableSortedMap(new TreeMap<>(watermarks));
  }

  public boolean isEmpty() {
    return layout == null;
  }
}
