package io.plb.core.forecast;

import java.util.ArrayList;
import java.util.List;

/**
 * How a {@link SeriesForecaster} (and a {@link ForecastBank} of them) forecasts, selects and
 * tracks. Validated on construction: every bad value raises an {@link IllegalArgumentException}
 * naming the field.
 *
 * @param candidates models to choose from at each refit
 * @param reactive the reactive estimate, served when no candidate beats it or in fallback
 * @param season season of the seasonal-naive MASE scale (a day of buckets, usually)
 * @param horizon steps forecast, backtested and tracked (the planner's horizon in buckets)
 * @param refitEvery buckets between refits of one series
 * @param history buckets of history a series keeps (its {@link SeriesBuffer} capacity)
 * @param backtest buckets at the end of the history used by the selection backtest
 * @param backtestStride buckets between backtest origins
 * @param selectionMargin fraction by which a candidate must beat the reactive estimate
 * @param refitChosen whether the chosen model is fitted again on the whole history
 * @param accuracyHalfLife half-life, in buckets, of the realised-accuracy averages
 * @param fallbackMargin hysteresis of the fallback: enter when the model's realised error exceeds
 *     the reactive estimate's by this fraction, leave when it is below by this fraction
 * @param minEvaluated buckets after a refit before the fallback may engage
 * @param coverage central coverage of the intervals served (0.8: 10 %..90 %)
 */
public record ForecasterConfig(
    List<ForecastModel> candidates,
    ForecastModel reactive,
    int season,
    int horizon,
    int refitEvery,
    int history,
    int backtest,
    int backtestStride,
    double selectionMargin,
    boolean refitChosen,
    int accuracyHalfLife,
    double fallbackMargin,
    int minEvaluated,
    double coverage) {

  public ForecasterConfig {
    if (candidates == null) {
      throw new IllegalArgumentException("candidates must not be null");
    }
    candidates = List.copyOf(candidates);
    if (reactive == null) {
      throw new IllegalArgumentException("reactive must not be null");
    }
    Checks.season("season", season);
    Checks.atLeast("horizon", horizon, 1);
    Checks.atLeast("refitEvery", refitEvery, 1);
    Checks.atLeast("backtest", backtest, 1);
    Checks.atLeast("backtestStride", backtestStride, 1);
    Checks.unit("selectionMargin", selectionMargin, 0, 0.5);
    Checks.atLeast("accuracyHalfLife", accuracyHalfLife, 1);
    Checks.unit("fallbackMargin", fallbackMargin, 0, 0.5);
    Checks.atLeast("minEvaluated", minEvaluated, 0);
    Checks.coverage(coverage);
    int lookback = reactive.lookback();
    for (ForecastModel m : candidates) {
      lookback = Math.max(lookback, m.lookback());
    }
    if (history < Math.max(2, lookback + horizon + 1)) {
      throw new IllegalArgumentException(
          "history must be >= " + Math.max(2, lookback + horizon + 1)
              + " (the models' lookback plus the horizon), got " + history);
    }
  }

  /**
   * The standard configuration for buckets of {@code 1440 / bucketsPerDay} minutes. Candidates:
   * seasonal naive (one day) and two {@link SeasonalLevel} models, one on one, two and three days
   * and one and two weeks back, one on the days alone (for the first two weeks), each with a
   * four-hour level window, a ±4-minute smoothing and a regression on the last 24 minutes of
   * deviations. Reactive estimate: a fitted EWMA. Refit every three hours; two weeks and two days
   * of history; a one-day backtest; realised accuracy with a two-hour half-life.
   *
   * <p>Holt–Winters and trend + Fourier are left out here: on the flight traces they were chosen
   * for few series and did not lower the error, at more than twice the refit cost; {@link #full}
   * includes them.
   *
   * <p>Memory: a series holds {@code history} floats, 23,040 at one-minute buckets (92 KB).
   */
  public static ForecasterConfig defaults(int bucketsPerDay, int horizon) {
    return standard(bucketsPerDay, horizon, false);
  }

  /** {@link #defaults} plus Holt–Winters (daily season) and trend + Fourier (daily, weekly). */
  public static ForecasterConfig full(int bucketsPerDay, int horizon) {
    return standard(bucketsPerDay, horizon, true);
  }

  private static ForecasterConfig standard(int bucketsPerDay, int horizon, boolean full) {
    Checks.atLeast("bucketsPerDay", bucketsPerDay, 4);
    Checks.atLeast("horizon", horizon, 1);
    int day = bucketsPerDay;
    int week = 7 * day;
    int hour = Math.max(1, day / 24);
    int smooth = day / 360; // ± 4 min at one-minute buckets
    int arLags = Math.max(2, day / 60); // the last 24 minutes at one-minute buckets
    if (day < horizon + smooth) {
      throw new IllegalArgumentException(
          "horizon must be <= a day of buckets minus the smoothing (" + (day - smooth) + "), got "
              + horizon);
    }
    List<ForecastModel> candidates = new ArrayList<>();
    candidates.add(new SeasonalNaive(day));
    candidates.add(new SeasonalLevel(
        new int[] {day, 2 * day, 3 * day, week, 2 * week}, 4 * hour, smooth, horizon, arLags, 2.0,
        2 * day));
    candidates.add(new SeasonalLevel(
        new int[] {day, 2 * day, 3 * day}, 4 * hour, smooth, horizon, arLags, 2.0, 2 * day));
    if (full) {
      candidates.add(new HoltWinters(day));
      candidates.add(new FourierRegression(
          new int[] {day, week}, new int[] {Math.min(12, (day - 1) / 2), 3}, true, 2 * week));
    }
    return new ForecasterConfig(
        candidates,
        Ewma.fitted(day),
        day,
        horizon,
        Math.max(1, day / 8),
        2 * week + 2 * day,
        day,
        1,
        0.02,
        false,
        2 * hour,
        0.05,
        hour,
        ForecastModel.DEFAULT_COVERAGE);
  }

  /** The same configuration with other candidates. */
  public ForecasterConfig withCandidates(List<ForecastModel> newCandidates) {
    return new ForecasterConfig(newCandidates, reactive, season, horizon, refitEvery, history,
        backtest, backtestStride, selectionMargin, refitChosen, accuracyHalfLife, fallbackMargin,
        minEvaluated, coverage);
  }

  /** The same configuration with another refit interval. */
  public ForecasterConfig withRefitEvery(int buckets) {
    return new ForecasterConfig(candidates, reactive, season, horizon, buckets, history,
        backtest, backtestStride, selectionMargin, refitChosen, accuracyHalfLife, fallbackMargin,
        minEvaluated, coverage);
  }

  /** The same configuration with another stride between backtest origins. */
  public ForecasterConfig withBacktestStride(int buckets) {
    return new ForecasterConfig(candidates, reactive, season, horizon, refitEvery, history,
        backtest, buckets, selectionMargin, refitChosen, accuracyHalfLife, fallbackMargin,
        minEvaluated, coverage);
  }

  /** The same configuration keeping another amount of history. */
  public ForecasterConfig withHistory(int buckets) {
    return new ForecasterConfig(candidates, reactive, season, horizon, refitEvery, buckets,
        backtest, backtestStride, selectionMargin, refitChosen, accuracyHalfLife, fallbackMargin,
        minEvaluated, coverage);
  }

  ModelSelector selector() {
    return new ModelSelector(candidates, reactive, season, horizon, backtest, backtestStride,
        selectionMargin, refitChosen);
  }
}
