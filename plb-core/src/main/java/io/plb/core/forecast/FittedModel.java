package io.plb.core.forecast;

import java.util.Map;

/**
 * A model fitted to one series, positioned at a bucket: {@link #time()} is the index of the next
 * observation it will consume. Its parameters stay fixed until the series is fitted again; {@link
 * #advance()} updates its state with the next observation in O(1) or close to it.
 *
 * <p>Not thread-safe; owned by one series. A fitted model reads the {@link SeriesBuffer} it was
 * fitted on, only at indices below {@link #time()} and within its model's lookback.
 */
public interface FittedModel {
  String name();

  /** Index of the next observation to consume. */
  long time();

  /** Consumes {@code series.get(time())}; the series must already hold it. */
  void advance();

  /** Consumes observations until {@code time() == t}. */
  default void advanceTo(long t) {
    while (time() < t) {
      advance();
    }
  }

  /**
   * Writes the raw point forecasts for buckets {@code time() .. time() + steps - 1} (step 1 ..
   * steps) into {@code out[0 .. steps)}. Raw forecasts may be negative; {@link #forecast} clamps.
   */
  void forecastMean(int steps, double[] out);

  /**
   * The standard deviation of the forecast error at {@code step} (1-based), from the model's
   * in-sample residuals, under the model's own error assumptions (stated by each implementation).
   */
  double sigma(int step);

  /**
   * The fitted parameters and current state by name (e.g. {@code alpha}, {@code level}), for
   * diagnostics and tests; empty when the model has none worth showing.
   */
  default Map<String, Double> parameters() {
    return Map.of();
  }

  /** The forecast for the next {@code steps} buckets with an interval of the given coverage. */
  default Forecast forecast(int steps, double coverage) {
    Checks.steps(steps);
    double[] raw = new double[steps];
    forecastMean(steps, raw);
    double[] sigma = new double[steps];
    for (int i = 0; i < steps; i++) {
      sigma[i] = sigma(i + 1);
    }
    return Forecast.fromRaw(name(), raw, sigma, coverage);
  }
}
