package io.plb.core.forecast;

/**
 * The forecaster of one series: keeps its history, re-selects and refits its model on a fixed
 * schedule, tracks how its forecasts fare against what then happens, and falls back to the
 * reactive estimate while the chosen model stops beating it.
 *
 * <p>Per bucket ({@link #observe}): the forecasts issued for this bucket over the last {@code
 * horizon} buckets (steps 1..horizon) by the chosen model and by the reactive estimate are scored
 * against the value; the value is appended; both fitted models advance; at scheduled buckets
 * ({@code buckets % refitEvery == phase}, and at the first observation) a {@link ModelSelector}
 * picks and fits the model again; the fallback state is updated; the next forecasts are issued.
 *
 * <p>Realised accuracy is an exponentially weighted trailing average (half-life {@code
 * accuracyHalfLife} buckets) of the absolute error at each step, restarted at each refit from the
 * backtest's errors (weighted as half a half-life) and counting only forecasts issued since. MASE
 * divides the mean absolute error over the steps by the same average of the one-season naive
 * error; WAPE divides it by the average absolute value.
 *
 * <p>Fallback: once {@code minEvaluated} buckets have passed since a refit chose a model other
 * than the reactive estimate, the series is served by the reactive estimate while the chosen
 * model's realised error (summed over the steps) exceeds the reactive estimate's by more than
 * {@code fallbackMargin}, and by the chosen model again once its error is below the reactive
 * estimate's by that margin (hysteresis, so a series does not flap). A refit clears the fallback.
 *
 * <p>Intervals served: normal errors with {@code σ_k = √(π/2) ×} the realised mean absolute
 * {@code k}-step error of the model being served (beyond the horizon, scaled by the model's own
 * growth of σ with the step).
 *
 * <p>Not thread-safe: one owner calls it. Pure: time is the bucket count, nothing reads a clock.
 */
public final class SeriesForecaster {
  /** Realised accuracy of the chosen model and of the reactive estimate, and which is served. */
  public record Accuracy(
      String served,
      String chosen,
      boolean fallback,
      double mase,
      double wape,
      double reactiveMase,
      double reactiveWape,
      long evaluated) {}

  private final ForecasterConfig config;
  private final ModelSelector selector;
  private final int phase;
  private final int horizon;
  private final double decay;
  private final SeriesBuffer buffer;
  private final double zCoverage;

  private ModelSelector.Selection selection;
  private FittedModel model;
  private FittedModel reactive;
  private boolean fallback;
  private long selectedAt;
  private long evaluated;

  // Issued point forecasts (clamped), by origin modulo horizon: [slot][step - 1].
  private final double[][] issuedModel;
  private final double[][] issuedReactive;
  private final long[] issuedAt;

  // Exponentially weighted absolute errors by step, with their weights.
  private final double[] modelAbs;
  private final double[] reactiveAbs;
  private final double[] stepWeight;
  private double actualAbs;
  private double actualWeight;
  private double naiveAbs;
  private double naiveWeight;

  // The served forecast for the next `horizon` steps, refreshed every bucket.
  private final double[] servedRaw;
  private final double[] servedSigma;

  public SeriesForecaster(ForecasterConfig config) {
    this(config, 0, 0);
  }

  /**
   * @param phase the bucket, modulo {@code refitEvery}, at which this series refits
   * @param zeros buckets of zeros the series starts with (it was idle until now)
   */
  public SeriesForecaster(ForecasterConfig config, int phase, long zeros) {
    if (config == null) {
      throw new IllegalArgumentException("config must not be null");
    }
    if (phase < 0 || phase >= config.refitEvery()) {
      throw new IllegalArgumentException(
          "phase must be in [0, refitEvery = " + config.refitEvery() + "), got " + phase);
    }
    this.config = config;
    this.selector = config.selector();
    this.phase = phase;
    this.horizon = config.horizon();
    this.decay = Math.pow(0.5, 1.0 / config.accuracyHalfLife());
    this.buffer = new SeriesBuffer(config.history(), zeros);
    this.zCoverage = Forecast.z((1 + config.coverage()) / 2);
    this.issuedModel = new double[horizon][horizon];
    this.issuedReactive = new double[horizon][horizon];
    this.issuedAt = new long[horizon];
    java.util.Arrays.fill(issuedAt, -1);
    this.modelAbs = new double[horizon];
    this.reactiveAbs = new double[horizon];
    this.stepWeight = new double[horizon];
    this.servedRaw = new double[horizon];
    this.servedSigma = new double[horizon];
  }

  /** Buckets observed so far (including initial zeros). */
  public long buckets() {
    return buffer.end();
  }

  public ForecasterConfig config() {
    return config;
  }

  /**
   * Takes the next bucket's value.
   *
   * @throws IllegalArgumentException if the value is NaN, infinite or negative (nothing changes)
   */
  public void observe(double value) {
    Checks.observation(value);
    long t = buffer.end();
    score(t, value);
    buffer.append(value);
    long count = t + 1;
    if (selection == null || count % config.refitEvery() == phase) {
      reselect();
    } else {
      model.advance();
      if (reactive != model) {
        reactive.advance();
      }
      updateFallback();
    }
    issue(count);
  }

