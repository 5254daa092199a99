package io.plb.core.forecast;

/**
 * A forecasting method for one equally spaced series of rates (one value per bucket, oldest
 * first). A model is an immutable description (season lengths, fixed or fitted parameters) and is
 * safe to share between threads and series; {@link #fit} turns it into a {@link FittedModel}, the
 * stateful forecaster of one series, which then follows new observations cheaply until the next
 * refit.
 *
 * <p>Implementations: {@link SeasonalNaive} (the baseline), {@link Ewma} (the reactive
 * estimate), {@link HoltWinters}, {@link FourierRegression}, {@link SeasonalLevel}.
 */
public interface ForecastModel {
  /** The interval coverage used when none is given: a 10 %..90 % interval. */
  double DEFAULT_COVERAGE = 0.8;

  /** A short name that identifies the model and its shape, e.g. {@code holt-winters/1440}. */
  String name();

  /** The fewest observations {@link #fit} accepts. */
  int minHistory();

  /**
   * How far back, from the newest observation, the fitted model reads the series while it follows
   * it: a {@link SeriesBuffer} serving it must hold at least {@code lookback() + 1} values.
   */
  int lookback();

  /**
   * Fits the model to {@code series[from, to)} and returns its state at {@code to} (the next
   * {@link FittedModel#advance} consumes {@code series.get(to)}). The fitted model may read values
   * of the series before {@code to} later, within {@link #lookback()}.
   *
   * @throws IllegalArgumentException if the range is not held by the series or is shorter than
   *     {@link #minHistory()}
   */
  FittedModel fit(SeriesBuffer series, long from, long to);

  /** Fits to {@code history} and forecasts {@code steps} buckets with the default coverage. */
  default Forecast forecast(double[] history, int steps) {
    return forecast(history, steps, DEFAULT_COVERAGE);
  }

  /**
   * Fits to {@code history} (oldest first, every value finite and {@code >= 0}) and forecasts the
   * next {@code steps} buckets.
   *
   * @throws IllegalArgumentException if the history is null, empty, shorter than {@link
   *     #minHistory()} or holds NaN, infinite or negative values, or steps or coverage are invalid
   */
  default Forecast forecast(double[] history, int steps, double coverage) {
    Checks.history(history, name(), minHistory());
    Checks.steps(steps);
    Checks.coverage(coverage);
    SeriesBuffer buffer = SeriesBuffer.of(history);
    return fit(buffer, 0, history.length).forecast(steps, coverage);
  }
}
