package io.plb.core.forecast;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Picks a model for one series by rolling-origin backtest. Every candidate, and the reactive
 * estimate, is fitted on the history up to the last {@code backtest} buckets; then, walking
 * through those buckets, each one forecasts {@code horizon} steps from every {@code stride}-th
 * origin and is scored on its (non-negative) forecasts against what happened. A model fitted once
 * and rolled forward, rather than refitted at every origin, is what {@link SeriesForecaster}
 * serves between refits, and it keeps the backtest at one fit per candidate.
 *
 * <p>Scores: MAE over all origins and steps; MASE, that MAE divided by the in-sample mean absolute
 * error of seasonal naive (one season back) over the fitting part; WAPE, the absolute errors over
 * the absolute actuals. The candidate with the lowest MAE is chosen if it beats the reactive
 * estimate by more than {@code margin} (a fraction); otherwise the reactive estimate is chosen —
 * a seasonal model must earn its place. Ties go to the earlier candidate. Deterministic.
 *
 * <p>The per-step backtest errors also give each candidate's interval: {@code σ_k = √(π/2) ×} its
 * mean absolute {@code k}-step error (a normal error assumed).
 *
 * <p>Immutable and thread-safe (models are); the series passed in is read, never changed.
 */
public final class ModelSelector {
  /**
   * One model's backtest result. {@code sigma[k]} is the error spread at step {@code k + 1}; all
   * NaN and {@code available == false} when the history was too short to fit the model.
   */
  public record Score(
      String model, boolean available, double mae, double mase, double wape, double[] sigma) {
    public Score {
      sigma = sigma.clone();
    }

    @Override
    public double[] sigma() {
      return sigma.clone();
    }

    double sigmaAt(int step) {
      return sigma[Math.min(step, sigma.length) - 1];
    }

    @Override
    public String toString() {
      return available
          ? String.format(java.util.Locale.ROOT, "%s: MAE %.4g, MASE %.3f, WAPE %.3f", model, mae,
              mase, wape)
          : model + ": not enough history";
    }
  }

  /**
   * The outcome: the chosen model fitted and positioned at the end of the history ({@code model}),
   * the reactive estimate likewise ({@code reactive}; the same object when it was chosen), every
   * score (reactive first), and the MASE scale.
   */
  public record Selection(
      String chosen, FittedModel model, FittedModel reactive, List<Score> scores, double scale) {
    public Selection {
      scores = List.copyOf(scores);
    }

    public boolean reactiveChosen() {
      return model == reactive;
    }

    public Score score(String name) {
      for (Score s : scores) {
        if (s.model().equals(name)) {
          return s;
        }
      }
      return null;
    }
  }

  private final List<ForecastModel> candidates;
  private final ForecastModel reactive;
  private final int season;
  private final int horizon;
  private final int backtest;
  private final int stride;
  private final double margin;
  private final boolean refitChosen;

  /**
   * @param candidates the models to choose from (the reactive estimate is always compared too)
   * @param reactive the fallback, normally {@link Ewma}
   * @param season the season of the seasonal-naive MASE scale
   * @param horizon steps forecast from each origin
   * @param backtest buckets at the end of the history used for the backtest (capped at a third of
   *     the history)
   * @param stride buckets between origins
   * @param margin fraction by which a candidate's MAE must be below the reactive estimate's
   * @param refitChosen whether the chosen model is fitted once more on the whole history (else it
   *     keeps the parameters of the backtest fit, rolled forward to the end)
   */
  public ModelSelector(
      List<ForecastModel> candidates,
      ForecastModel reactive,
      int season,
      int horizon,
      int backtest,
      int stride,
      double margin,
      boolean refitChosen) {
    if (candidates == null) {
      throw new IllegalArgumentException("candidates must not be null");
    }
    if (reactive == null) {
      throw new IllegalArgumentException("reactive model must not be null");
    }
    this.candidates = List.copyOf(candidates);
    Set<String> names = new HashSet<>();
    names.add(reactive.name());
    for (ForecastModel m : this.candidates) {
      if (!names.add(m.name())) {
        throw new IllegalArgumentException("duplicate model name " + m.name());
      }
    }
    Checks.season("season", season);
    Checks.atLeast("horizon", horizon, 1);
    Checks.atLeast("backtest", backtest, 1);
    Checks.atLeast("stride", stride, 1);
    Checks.unit("margin", margin, 0, 0.5);
    this.reactive = reactive;
    this.season = season;
    this.horizon = horizon;
    this.backtest = backtest;
    this.stride = stride;
    this.margin = margin;
    this.refitChosen = refitChosen;
  }

