package io.plb.core.load;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.error.PlbException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Applies {@code AppendLoadSamples} entries to the load history (DESIGN §6): a pure function
 * {@code (state, entry, coarse bucket) -> update}, with no I/O, clock or randomness, so every
 * replica computes the same update from the same entries.
 *
 * <p><b>Rules.</b> An entry carries one fine bucket and the layout its leader used. The first
 * entry fixes the bucket widths; later entries must use the same widths (their retentions and
 * hot-key count may differ, and apply from then on). Buckets are appended in time order: each
 * starts after the newest one, on a multiple of the fine width.
 *
 * <p><b>Compaction</b> is driven by the bucket times the entries carry, never by a clock: each
 * fine bucket is also merged into the coarse bucket it falls in (counters add, gauges keep their
 * peak, hot keys merge with their bounds, see {@link HotKeys#merge}). Fine buckets leave a whole
 * coarse bucket at a time: once every fine bucket of a coarse bucket starts {@code fineRetention}
 * or more before the newest one, they are all deleted (the coarse bucket holds their sum). A
 * coarse bucket is deleted once it starts {@code coarseRetention} or more before the newest coarse
 * bucket. So the history never holds more than {@link HistoryLayout#fineBucketsKept()} fine and
 * {@link HistoryLayout#coarseBucketsKept()} coarse buckets, whatever the number of entries, and a
 * store deletes one range of rows per coarse bucket's time rather than one per entry.
 *
 * <p>A bad entry is rejected with a {@link PlbException} and changes nothing.
 */
public final class LoadHistory {
  /** The most servers one bucket may list. */
  public static final int MAX_SERVERS = 100_000;

  private LoadHistory() {}

  /** Reads the coarse bucket starting at a time, or null if there is none. */
  @FunctionalInterface
  public interface CoarseReader {
    LoadBucket read(long startMillis);
  }

  /**
   * The update {@code entry} makes to a history in {@code state}.
   *
   * @param coarse reads the stored coarse bucket the entry's fine bucket falls in
   * @throws PlbException INVALID_ARGUMENT for a malformed entry, FAILED_PRECONDITION for one that
   *     does not fit the history (other widths, a bucket not after the newest)
   */
  public static HistoryUpdate apply(HistoryState state, AppendLoadSamples entry,
      CoarseReader coarse) {
    HistoryLayout layout = check(state, entry);
    LoadBucket fine = entry.bucket();
    long coarseStart = layout.coarseStartOf(fine.startMillis());
    LoadBucket previous = coarse.read(coarseStart);
    LoadBucket merged = previous == null
        ? asCoarse(fine, layout, coarseStart)
        : mergeCoarse(previous, fine, layout);

    TreeMap<String, HistoryState.Watermark> marks = new TreeMap<>(state.watermarks());
    for (ServerLoad s : fine.servers()) {
      marks.put(s.serverId(),
          new HistoryState.Watermark(s.session(), s.lastSeq(), fine.startMillis()));
    }
    long window = fine.startMillis() - layout.fineRetentionMillis() + 1;
    marks.values().removeIf(w -> w.bucketMillis() < window);
    // Whole coarse buckets of fine buckets leave together: every coarse bucket before the one
    // holding the oldest fine bucket still in the window. A window never moves back.
    long firstIn = -Math.floorDiv(-Math.max(0, window), layout.bucketMillis())
        * layout.bucketMillis();
    long fineFrom = Math.max(state.fineFromMillis(), layout.coarseStartOf(firstIn));
    long coarseFrom = Math.max(state.coarseFromMillis(),
        Math.max(0, coarseStart - layout.coarseRetentionMillis() + 1));
    return new HistoryUpdate(
        new HistoryState(layout, fine.startMillis(), fineFrom, coarseFrom, marks),
        fine, merged,
        fineFrom > state.fineFromMillis() ? fineFrom : -1,
        coarseFrom > state.coarseFromMillis() ? coarseFrom : -1);
  }

  /**
   * Validates an entry against the state without applying it.
   *
   * @return the entry's layout
   * @throws PlbException as {@link #apply} would
   */
  public static HistoryLayout check(HistoryState state, AppendLoadSamples entry) {
    if (entry.layout() == null) {
      throw PlbException.invalid("load samples carry no history layout");
    }
    HistoryLayout layout = entry.layout().check();
    LoadBucket b = entry.bucket();
    if (b == null) {
      throw PlbException.invalid("load samples carry no bucket");
    }
    String at = "load bucket at " + b.startMillis() + " ms";
    if (state.layout() != null && !state.layout().sameWidths(layout)) {
      throw PlbException.precondition(at + " uses " + layout.bucketMillis() + " ms buckets and "
          + layout.coarseBucketMillis() + " ms coarse buckets, but the history is laid out in "
          + state.layout().bucketMillis() + " ms and " + state.layout().coarseBucketMillis()
          + " ms buckets");
    }
    if (b.resolution() != Resolution.FINE || b.fineBuckets() != 1) {
      throw PlbException.invalid(at + ": entries carry one fine bucket");
    }
    if (b.widthMillis() != layout.bucketMillis()) {
      throw PlbException.invalid(at + " is " + b.widthMillis() + " ms wide; history.bucket is "
          + layout.bucketMillis() + " ms");
    }
    if (b.startMillis() < 0 || b.startMillis() % layout.bucketMillis() != 0) {
      throw PlbException.invalid(at + " does not start on a multiple of history.bucket ("
          + layout.bucketMillis() + " ms)");
    }
    if (b.startMillis() <= state.lastBucketMillis()) {
      throw PlbException.precondition(at + " is out of order: the history already holds the "
          + "bucket at " + state.lastBucketMillis() + " ms, and buckets are appended in time "
          + "order");
    }
    if (b.coveredMillis() < 1 || b.coveredMillis() > b.widthMillis()) {
      throw PlbException.invalid(at + " covers " + b.coveredMillis() + " ms; it must cover 1.."
          + b.widthMillis() + " ms");
    }
    String bad = SliceLoad.problem(b.slices());
    if (bad == null) {
      bad = b.hotKeys() == null ? "hot keys missing" : b.hotKeys().problem(layout.hotKeys());
    }
    if (bad == null) {
      bad = b.servers().isEmpty() ? "no server reported" : ServerLoad.problem(b.servers());
    }
    if (bad == null && b.servers().size() > MAX_SERVERS) {
      bad = b.servers().size() + " servers listed; at most " + MAX_SERVERS;
    }
    if (bad != null) {
      throw PlbException.invalid(at + ": " + bad);
    }
    return layout;
  }

  /** A fine bucket as the first content of its coarse bucket. */
  static LoadBucket asCoarse(LoadBucket fine, HistoryLayout layout, long coarseStart) {
    return new LoadBucket(Resolution.COARSE, coarseStart, layout.coarseBucketMillis(),
        fine.coveredMillis(), 1, fine.slices(),
        HotKeys.merge(List.of(fine.hotKeys().part(fine.slices())), layout.hotKeys()),
        fine.servers());
  }

  /** A coarse bucket with one more of its fine buckets merged in. */
  static LoadBucket mergeCoarse(LoadBucket coarse, LoadBucket fine, HistoryLayout layout) {
    List<SliceLoad> slices = new ArrayList<>(coarse.slices().size() + fine.slices().size());
    int i = 0;
    int j = 0;
    List<SliceLoad> a = coarse.slices();
    List<SliceLoad> b = fine.slices();
    while (i < a.size() || j < b.size()) {
      if (j >= b.size() || (i < a.size() && a.get(i).slice() < b.get(j).slice())) {
        slices.add(a.get(i++));
      } else if (i >= a.size() || b.get(j).slice() < a.get(i).slice()) {
        slices.add(b.get(j++));
      } else {
        slices.add(new SliceLoad(a.get(i).slice(), a.get(i).load().then(b.get(j).load())));
        i++;
        j++;
      }
    }
    Map<String, ServerLoad> servers = new TreeMap<>();
    for (ServerLoad s : coarse.servers()) {
      servers.put(s.serverId(), s);
    }
    for (ServerLoad s : fine.servers()) {
      servers.merge(s.serverId(), s, ServerLoad::then);
    }
    HotKeys hot = HotKeys.merge(
        List.of(coarse.hotKeys().part(coarse.slices()), fine.hotKeys().part(fine.slices())),
        layout.hotKeys());
    long covered = Math.min(coarse.widthMillis(), coarse.coveredMillis() + fine.coveredMillis());
    return new LoadBucket(Resolution.COARSE, coarse.startMillis(), coarse.widthMillis(), covered,
        coarse.fineBuckets() + 1, slices, hot, new ArrayList<>(servers.values()));
  }
}
