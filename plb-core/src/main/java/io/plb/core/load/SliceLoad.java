package io.plb.core.load;

import io.plb.core.keyspace.Ring;
import java.util.List;

/** The load figures of one slice ({@link Ring#sliceOf}, 0..4095). Immutable. */
public record SliceLoad(int slice, LoadFigures load) {

  /**
   * Checks a list of slice figures as reports and history entries carry them: slices in
   * 0..4095, strictly increasing, every figure non-negative and not all zero.
   *
   * @return what is wrong, naming the first bad slice, or null
   */
  static String problem(List<SliceLoad> slices) {
    int previous = -1;
    for (SliceLoad s : slices) {
      if (s == null || s.load() == null) {
        return "a slice entry is empty";
      }
      if (s.slice() < 0 || s.slice() >= Ring.SLICES) {
        return "slice " + s.slice() + " is outside 0.." + (Ring.SLICES - 1);
      }
      if (s.slice() <= previous) {
        return "slices must be listed once each in increasing order; slice " + s.slice()
            + " follows slice " + previous;
      }
      String bad = s.load().problem();
      if (bad != null) {
        return "slice " + s.slice() + ": " + bad;
      }
      if (s.load().isZero()) {
        return "slice " + s.slice() + " has no load; only slices with load are listed";
      }
      previous = s.slice();
    }
    return null;
  }

  /** The figures of {@code slice} in a list sorted by slice, or null. */
  static LoadFigures find(List<SliceLoad> sorted, int slice) {
    int lo = 0;
    int hi = sorted.size() - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      int s = sorted.get(mid).slice();
      if (s < slice) {
        lo = mid + 1;
      } else if (s > slice) {
        hi = mid - 1;
      } else {
        return sorted.get(mid).load();
      }
    }
    return null;
  }
}
