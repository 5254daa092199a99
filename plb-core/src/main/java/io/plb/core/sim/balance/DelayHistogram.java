package io.plb.core.sim.balance;

/**
 * A histogram of queueing delays weighted by messages, for percentiles. Delays below 1 ms count as
 * zero; above that, bins are spaced logarithmically, {@value #BINS_PER_DECADE} per decade up to
 * 10^7 s, so a percentile is within about 1 % of the exact value (it is interpolated linearly
 * inside its bin). Mass can be added as a point or spread uniformly over a delay interval (the
 * messages arriving while a fluid queue's delay changes linearly).
 *
 * <p>Not thread-safe; one per simulated strategy.
 */
public final class DelayHistogram {
  static final int BINS_PER_DECADE = 200;
  static final double MIN_DELAY = 1e-3;
  static final int DECADES = 10;
  private static final int BINS = BINS_PER_DECADE * DECADES;
  private static final double LOG_MIN = Math.log10(MIN_DELAY);

  private double zero;
  private final double[] bins = new double[BINS + 1]; // last bin: beyond the range
  private double total;

  /** Adds {@code mass} messages that wait {@code delay} seconds each. */
  public void addPoint(double delay, double mass) {
    if (mass <= 0) {
      return;
    }
    total += mass;
    if (delay < MIN_DELAY) {
      zero += mass;
    } else {
      bins[binOf(delay)] += mass;
    }
  }

  /** Adds {@code mass} messages whose delays are uniform between {@code d0} and {@code d1}. */
  public void addUniform(double d0, double d1, double mass) {
    if (mass <= 0) {
      return;
    }
    double lo = Math.min(d0, d1);
    double hi = Math.max(d0, d1);
    if (hi - lo <= 1e-12 * Math.max(1, hi)) {
      addPoint(lo, mass);
      return;
    }
    total += mass;
    double density = mass / (hi - lo);
    if (lo < MIN_DELAY) {
      double z = Math.min(hi, MIN_DELAY) - lo;
      zero += z * density;
      lo = MIN_DELAY;
      if (hi <= MIN_DELAY) {
        return;
      }
    }
    int b = binOf(lo);
    while (lo < hi) {
      double edge = b >= BINS ? Double.POSITIVE_INFINITY : lowerEdge(b + 1);
      double upper = Math.min(hi, edge);
      bins[b] += (upper - lo) * density;
      lo = upper;
      b++;
    }
  }

  /** Total mass added. */
  public double total() {
    return total;
  }

  /** Mass with a delay of at least {@code delay} seconds (bin-resolution estimate). */
  public double massAbove(double delay) {
    double sum = 0;
    int from = delay < MIN_DELAY ? 0 : binOf(delay);
    for (int b = from; b <= BINS; b++) {
      sum += bins[b];
    }
    return sum;
  }

  /** The {@code q}-quantile (0..1) of delay in seconds; 0 when empty. */
  public double quantile(double q) {
    if (total <= 0) {
      return 0;
    }
    double target = q * total;
    double cum = zero;
    if (cum >= target) {
      return 0;
    }
    for (int b = 0; b <= BINS; b++) {
      double next = cum + bins[b];
      if (next >= target && bins[b] > 0) {
        double lo = lowerEdge(b);
        double hi = b >= BINS ? lo : lowerEdge(b + 1);
        return lo + (hi - lo) * (target - cum) / bins[b];
      }
      cum = next;
    }
    return lowerEdge(BINS);
  }

  private static int binOf(double delay) {
    int b = (int) Math.floor((Math.log10(delay) - LOG_MIN) * BINS_PER_DECADE);
    // Guard against log rounding at an edge.
    if (b < BINS && b >= 0 && delay >= lowerEdge(b + 1)) {
      b++;
    } else if (b > 0 && b <= BINS && delay < lowerEdge(b)) {
      b--;
    }
    return Math.max(0, Math.min(BINS, b));
  }

  private static double lowerEdge(int b) {
    return Math.pow(10, LOG_MIN + (double) b / BINS_PER_DECADE);
  }
}
