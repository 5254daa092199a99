package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * The planner's view of future load: how much cost per second each part of the ring is predicted
 * to bring over the planning horizon, as a mean and as an upper quantile ({@code
 * balancer.quantile}).
 *
 * <p>The ring is cut into <em>segments</em> (the 4096 slices, the current ranges, or both cut
 * together); a segment's predicted rate is spread evenly over its hashes. Tracked <em>hot keys</em>
 * come on top as point loads at their hash: a segment's figures are the load of its keys
 * <em>other than</em> the listed hot keys (DESIGN §2: the load of a range is the sum of its slices,
 * pro rata for a partial slice, with tracked hot keys counted where they fall). So the load of any
 * range, and the point that halves it, can be computed however the ranges are cut.
 *
 * <p>Built by the leader from forecasts, and by the simulator from its strategy. Immutable and
 * thread-safe; every query is O(log n) in the number of segments and hot keys.
 */
public final class LoadOutlook {
  /** A tracked hot key: its hash and its predicted cost rate (mean and upper quantile). */
  public record HotKey(long hash, double mean, double upper) {
    public HotKey {
      checkRates("hot key " + Ring.hex(hash), mean, upper);
    }
  }

  private final long[] starts;
  private final double[] cumMean; // cumMean[i]: mean rate of segments before i; length n + 1
  private final double[] cumUpper;
  private final double[] widths;
  private final long[] hotHashes; // sorted unsigned, distinct
  private final double[] hotCumMean; // length h + 1
  private final double[] hotCumUpper;
  private final List<HotKey> hotKeys;

  private LoadOutlook(long[] starts, double[] mean, double[] upper, List<HotKey> hot) {
    int n = starts.length;
    this.starts = starts;
    this.cumMean = new double[n + 1];
    this.cumUpper = new double[n + 1];
    this.widths = new double[n];
    for (int i = 0; i < n; i++) {
      cumMean[i + 1] = cumMean[i] + mean[i];
      cumUpper[i + 1] = cumUpper[i] + upper[i];
      widths[i] = Ring.width(starts[i], i + 1 < n ? starts[i + 1] : Ring.RING_END);
    }
    List<HotKey> sorted = new ArrayList<>(hot);
    sorted.sort(Comparator.comparing(HotKey::hash, Long::compareUnsigned));
    List<HotKey> merged = new ArrayList<>(sorted.size());
    for (HotKey k : sorted) { // one entry per hash: the same key reported twice adds up
      int last = merged.size() - 1;
      if (last >= 0 && merged.get(last).hash() == k.hash()) {
        HotKey p = merged.get(last);
        merged.set(last, new HotKey(k.hash(), p.mean() + k.mean(), p.upper() + k.upper()));
      } else {
        merged.add(k);
      }
    }
    int h = merged.size();
    this.hotHashes = new long[h];
    this.hotCumMean = new double[h + 1];
    this.hotCumUpper = new double[h + 1];
    for (int i = 0; i < h; i++) {
      HotKey k = merged.get(i);
      hotHashes[i] = k.hash();
      hotCumMean[i + 1] = hotCumMean[i] + k.mean();
      hotCumUpper[i + 1] = hotCumUpper[i] + k.upper();
    }
    this.hotKeys = List.copyOf(merged);
  }

  /**
   * An outlook per slice: {@code mean[i]} and {@code upper[i]} are the predicted rates of slice
   * {@code i} (hashes whose top 12 bits are {@code i}, see {@link Ring#sliceOf}) without the hot
   * keys, which are listed apart.
   */
  public static LoadOutlook ofSlices(double[] mean, double[] upper, List<HotKey> hotKeys) {
    if (mean.length != Ring.SLICES || upper.length != Ring.SLICES) {
      throw new IllegalArgumentException(
          "a slice outlook needs " + Ring.SLICES + " means and upper quantiles (got "
              + mean.length + " and " + upper.length + ")");
    }
    long[] starts = new long[Ring.SLICES];
    for (int i = 0; i < Ring.SLICES; i++) {
      starts[i] = Ring.sliceStart(i);
    }
    return ofSegments(starts, mean, upper, hotKeys);
  }

