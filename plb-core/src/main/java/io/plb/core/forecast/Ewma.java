package io.plb.core.forecast;

import java.util.Map;
import org.apache.commons.math3.optim.MaxEval;
import org.apache.commons.math3.optim.nonlinear.scalar.GoalType;
import org.apache.commons.math3.optim.univariate.BrentOptimizer;
import org.apache.commons.math3.optim.univariate.SearchInterval;
import org.apache.commons.math3.optim.univariate.UnivariateObjectiveFunction;
import org.apache.commons.math3.optim.univariate.UnivariatePointValuePair;

/**
 * The reactive estimate: an exponentially weighted moving average of the rate (simple exponential
 * smoothing), {@code level ← α·y + (1 − α)·level}, forecasting the current level at every step.
 * Its smoothing factor is either fixed or fitted by Brent's method on the one-step squared error
 * over the last {@code fitWindow} observations.
 *
 * <p>Interval: one-step errors taken as independent normal with standard deviation {@code √(π/2)
 * ×} their in-sample mean absolute value; the {@code h}-step error of a random walk plus noise, as
 * exponential smoothing assumes, has {@code σ_h = σ_1 √(1 + (h − 1) α²)}.
 */
public final class Ewma implements ForecastModel {
  /** Smallest fitted smoothing factor: below it the average hardly moves within a day. */
  static final double MIN_FITTED_ALPHA = 0.01;

  private static final double DEFAULT_ALPHA = 0.5;
  private final double alpha; // NaN: fitted
  private final int fitWindow;

  /** A fixed smoothing factor in (0, 1]. */
  public Ewma(double alpha) {
    if (!(alpha > 0 && alpha <= 1)) {
      throw new IllegalArgumentException("alpha must be in (0, 1], got " + alpha);
    }
    this.alpha = alpha;
    this.fitWindow = 0;
  }

  private Ewma(int fitWindow) {
    Checks.atLeast("fitWindow", fitWindow, 3);
    this.alpha = Double.NaN;
    this.fitWindow = fitWindow;
  }

  /** A smoothing factor fitted on the last {@code fitWindow} observations at each refit. */
  public static Ewma fitted(int fitWindow) {
    return new Ewma(fitWindow);
  }

  @Override
  public String name() {
    return Double.isNaN(alpha) ? "ewma" : "ewma/" + alpha;
  }

  @Override
  public int minHistory() {
    return 1;
  }

  @Override
  public int lookback() {
    return 0;
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, 1, name());
    long start = Double.isNaN(alpha) ? Math.max(from, to - fitWindow) : Math.max(from, to - 1440);
    double[] y = series.toArray(start, to);
    double a = alpha;
    if (Double.isNaN(a)) {
      a = y.length < 3 ? DEFAULT_ALPHA : fitAlpha(y);
    }
    double level = y[0];
    double absSum = 0;
    for (int t = 1; t < y.length; t++) {
      absSum += Math.abs(y[t] - level);
      level += a * (y[t] - level);
    }
    double sigma1 = y.length > 1 ? Checks.SIGMA_PER_MAE * absSum / (y.length - 1) : 0;
    return new Fitted(series, to, a, level, sigma1);
  }

  static double sse(double[] y, double a) {
    double level = y[0];
    double sse = 0;
    for (int t = 1; t < y.length; t++) {
      double e = y[t] - level;
      sse += e * e;
      level += a * e;
    }
    return sse;
  }

  private static double fitAlpha(double[] y) {
    BrentOptimizer optimizer = new BrentOptimizer(1e-4, 1e-8);
    UnivariatePointValuePair best =
        optimizer.optimize(
            new MaxEval(200),
            new UnivariateObjectiveFunction(a -> sse(y, a)),
            GoalType.MINIMIZE,
            new SearchInterval(MIN_FITTED_ALPHA, 1.0, 0.3));
    double a = best.getPoint();
    // Brent never evaluates the end points; prefer them when they are no worse.
    if (sse(y, 1.0) <= best.getValue()) {
      a = 1.0;
    }
    return a;
  }

  private final class Fitted implements FittedModel {
    private final SeriesBuffer series;
    private final double a;
    private final double sigma1;
    private double level;
    private long time;

    Fitted(SeriesBuffer series, long time, double a, double level, double sigma1) {
      this.series = series;
      this.time = time;
      this.a = a;
      this.level = level;
      this.sigma1 = sigma1;
    }

    @Override
    public String name() {
      return Ewma.this.name();
    }

    @Override
    public long time() {
      return time;
    }

    @Override
    public Map<String, Double> parameters() {
      return Map.of("alpha", a, "level", level);
    }

    @Override
    public void advance() {
      level += a * (series.get(time) - level);
      time++;
    }

    @Override
    public void forecastMean(int steps, double[] out) {
      for (int k = 0; k < steps; k++) {
        out[k] = level;
      }
    }

    @Override
    public double sigma(int step) {
      return sigma1 * Math.sqrt(1 + (step - 1) * a * a);
    }
  }
}