  /**
   * Takes a block of buckets at once (a leader loading stored history, a simulator warming up):
   * appends them all without scoring or scheduled refits, then selects and fits once. Realised
   * accuracy restarts from the backtest. All values are checked before any is applied.
   *
   * @throws IllegalArgumentException if a value is NaN, infinite or negative (nothing changes)
   */
  public void observeAll(double[] values) {
    if (values == null) {
      throw new IllegalArgumentException("values must not be null");
    }
    for (int i = 0; i < values.length; i++) {
      double v = values[i];
      if (!Double.isFinite(v) || v < 0) {
        throw new IllegalArgumentException(
            "values[" + i + "] must be a finite number >= 0, got " + v);
      }
    }
    if (values.length == 0) {
      return;
    }
    for (double v : values) {
      buffer.append(v);
    }
    reselect();
    issue(buffer.end());
  }

  /** Re-selects and refits now, off schedule (e.g. to measure the cost of a refit). */
  public void refit() {
    if (selection == null) {
      throw new IllegalStateException("no observations yet");
    }
    reselect();
    issue(buffer.end());
  }

  private void score(long t, double y) {
    if (selection != null) {
      for (int k = 1; k <= horizon; k++) {
        long origin = t - k + 1;
        if (origin < selectedAt) {
          break;
        }
        int slot = (int) (origin % horizon);
        if (issuedAt[slot] != origin) {
          continue;
        }
        int i = k - 1;
        modelAbs[i] = decay * modelAbs[i] + (1 - decay) * Math.abs(y - issuedModel[slot][i]);
        reactiveAbs[i] =
            decay * reactiveAbs[i] + (1 - decay) * Math.abs(y - issuedReactive[slot][i]);
        stepWeight[i] = decay * stepWeight[i] + (1 - decay);
      }
      evaluated++;
    }
    actualAbs = decay * actualAbs + (1 - decay) * y;
    actualWeight = decay * actualWeight + (1 - decay);
    long m = config.season();
    if (t - m >= buffer.start()) {
      naiveAbs = decay * naiveAbs + (1 - decay) * Math.abs(y - buffer.get(t - m));
      naiveWeight = decay * naiveWeight + (1 - decay);
    }
  }

  private void reselect() {
    selection = selector.select(buffer, buffer.start(), buffer.end());
    model = selection.model();
    reactive = selection.reactive();
    selectedAt = buffer.end();
    fallback = false;
    evaluated = 0;
    // Start the realised averages from the backtest, weighted as half a half-life of buckets.
    ModelSelector.Score ms = selection.score(selection.chosen());
    ModelSelector.Score rs = selection.score(reactive.name());
    for (int i = 0; i < horizon; i++) {
      boolean known = ms != null && ms.available() && rs != null && rs.available();
      modelAbs[i] = known ? 0.5 * ms.sigmaAt(i + 1) / Checks.SIGMA_PER_MAE : 0;
      reactiveAbs[i] = known ? 0.5 * rs.sigmaAt(i + 1) / Checks.SIGMA_PER_MAE : 0;
      stepWeight[i] = known ? 0.5 : 0;
    }
  }

  private void updateFallback() {
    if (model == reactive || evaluated < config.minEvaluated()) {
      return;
    }
    double m = 0;
    double r = 0;
    for (int i = 0; i < horizon; i++) {
      if (stepWeight[i] > 0) {
        m += modelAbs[i] / stepWeight[i];
        r += reactiveAbs[i] / stepWeight[i];
      }
    }
    double margin = config.fallbackMargin();
    if (!fallback && m > r * (1 + margin)) {
      fallback = true;
    } else if (fallback && m < r * (1 - margin)) {
      fallback = false;
    }
  }

  private void issue(long origin) {
    int slot = (int) (origin % horizon);
    FittedModel served = served();
    // Each model forecasts once: the served one's raw forecast is also what is scored.
    served.forecastMean(horizon, servedRaw);
    FittedModel other = served == model ? reactive : model;
    double[] servedIssued = served == model ? issuedModel[slot] : issuedReactive[slot];
    double[] otherIssued = served == model ? issuedReactive[slot] : issuedModel[slot];
    System.arraycopy(servedRaw, 0, servedIssued, 0, horizon);
    clamp(servedIssued);
    if (other != served) {
      other.forecastMean(horizon, otherIssued);
      clamp(otherIssued);
    } else {
      System.arraycopy(servedIssued, 0, otherIssued, 0, horizon);
    }
    issuedAt[slot] = origin;
    for (int k = 1; k <= horizon; k++) {
      servedSigma[k - 1] = sigma(served, k);
    }
  }

  private static void clamp(double[] v) {
    for (int i = 0; i < v.length; i++) {
      v[i] = Math.max(0, v[i]);
    }
  }

