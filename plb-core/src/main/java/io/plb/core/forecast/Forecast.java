package io.plb.core.forecast;

import java.util.Arrays;
import org.apache.commons.math3.special.Erf;

/**
 * Point forecasts and a central prediction interval for the next {@code steps} buckets of one
 * series. Index {@code i} of each array is step {@code i + 1}, the bucket {@code i} after the
 * newest observation.
 *
 * <p>Invariants (checked on construction): the three arrays have the same non-zero length; every
 * value is finite; {@code 0 <= lower[i] <= mean[i] <= upper[i]}; {@code coverage} is in (0, 1).
 * The interval {@code [lower, upper]} is meant to hold the actual value with probability {@code
 * coverage} (0.8 = the 10 % and 90 % quantiles). Arrays are copied in and out: a forecast is
 * immutable.
 *
 * <p>The interval assumes a normal forecast error with mean zero; {@link #quantile} reads other
 * quantiles off it under the same assumption. Where the raw forecast was below zero the mean and
 * lower bound are clamped to zero, so quantiles there are only approximate (still never negative).
 */
public record Forecast(double[] mean, double[] lower, double[] upper, double coverage, String model) {

  public Forecast {
    if (model == null || model.isEmpty()) {
      throw new IllegalArgumentException("model name must not be empty");
    }
    Checks.coverage(coverage);
    if (mean == null || lower == null || upper == null) {
      throw new IllegalArgumentException("mean, lower and upper must not be null");
    }
    if (mean.length == 0 || lower.length != mean.length || upper.length != mean.length) {
      throw new IllegalArgumentException(
          "mean, lower and upper must have the same non-zero length, got " + mean.length + ", "
              + lower.length + ", " + upper.length);
    }
    mean = mean.clone();
    lower = lower.clone();
    upper = upper.clone();
    for (int i = 0; i < mean.length; i++) {
      double m = mean[i];
      double lo = lower[i];
      double hi = upper[i];
      if (!(Double.isFinite(m) && Double.isFinite(lo) && Double.isFinite(hi))) {
        throw new IllegalArgumentException("step " + (i + 1) + ": values must be finite");
      }
      if (!(0 <= lo && lo <= m && m <= hi)) {
        throw new IllegalArgumentException(
            "step " + (i + 1) + ": need 0 <= lower <= mean <= upper, got " + lo + ", " + m + ", "
                + hi);
      }
    }
  }

  /**
   * Builds a forecast from raw point forecasts (which may be negative) and the standard deviation
   * of the error at each step, under a normal error: the interval is {@code raw ± z·sigma} with
   * {@code z} the {@code (1 + coverage) / 2} normal quantile, then everything is clamped at zero.
   */
  public static Forecast fromRaw(String model, double[] raw, double[] sigma, double coverage) {
    Checks.coverage(coverage);
    if (raw.length != sigma.length) {
      throw new IllegalArgumentException("raw and sigma must have the same length");
    }
    double z = z((1 + coverage) / 2);
    int n = raw.length;
    double[] mean = new double[n];
    double[] lower = new double[n];
    double[] upper = new double[n];
    for (int i = 0; i < n; i++) {
      double r = raw[i];
      double s = sigma[i];
      if (!Double.isFinite(r) || !(s >= 0) || Double.isInfinite(s)) {
        throw new IllegalStateException(
            model + ": non-finite forecast at step " + (i + 1) + " (" + r + " ± " + s + ")");
      }
      mean[i] = Math.max(0, r);
      lower[i] = Math.min(mean[i], Math.max(0, r - z * s));
      upper[i] = Math.max(mean[i], r + z * s);
    }
    return new Forecast(mean, lower, upper, coverage, model);
  }

  /** The standard normal quantile at probability {@code p} in (0, 1). */
  public static double z(double p) {
    if (!(p > 0 && p < 1)) {
      throw new IllegalArgumentException("probability must be in (0, 1), got " + p);
    }
    return Math.sqrt(2) * Erf.erfInv(2 * p - 1);
  }

  public int steps() {
    return mean.length;
  }

  @Override
  public double[] mean() {
    return mean.clone();
  }

  @Override
  public double[] lower() {
    return lower.clone();
  }

  @Override
  public double[] upper() {
    return upper.clone();
  }

  /** The point forecast at array index {@code step} (0 = the next bucket). */
  public double mean(int step) {
    return mean[step];
  }

  public double lower(int step) {
    return lower[step];
  }

  public double upper(int step) {
    return upper[step];
  }

  /**
   * The {@code q} quantile of the value at array index {@code step} (0 = the next bucket),
   * assuming a normal error whose spread is read off the interval: exact at {@code q = (1 ±
   * coverage) / 2}, never negative. The planner uses {@code q = 0.9}.
   */
  public double quantile(int step, double q) {
    if (!(q > 0 && q < 1)) {
      throw new IllegalArgumentException("quantile must be in (0, 1), got " + q);
    }
    double zc = z((1 + coverage) / 2);
    double m = mean[step];
    if (q == 0.5) {
      return m;
    }
    if (q > 0.5) {
      return Math.max(0, m + (upper[step] - m) * z(q) / zc);
    }
    return Math.max(0, m - (m - lower[step]) * z(1 - q) / zc);
  }

  /** The mean rate over all steps. */
  public double horizonMean() {
    double s = 0;
    for (double m : mean) {
      s += m;
    }
    return s / mean.length;
  }

  /**
   * The {@code q} quantile of the mean rate over all steps, taking the errors of the steps as fully
   * correlated (a level error persists over a short horizon): the average of the per-step
   * quantiles. This is an upper bound on that quantile for {@code q >= 0.5}.
   */
  public double horizonQuantile(double q) {
    double s = 0;
    for (int i = 0; i < mean.length; i++) {
      s += quantile(i, q);
    }
    return s / mean.length;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Forecast f
        && Arrays.equals(mean, f.mean)
        && Arrays.equals(lower, f.lower)
        && Arrays.equals(upper, f.upper)
        && Double.compare(coverage, f.coverage) == 0
        && model.equals(f.model);
  }

  @Override
  public int hashCode() {
    int h = Arrays.hashCode(mean);
    h = 31 * h + Arrays.hashCode(lower);
    h = 31 * h + Arrays.hashCode(upper);
    h = 31 * h + Double.hashCode(coverage);
    return 31 * h + model.hashCode();
  }

  @Override
  public String toString() {
    return "Forecast[" + model + ", coverage " + coverage + ", mean " + Arrays.toString(mean)
        + ", lower " + Arrays.toString(lower) + ", upper " + Arrays.toString(upper) + "]";
  }
}
