package io.plb.core.forecast;

import java.util.Map;
import java.util.TreeMap;

/**
 * One {@link SeriesForecaster} per series of a fixed set (the 4096 ring slices, {@code
 * io.plb.core.keyspace.Ring#SLICES}), advanced together one bucket at a time, with a deterministic
 * refit schedule: series {@code i} refits when {@code bucket mod refitEvery == ⌊i · refitEvery /
 * size⌋}, so about {@code size / refitEvery} series refit per bucket and never all at once.
 *
 * <p>A series is created lazily, at its first non-zero value, starting from the zeros before it:
 * an idle slice costs no history, and its forecast is zero until then.
 *
 * <p>{@link #horizonRates} gives the planner's input for every series at once (mean and upper
 * quantile of the rate over the next steps) from forecasts issued during {@link #observe},
 * without allocating.
 *
 * <p>Not thread-safe: one owner (the leader's balancer thread, or the simulator) calls it. Pure.
 */
public final class ForecastBank {
  private final ForecasterConfig config;
  private final SeriesForecaster[] series;
  private long buckets;

  public ForecastBank(int size, ForecasterConfig config) {
    Checks.atLeast("size", size, 1);
    if (config == null) {
      throw new IllegalArgumentException("config must not be null");
    }
    this.config = config;
    this.series = new SeriesForecaster[size];
  }

  public int size() {
    return series.length;
  }

  public ForecasterConfig config() {
    return config;
  }

  /** Buckets observed so far. */
  public long buckets() {
    return buckets;
  }

  /** The refit phase of series {@code i}. */
  public int phase(int i) {
    return (int) ((long) i * config.refitEvery() / series.length);
  }

  /**
   * Takes one bucket: {@code values[i]} is series {@code i}'s rate. All values are checked before
   * any is applied.
   *
   * @throws IllegalArgumentException on a wrong length or a NaN, infinite or negative value
   */
  public void observe(double[] values) {
    if (values == null || values.length != series.length) {
      throw new IllegalArgumentException(
          "need " + series.length + " values, got " + (values == null ? "null" : values.length));
    }
    for (int i = 0; i < values.length; i++) {
      double v = values[i];
      if (!Double.isFinite(v) || v < 0) {
        throw new IllegalArgumentException(
            "value of series " + i + " must be a finite number >= 0, got " + v);
      }
    }
    for (int i = 0; i < values.length; i++) {
      SeriesForecaster s = series[i];
      if (s == null) {
        if (values[i] == 0) {
          continue;
        }
        s = new SeriesForecaster(config, phase(i), buckets);
        series[i] = s;
      }
      s.observe(values[i]);
    }
    buckets++;
  }

  /**
   * Loads {@code length} buckets of history into a bank that has seen none (a leader taking over
   * with stored history, a simulator warming up): {@code history.apply(i)} gives series {@code i}'s
   * values, oldest first, or null for a series that was idle throughout. Each non-idle series is
   * selected and fitted once ({@link SeriesForecaster#observeAll}).
   *
   * @throws IllegalArgumentException if the bank has observed buckets already, or a history has
   *     the wrong length or a bad value
   */
  public void loadHistory(int length, java.util.function.IntFunction<double[]> history) {
    if (buckets != 0) {
      throw new IllegalArgumentException("history can only be loaded into an empty bank");
    }
    Checks.atLeast("length", length, 1);
    // Built aside and installed only when every history was good.
    SeriesForecaster[] loaded = new SeriesForecaster[series.length];
    for (int i = 0; i < series.length; i++) {
      double[] h = history.apply(i);
      if (h == null) {
        continue;
      }
      if (h.length != length) {
        throw new IllegalArgumentException(
            "history of series " + i + " has " + h.length + " values, expected " + length);
      }
      boolean idle = true;
      for (double v : h) {
        if (v != 0) {
          idle = false;
          break;
        }
      }
      if (idle) {
        continue;
      }
      SeriesForecaster s = new SeriesForecaster(config, phase(i), 0);
      s.observeAll(h);
      loaded[i] = s;
    }
    System.arraycopy(loaded, 0, series, 0, series.length);
    buckets = length;
  }

  /** The forecaster of series {@code i}, or null while it has only seen zeros. */
  public SeriesForecaster series(int i) {
    return series[i];
  }

  /** Series with a forecaster (seen a non-zero value). */
  public int live() {
    int n = 0;
    for (SeriesForecaster s : series) {
      if (s != null) {
        n++;
      }
    }
    return n;
  }

  /** Series {@code i}'s forecast; zero (model {@code idle}) while it has only seen zeros. */
  public Forecast forecast(int i, int steps) {
    Checks.steps(steps);
    SeriesForecaster s = series[i];
    if (s == null) {
      double[] zero = new double[steps];
      return new Forecast(zero, zero, zero, config.coverage(), "idle");
    }
    return s.forecast(steps);
  }

  /**
   * For every series, the mean forecast rate over the next {@code steps} buckets ({@code <=
   * horizon}) into {@code mean[i]} and its {@code q} quantile ({@code q >= 0.5}, e.g. 0.9) into
   * {@code upper[i]}, taking the steps' errors as fully correlated (see {@link
   * Forecast#horizonQuantile}). Idle series get zero.
   */
  public void horizonRates(int steps, double q, double[] mean, double[] upper) {
    if (mean == null || upper == null || mean.length != series.length
        || upper.length != series.length) {
      throw new IllegalArgumentException("mean and upper must have length " + series.length);
    }
    if (steps < 1 || steps > config.horizon()) {
      throw new IllegalArgumentException(
          "steps must be in [1, horizon = " + config.horizon() + "], got " + steps);
    }
    if (!(q >= 0.5 && q < 1)) {
      throw new IllegalArgumentException("quantile must be in [0.5, 1), got " + q);
    }
    double ratio = SeriesForecaster.quantileRatio(config, q);
    double[] out = new double[2];
    for (int i = 0; i < series.length; i++) {
      SeriesForecaster s = series[i];
      if (s == null) {
        mean[i] = 0;
        upper[i] = 0;
      } else {
        s.horizonRateAt(steps, ratio, out);
        mean[i] = out[0];
        upper[i] = out[1];
      }
    }
  }

  /** Re-selects and refits every live series now (off schedule). */
  public void refitAll() {
    for (SeriesForecaster s : series) {
      if (s != null) {
        s.refit();
      }
    }
  }

  /** How many live series each model serves now (fallbacks counted under the reactive model). */
  public Map<String, Integer> servedModels() {
    Map<String, Integer> counts = new TreeMap<>();
    for (SeriesForecaster s : series) {
      if (s != null) {
        counts.merge(s.currentModel(), 1, Integer::sum);
      }
    }
    return counts;
  }

  /** Live series in fallback now. */
  public int inFallback() {
    int n = 0;
    for (SeriesForecaster s : series) {
      if (s != null && s.inFallback()) {
        n++;
      }
    }
    return n;
  }
}