  /**
   * An outlook over arbitrary segments: segment {@code i} is {@code [starts[i], starts[i+1])}, the
   * last one running to the end of the ring. {@code starts[0]} must be 0 and the starts strictly
   * increasing (unsigned).
   */
  public static LoadOutlook ofSegments(
      long[] starts, double[] mean, double[] upper, List<HotKey> hotKeys) {
    Objects.requireNonNull(hotKeys, "hotKeys");
    int n = starts.length;
    if (n == 0 || mean.length != n || upper.length != n) {
      throw new IllegalArgumentException(
          "an outlook needs one mean and one upper quantile per segment, and at least one segment"
              + " (got " + n + " starts, " + mean.length + " means, " + upper.length + " uppers)");
    }
    if (starts[0] != 0L) {
      throw new IllegalArgumentException(
          "the first segment must start at 0 (got " + Ring.hex(starts[0]) + ")");
    }
    for (int i = 0; i < n; i++) {
      if (i > 0 && Long.compareUnsigned(starts[i], starts[i - 1]) <= 0) {
        throw new IllegalArgumentException(
            "segment starts must increase: " + Ring.hex(starts[i]) + " follows "
                + Ring.hex(starts[i - 1]));
      }
      checkRates("segment " + i + " at " + Ring.hex(starts[i]), mean[i], upper[i]);
    }
    return new LoadOutlook(starts.clone(), mean.clone(), upper.clone(), hotKeys);
  }

  /**
   * An outlook per range: {@code mean[i]} and {@code upper[i]} are the predicted rates of
   * {@code ranges.get(i)}, spread evenly over it. The ranges must cover the ring in order.
   */
  public static LoadOutlook ofRanges(
      List<BalanceRange> ranges, double[] mean, double[] upper, List<HotKey> hotKeys) {
    long[] starts = new long[ranges.size()];
    for (int i = 0; i < starts.length; i++) {
      BalanceRange r = ranges.get(i);
      long expected = i == 0 ? 0L : ranges.get(i - 1).end();
      if (r.start() != expected || (i > 0 && expected == Ring.RING_END)) {
        throw new IllegalArgumentException(
            "ranges must cover the ring in order: " + r.rangeText() + " does not start at "
                + Ring.hex(expected));
      }
      starts[i] = r.start();
    }
    if (!ranges.isEmpty() && ranges.get(ranges.size() - 1).end() != Ring.RING_END) {
      throw new IllegalArgumentException(
          "ranges must cover the ring: the last one ends at "
              + Ring.hexEnd(ranges.get(ranges.size() - 1).end()));
    }
    return ofSegments(starts, mean, upper, hotKeys);
  }

  /** The same predicted rate on every hash (mostly for tests and tools). */
  public static LoadOutlook uniform(double mean, double upper) {
    return ofSegments(new long[] {0L}, new double[] {mean}, new double[] {upper}, List.of());
  }

  private static void checkRates(String what, double mean, double upper) {
    if (!(mean >= 0) || Double.isInfinite(mean) || !(upper >= mean) || Double.isInfinite(upper)) {
      throw new IllegalArgumentException(
          what + ": predicted rates must be finite with 0 <= mean <= upper (got mean " + mean
              + ", upper " + upper + ")");
    }
  }

  /** Predicted mean cost rate of {@code [start, end)}. */
  public double mean(long start, long end) {
    return Math.max(0.0, cumulative(end, true, true) - cumulative(start, false, true));
  }

  /** Predicted upper-quantile cost rate of {@code [start, end)}. */
  public double upper(long start, long end) {
    return Math.max(0.0, cumulative(end, true, false) - cumulative(start, false, false));
  }

  /**
   * The predicted rates of every range of a map in one sweep, O(n + m): range {@code i} is
   * {@code [starts[i], starts[i+1])}, the last one running to the end of the ring. The same
   * figures as {@link #mean} and {@link #upper} range by range.
   *
   * @param starts the ranges' starts, strictly increasing (unsigned)
   */
  public void rangeRates(long[] starts, double[] meanOut, double[] upperOut) {
    int n = starts.length;
    int seg = 0;
    int hot = 0;
    double prevMean = 0;
    double prevUpper = 0;
    for (int i = 0; i <= n; i++) {
      double cm;
      double cu;
      if (i == n) {
        cm = totalMean();
        cu = totalUpper();
      } else {
        long pos = starts[i];
        while (seg + 1 < this.starts.length
            && Long.compareUnsigned(this.starts[seg + 1], pos) <= 0) {
          seg++;
        }
        while (hot < hotHashes.length && Long.compareUnsigned(hotHashes[hot], pos) < 0) {
          hot++;
        }
        double frac = Ring.unsignedToDouble(pos - this.starts[seg]) / widths[seg];
        cm = cumMean[seg] + (cumMean[seg + 1] - cumMean[seg]) * frac + hotCumMean[hot];
        cu = cumUpper[seg] + (cumUpper[seg + 1] - cumUpper[seg]) * frac + hotCumUpper[hot];
      }
      if (i > 0) {
        meanOut[i - 1] = Math.max(0.0, cm - prevMean);
        upperOut[i - 1] = Math.max(0.0, cu - prevUpper);
      }
      prevMean = cm;
      prevUpper = cu;
    }
  }