  private FittedModel served() {
    return fallback ? reactive : model;
  }

  /** σ of the served model's error at a 1-based step, from its realised errors when known. */
  private double sigma(FittedModel served, int step) {
    double[] abs = served == model ? modelAbs : reactiveAbs;
    int i = Math.min(step, horizon) - 1;
    if (stepWeight[i] <= 0) {
      return served.sigma(step);
    }
    double s = Checks.SIGMA_PER_MAE * abs[i] / stepWeight[i];
    if (step > horizon) {
      double own = served.sigma(horizon);
      if (own > 0) {
        s *= served.sigma(step) / own;
      }
    }
    return s;
  }

  /**
   * The forecast for the next {@code steps} buckets from the model being served.
   *
   * @throws IllegalStateException before the first observation
   */
  public Forecast forecast(int steps) {
    Checks.steps(steps);
    requireObserved();
    FittedModel served = served();
    double[] raw = new double[steps];
    double[] sigma = new double[steps];
    if (steps <= horizon) {
      System.arraycopy(servedRaw, 0, raw, 0, steps);
      System.arraycopy(servedSigma, 0, sigma, 0, steps);
    } else {
      served.forecastMean(steps, raw);
      for (int k = 1; k <= steps; k++) {
        sigma[k - 1] = sigma(served, k);
      }
    }
    return Forecast.fromRaw(served.name(), raw, sigma, config.coverage());
  }

  /**
   * The mean forecast rate over the next {@code steps <= horizon} buckets, and its {@code q}
   * quantile as in {@link Forecast#horizonQuantile}, without allocating: {@code out[0]} the mean,
   * {@code out[1]} the quantile.
   */
  public void horizonRate(int steps, double q, double[] out) {
    if (steps < 1 || steps > horizon) {
      throw new IllegalArgumentException(
          "steps must be in [1, horizon = " + horizon + "], got " + steps);
    }
    if (!(q >= 0.5 && q < 1)) {
      throw new IllegalArgumentException("quantile must be in [0.5, 1), got " + q);
    }
    requireObserved();
    horizonRateAt(steps, quantileRatio(config, q), out);
  }

  /** {@code z(q) / z((1 + coverage) / 2)}: how far out quantile q lies, in half-intervals. */
  static double quantileRatio(ForecasterConfig config, double q) {
    return q == 0.5 ? 0 : Forecast.z(q) / Forecast.z((1 + config.coverage()) / 2);
  }

  /** As {@link #horizonRate} with the quantile given as its ratio; arguments not checked. */
  void horizonRateAt(int steps, double ratio, double[] out) {
    double zc = zCoverage;
    double mean = 0;
    double quantile = 0;
    for (int k = 0; k < steps; k++) {
      double raw = servedRaw[k];
      double m = Math.max(0, raw);
      double upper = Math.max(m, raw + zc * servedSigma[k]);
      mean += m;
      quantile += Math.max(0, m + (upper - m) * ratio);
    }
    out[0] = mean / steps;
    out[1] = quantile / steps;
  }

  private void requireObserved() {
    if (selection == null) {
      throw new IllegalStateException("no observations yet");
    }
  }

  /** The model whose forecasts are served now: the chosen one, or the reactive in fallback. */
  public String currentModel() {
    requireObserved();
    return served().name();
  }

  /** The model chosen by the last selection (served unless in fallback). */
  public String chosenModel() {
    requireObserved();
    return selection.chosen();
  }

  public boolean inFallback() {
    return fallback;
  }

  /** The last selection's backtest scores. */
  public ModelSelector.Selection lastSelection() {
    requireObserved();
    return selection;
  }

  /** Bucket count at the last selection. */
  public long selectedAt() {
    return selectedAt;
  }

  /** Realised accuracy over the trailing window (NaN where nothing was measured yet). */
  public Accuracy accuracy() {
    requireObserved();
    double m = 0;
    double r = 0;
    int steps = 0;
    for (int i = 0; i < horizon; i++) {
      if (stepWeight[i] > 0) {
        m += modelAbs[i] / stepWeight[i];
        r += reactiveAbs[i] / stepWeight[i];
        steps++;
      }
    }
    double mae = steps > 0 ? m / steps : Double.NaN;
    double rmae = steps > 0 ? r / steps : Double.NaN;
    double naive = naiveWeight > 0 ? naiveAbs / naiveWeight : Double.NaN;
    double actual = actualWeight > 0 ? actualAbs / actualWeight : Double.NaN;
    return new Accuracy(
        served().name(),
        selection.chosen(),
        fallback,
        ratio(mae, naive),
        ratio(mae, actual),
        ratio(rmae, naive),
        ratio(rmae, actual),
        evaluated);
  }

  private static double ratio(double num, double den) {
    if (Double.isNaN(num) || Double.isNaN(den)) {
      return Double.NaN;
    }
    if (den > 0) {
      return num / den;
    }
    return num > 0 ? Double.POSITIVE_INFINITY : 0;
  }
}
