package io.plb.core.load;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The load of the whole cluster over one history bucket: per slice (only slices with load), the
 * hot keys, and per queue server its totals.
 *
 * <p>{@code coveredMillis} is how much of the bucket's width the figures cover: less than the
 * width for a leader's first bucket after it took over mid-bucket, or — in a coarse bucket — when
 * some fine buckets are missing (no leader, or no queue server reported). A forecaster can scale a
 * partial bucket by {@code widthMillis / coveredMillis}. {@code fineBuckets} is how many fine
 * buckets a coarse bucket holds (1 for a fine bucket).
 *
 * <p>Immutable; slices are sorted by slice, servers by id.
 */
public record LoadBucket(
    Resolution resolution,
    long startMillis,
    long widthMillis,
    long coveredMillis,
    int fineBuckets,
    List<SliceLoad> slices,
    HotKeys hotKeys,
    List<ServerLoad> servers) {

  public LoadBucket {
    List<SliceLoad> s = new ArrayList<>(slices);
    s.sort(Comparator.comparingInt(SliceLoad::slice));
    slices = List.copyOf(s);
    List<ServerLoad> v = new ArrayList<>(servers);
    v.sort(Comparator.comparing(ServerLoad::serverId));
    servers = List.copyOf(v);
  }

  /** The end of the bucket (exclusive). */
  public long endMillis() {
    return startMillis + widthMillis;
  }

  /** The figures of one slice in this bucket (zero when the slice had no load). */
  public LoadFigures slice(int slice) {
    LoadFigures f = SliceLoad.find(slices, slice);
    return f == null ? LoadFigures.ZERO : f;
  }

  /** The totals of one server, or null when it did not report in this bucket. */
  public ServerLoad server(String id) {
    for (ServerLoad s : servers) {
      if (s.serverId().equals(id)) {
        return s;
      }
    }
    return null;
  }

  /** The sum over all slices ({@link LoadFigures#plus}). */
  public LoadFigures total() {
    LoadFigures t = LoadFigures.ZERO;
    for (SliceLoad s : slices) {
      t = t.plus(s.load());
    }
    return t;
  }

  /** The rows this bucket takes in the history store: one for the bucket, one per slice. */
  public int rows() {
    return 1 + slices.size();
  }
}