  /** Predicted mean cost rate of the whole ring. */
  public double totalMean() {
    return cumMean[starts.length] + hotCumMean[hotHashes.length];
  }

  /** Predicted upper-quantile cost rate of the whole ring (the sum over segments and hot keys). */
  public double totalUpper() {
    return cumUpper[starts.length] + hotCumUpper[hotHashes.length];
  }

  /** The hot keys, by hash, one per hash. */
  public List<HotKey> hotKeys() {
    return hotKeys;
  }

  /** The hot key with the largest upper rate inside {@code [start, end)}, or null if none. */
  public HotKey hottestKey(long start, long end) {
    int from = hotIndex(start, false);
    int to = hotIndex(end, true);
    HotKey best = null;
    for (int i = from; i < to; i++) {
      HotKey k = hotKeys.get(i);
      if (best == null || k.upper() > best.upper()) {
        best = k;
      }
    }
    return best;
  }

  /**
   * The hash that halves the predicted upper-quantile load of {@code [start, end)}: a point
   * strictly inside the range ({@link Ring#strictlyInside}) so that {@code [start, at)} holds as
   * close to half the load as a cut between two hashes can. When the range has no predicted load,
   * the middle of the range is returned. A hot key is one hash, so it always ends up whole on one
   * side.
   *
   * @throws IllegalArgumentException if the range holds a single hash
   */
  public long splitPoint(long start, long end) {
    long last = end - 1; // the range's last hash; end 0 (2^64) gives 2^64 - 1
    if (last == start) {
      throw new IllegalArgumentException(
          "range " + Ring.formatRange(start, end) + " holds one hash and cannot be split");
    }
    double base = cumulative(start, false, false);
    double total = cumulative(end, true, false) - base;
    long lo = start + 1;
    if (!(total > 0)) {
      return lo + ((last - lo) >>> 1);
    }
    double target = base + total / 2;
    long hi = last;
    while (lo != hi) { // smallest x in [start + 1, last] with load of [start, x) >= half
      long mid = lo + ((hi - lo) >>> 1);
      if (cumulative(mid, false, false) >= target) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    long at = lo;
    if (at != start + 1) { // the cut one hash earlier may be closer to the half
      double here = Math.abs(cumulative(at, false, false) - target);
      double before = Math.abs(cumulative(at - 1, false, false) - target);
      if (before <= here) {
        at = at - 1;
      }
    }
    return at;
  }

  /**
   * The predicted rate of everything before {@code position}; {@code isEnd} reads 0 as 2^64 (the
   * end of the ring) rather than as the ring's first hash.
   */
  private double cumulative(long position, boolean isEnd, boolean mean) {
    if (isEnd && position == Ring.RING_END) {
      return mean ? totalMean() : totalUpper();
    }
    int i = segmentOf(position);
    double[] cum = mean ? cumMean : cumUpper;
    double segment = cum[i + 1] - cum[i];
    double frac = Ring.unsignedToDouble(position - starts[i]) / widths[i];
    double hot = (mean ? hotCumMean : hotCumUpper)[hotIndex(position, false)];
    return cum[i] + segment * frac + hot;
  }

  /** The segment holding {@code position}: the last i with starts[i] <= position (unsigned). */
  private int segmentOf(long position) {
    int lo = 0;
    int hi = starts.length - 1;
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (Long.compareUnsigned(starts[mid], position) <= 0) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** How many hot keys lie before {@code position} (all of them for the end of the ring). */
  private int hotIndex(long position, boolean isEnd) {
    if (isEnd && position == Ring.RING_END) {
      return hotHashes.length;
    }
    int lo = 0;
    int hi = hotHashes.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (Long.compareUnsigned(hotHashes[mid], position) < 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  @Override
  public String toString() {
    return "LoadOutlook[" + starts.length + " segments, " + hotHashes.length + " hot keys, mean "
        + totalMean() + ", upper " + totalUpper() + "]";
  }
}