  public List<ForecastModel> candidates() {
    return candidates;
  }

  public ForecastModel reactive() {
    return reactive;
  }

  public int horizon() {
    return horizon;
  }

  /** Selects on a plain history (oldest first). */
  public Selection select(double[] history) {
    Checks.history(history, "model selection", 1);
    return select(SeriesBuffer.of(history), 0, history.length);
  }

  /** Selects on {@code series[from, to)}; the fitted models returned are positioned at {@code to}. */
  public Selection select(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, 1, "model selection");
    long n = to - from;
    long bt = Math.min(backtest, n / 3);
    if (bt < 1) {
      FittedModel r = reactive.fit(series, from, to);
      double[] nan = new double[horizon];
      java.util.Arrays.fill(nan, Double.NaN);
      return new Selection(
          reactive.name(), r, r,
          List.of(new Score(reactive.name(), false, Double.NaN, Double.NaN, Double.NaN, nan)),
          Double.NaN);
    }
    long split = to - bt;
    double scale = naiveScale(series, from, split);
    List<Score> scores = new ArrayList<>();
    List<FittedModel> fitted = new ArrayList<>();
    List<ForecastModel> all = new ArrayList<>();
    all.add(reactive);
    all.addAll(candidates);
    double[] buf = new double[horizon];
    for (ForecastModel model : all) {
      if (split - from < model.minHistory() || series.start() > split - model.lookback()) {
        double[] nan = new double[horizon];
        java.util.Arrays.fill(nan, Double.NaN);
        scores.add(new Score(model.name(), false, Double.NaN, Double.NaN, Double.NaN, nan));
        fitted.add(null);
        continue;
      }
      FittedModel f = model.fit(series, from, split);
      double[] abs = new double[horizon];
      long[] count = new long[horizon];
      double actual = 0;
      for (long t = split; t < to; t++) {
        if ((t - split) % stride == 0) {
          int kmax = (int) Math.min(horizon, to - t);
          f.forecastMean(kmax, buf);
          for (int k = 0; k < kmax; k++) {
            double y = series.get(t + k);
            abs[k] += Math.abs(y - Math.max(0, buf[k]));
            count[k]++;
            actual += y;
          }
        }
        f.advance();
      }
      double total = 0;
      long cnt = 0;
      double[] sigma = new double[horizon];
      for (int k = 0; k < horizon; k++) {
        total += abs[k];
        cnt += count[k];
        sigma[k] =
            count[k] > 0
                ? Checks.SIGMA_PER_MAE * abs[k] / count[k]
                : (k > 0 ? sigma[k - 1] : f.sigma(1));
      }
      double mae = total / cnt;
      scores.add(new Score(model.name(), true, mae, mae / scale, actual > 0 ? total / actual
          : (total > 0 ? Double.POSITIVE_INFINITY : 0), sigma));
      fitted.add(f);
    }
    int best = -1;
    for (int i = 1; i < all.size(); i++) {
      Score s = scores.get(i);
      if (s.available() && (best < 0 || s.mae() < scores.get(best).mae())) {
        best = i;
      }
    }
    FittedModel r = fitted.get(0);
    if (best < 0 || !(scores.get(best).mae() < scores.get(0).mae() * (1 - margin))) {
      return new Selection(reactive.name(), r, r, scores, scale);
    }
    FittedModel chosen = fitted.get(best);
    if (refitChosen) {
      chosen = all.get(best).fit(series, from, to);
    }
    return new Selection(all.get(best).name(), chosen, r, scores, scale);
  }

  /**
   * Mean absolute one-season difference over {@code [from, to)} (one-bucket difference when the
   * range is shorter than a season), floored so that a flat series does not divide by zero.
   */
  private double naiveScale(SeriesBuffer series, long from, long to) {
    int lag = to - from > season ? season : 1;
    double sum = 0;
    double level = 0;
    long count = 0;
    for (long t = from + lag; t < to; t++) {
      double y = series.get(t);
      sum += Math.abs(y - series.get(t - lag));
      level += y;
      count++;
    }
    if (count == 0) {
      return 1;
    }
    return Math.max(sum / count, 1e-9 * (1 + level / count));
  }
}
