package io.plb.core.forecast;

import java.util.Map;
import org.apache.commons.math3.exception.MathIllegalStateException;
import org.apache.commons.math3.optim.InitialGuess;
import org.apache.commons.math3.optim.MaxEval;
import org.apache.commons.math3.optim.SimpleBounds;
import org.apache.commons.math3.optim.nonlinear.scalar.GoalType;
import org.apache.commons.math3.optim.nonlinear.scalar.ObjectiveFunction;
import org.apache.commons.math3.optim.nonlinear.scalar.noderiv.BOBYQAOptimizer;

/**
 * Additive Holt–Winters: level, trend, a daily season of length {@code season} and optionally a
 * weekly season of length {@code weekly} (Taylor's double-seasonal form), in error-correction
 * form:
 *
 * <pre>
 *   ŷ_t = l + b + s[t mod m] + w[t mod m2]             e_t = y_t − ŷ_t
 *   l'  = α (y_t − s − w) + (1 − α)(l + b)
 *   b'  = β (l' − l) + (1 − β) b
 *   s'  = γ (y_t − l' − w) + (1 − γ) s                 w' = ω (y_t − l' − s) + (1 − ω) w
 *   ŷ_{t+h} = l + h·b + s[(t+h) mod m] + w[(t+h) mod m2]
 * </pre>
 *
 * <p>α, β, γ (and ω) are either fixed or fitted at each refit by BOBYQA (Commons Math), bounded to
 * [0, 1], on the one-step squared error over the last {@code fitWindow} observations (by default
 * four of the longest season). One evaluation is a single O(n) pass over plain arrays, so long
 * seasons (1440 one-minute buckets a day, 10080 a week) stay cheap. The state is initialised from
 * the first two longest seasons of that window (season means for level and trend, averaged
 * deviations for the seasonal terms).
 *
 * <p>Interval: one-step errors taken as independent normal with standard deviation {@code √(π/2)
 * ×} their in-sample mean absolute value (after the two seasons the initial state came from, when
 * the window is at least three seasons long; else over its second half); the {@code
 * h}-step variance is {@code σ₁² (1 + Σ_{j<h} c_j²)} with {@code c_j = α(1 + jβ) + γ(1 − α)[m | j]
 * + ω(1 − α)[m2 | j]} (the innovations-form result for additive Holt–Winters).
 *
 * <p>A fitted daily-season model holds {@code season} doubles of state, a weekly one {@code
 * season + weekly}.
 */
public final class HoltWinters implements ForecastModel {
  private final int season;
  private final int weekly; // 0: none
  private final double[] fixed; // {alpha, beta, gamma, omega}, or null when fitted
  private final int fitWindow;

  /** One daily season, parameters fitted. */
  public HoltWinters(int season) {
    this(season, 0);
  }

  /** A daily season and, if {@code weekly > 0}, a weekly one (a multiple of it); fitted. */
  public HoltWinters(int season, int weekly) {
    this(season, weekly, 4 * (weekly > 0 ? weekly : Math.max(season, 2)));
  }

  /** As {@link #HoltWinters(int, int)}, fitting on at most the last {@code fitWindow} values. */
  public HoltWinters(int season, int weekly, int fitWindow) {
    this(season, weekly, fitWindow, null);
  }

  private HoltWinters(int season, int weekly, int fitWindow, double[] fixed) {
    Checks.season("season", season);
    if (weekly != 0) {
      if (weekly <= season || weekly % season != 0) {
        throw new IllegalArgumentException(
            "weekly season must be 0 (none) or a multiple of the season (" + season
                + ") larger than it, got " + weekly);
      }
    }
    int longest = weekly > 0 ? weekly : season;
    if (fitWindow < 2 * longest) {
      throw new IllegalArgumentException(
          "fitWindow must be >= two of the longest season (" + 2 * longest + "), got "
              + fitWindow);
    }
    this.season = season;
    this.weekly = weekly;
    this.fitWindow = fitWindow;
    this.fixed = fixed;
  }

  /** A model with fixed smoothing parameters, each in [0, 1] ({@code omega} unused without a
   * weekly season). */
  public static HoltWinters withParameters(
      int season, int weekly, double alpha, double beta, double gamma, double omega) {
    Checks.unit("alpha", alpha, 0, 1);
    Checks.unit("beta", beta, 0, 1);
    Checks.unit("gamma", gamma, 0, 1);
    Checks.unit("omega", omega, 0, 1);
    int longest = weekly > 0 ? weekly : Math.max(season, 2);
    return new HoltWinters(
        season, weekly, 4 * longest, new double[] {alpha, beta, gamma, omega});
  }

  @Override
  public String name() {
    return "holt-winters/" + season + (weekly > 0 ? "+" + weekly : "");
  }

  private int longest() {
    return weekly > 0 ? weekly : season;
  }

  @Override
  public int minHistory() {
    return 2 * longest();
  }

  @Override
  public int lookback() {
    return 0;
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, minHistory(), name());
    long start = Math.max(from, to - fitWindow);
    double[] y = series.toArray(start, to);
    Init init = init(y);
    double[] p = fixed != null ? fixed : optimise(y, init);
    double[] s = init.s.clone();
    double[] w = weekly > 0 ? init.w.clone() : null;
    double[] out = new double[3];
    // Residual spread only after the seasons the initial state was estimated from (in-sample
    // residuals there are too small: each seasonal term was fitted to them).
    int skip = y.length >= 3 * longest() ? 2 * longest() : y.length / 2;
    run(y, p, init.level, init.trend, s, w, out, skip);
    return new Fitted(series, to, start, p, out[0], out[1], s, w, Checks.SIGMA_PER_MAE * out[2]);
  }

  private double[] optimise(double[] y, Init init) {
    int dim = weekly > 0 ? 4 : 3;
    double[] x0 = weekly > 0 ? new double[] {0.2, 0.01, 0.1, 0.1} : new double[] {0.2, 0.01, 0.1};
    double[] lo = new double[dim];
    double[] hi = new double[dim];
    java.util.Arrays.fill(hi, 1.0);
    double[] s = new double[season];
    double[] w = weekly > 0 ? new double[weekly] : null;
    double[] p = new double[4];
    double[] out = new double[3];
    // The best point evaluated, kept because BOBYQA can stop with an exception on a flat or
    // awkward surface ("trust region step has failed to reduce Q"); its best point is still good.
    double[] bestX = x0.clone();
    double[] bestF = {Double.POSITIVE_INFINITY};
    BOBYQAOptimizer optimizer = new BOBYQAOptimizer(2 * dim + 1, 0.2, 1e-4);
    try {
      optimizer.optimize(
          new MaxEval(600),
          new ObjectiveFunction(
              x -> {
                System.arraycopy(x, 0, p, 0, dim);
                System.arraycopy(init.s, 0, s, 0, season);
                if (w != null) {
                  System.arraycopy(init.w, 0, w, 0, weekly);
                }
                double sse = run(y, p, init.level, init.trend, s, w, out, y.length);
                if (!Double.isFinite(sse)) {
                  return Double.MAX_VALUE;
                }
                if (sse < bestF[0]) {
                  bestF[0] = sse;
                  System.arraycopy(x, 0, bestX, 0, dim);
                }
                return sse;
              }),
          GoalType.MINIMIZE,
          new InitialGuess(x0),
          new SimpleBounds(lo, hi));
    } catch (MathIllegalStateException e) {
      // keep the best point seen
    }
    double[] x = bestX;
    double[] result = new double[4];
    for (int i = 0; i < dim; i++) {
      result[i] = Math.min(1, Math.max(0, x[i]));
    }
    return result;
  }

  /**
   * Runs the filter over {@code y} from the initial state, updating {@code s} and {@code w} in
   * place; returns the one-step SSE and writes the final level, trend and the mean absolute
   * one-step error over {@code t >= skip} into {@code out}.
   */
  private double run(
      double[] y, double[] p, double l0, double b0, double[] s, double[] w, double[] out,
      int skip) {
    double a = p[0];
    double be = p[1];
    double g = p[2];
    double o = p[3];
    double l = l0;
    double b = b0;
    double sse = 0;
    double abs = 0;
    int n = y.length;
    int m = season;
    int si = 0;
    if (w == null) {
      for (int t = 0; t < n; t++) {
        double st = s[si];
        double yt = y[t];
        double e = yt - (l + b + st);
        sse += e * e;
        if (t >= skip) {
          abs += Math.abs(e);
        }
        double lNew = a * (yt - st) + (1 - a) * (l + b);
        b = be * (lNew - l) + (1 - be) * b;
        l = lNew;
        s[si] = g * (yt - lNew) + (1 - g) * st;
        if (++si == m) {
          si = 0;
        }
      }
    } else {
      int m2 = weekly;
      int wi = 0;
      for (int t = 0; t < n; t++) {
        double st = s[si];
        double wt = w[wi];
        double yt = y[t];
        double e = yt - (l + b + st + wt);
        sse += e * e;
        if (t >= skip) {
          abs += Math.abs(e);
        }
        double lNew = a * (yt - st - wt) + (1 - a) * (l + b);
        b = be * (lNew - l) + (1 - be) * b;
        l = lNew;
        s[si] = g * (yt - lNew - wt) + (1 - g) * st;
        w[wi] = o * (yt - lNew - st) + (1 - o) * wt;
        if (++si == m) {
          si = 0;
        }
        if (++wi == m2) {
          wi = 0;
        }
      }
    }
    out[0] = l;
    out[1] = b;
    out[2] = n > skip ? abs / (n - skip) : 0;
    return sse;
  }

  private record Init(double level, double trend, double[] s, double[] w) {}

  /** Initial state "before" y[0], from the first two longest seasons of y. */
  private Init init(double[] y) {
    int p = longest();
    double mean1 = mean(y, 0, p);
    double mean2 = mean(y, p, 2 * p);
    double trend = (mean2 - mean1) / p;
    // mean1 is the level at the middle of the first season; step back to just before y[0].
    double level = mean1 - trend * (p + 1) / 2.0;
    int m = season;
    int days = 2 * p / m;
    double[] s = new double[m];
    for (int d = 0; d < days; d++) {
      double dayMean = mean(y, d * m, (d + 1) * m);
      for (int i = 0; i < m; i++) {
        s[i] += (y[d * m + i] - dayMean) / days;
      }
    }
    double[] w = null;
    if (weekly > 0) {
      w = new double[weekly];
      for (int k = 0; k < 2; k++) {
        double weekMean = k == 0 ? mean1 : mean2;
        for (int j = 0; j < weekly; j++) {
          w[j] += (y[k * weekly + j] - weekMean - s[j % m]) / 2;
        }
      }
    }
    return new Init(level, trend, s, w);
  }

  private static double mean(double[] y, int from, int to) {
    double sum = 0;
    for (int i = from; i < to; i++) {
      sum += y[i];
    }
    return sum / (to - from);
  }

  private final class Fitted implements FittedModel {
    private final double alpha;
    private final double beta;
    private final double gamma;
    private final double omega;
    private final long origin; // absolute index of phase 0 of both seasons
    private final double[] s;
    private final double[] w;
    private final double sigma1;
    private double level;
    private double trend;
    private long time;
    private final SeriesBuffer series;
    private double[] varianceFactor = new double[0]; // cumulative 1 + Σ c_j², by step - 1

    Fitted(
        SeriesBuffer series, long time, long origin, double[] p, double level, double trend, double[] s, double[] w,
        double sigma1) {
      this.series = series;
      this.time = time;
      this.origin = origin;
      this.alpha = p[0];
      this.beta = p[1];
      this.gamma = p[2];
      this.omega = p[3];
      this.level = level;
      this.trend = trend;
      this.s = s;
      this.w = w;
      this.sigma1 = sigma1;
    }

    @Override
    public String name() {
      return HoltWinters.this.name();
    }

    @Override
    public long time() {
      return time;
    }

    @Override
    public Map<String, Double> parameters() {
      return weekly > 0
          ? Map.of("alpha", alpha, "beta", beta, "gamma", gamma, "omega", omega, "level", level,
              "trend", trend)
          : Map.of("alpha", alpha, "beta", beta, "gamma", gamma, "level", level, "trend", trend);
    }

    @Override
    public void advance() {
      double yt = series.get(time);
      int si = (int) ((time - origin) % season);
      double st = s[si];
      double wt = 0;
      int wi = 0;
      if (w != null) {
        wi = (int) ((time - origin) % weekly);
        wt = w[wi];
      }
      double lNew = alpha * (yt - st - wt) + (1 - alpha) * (level + trend);
      trend = beta * (lNew - level) + (1 - beta) * trend;
      level = lNew;
      s[si] = gamma * (yt - lNew - wt) + (1 - gamma) * st;
      if (w != null) {
        w[wi] = omega * (yt - lNew - st) + (1 - omega) * wt;
      }
      time++;
    }

    @Override
    public void forecastMean(int steps, double[] out) {
      int si = (int) ((time - origin) % season);
      int wi = w != null ? (int) ((time - origin) % weekly) : 0;
      for (int k = 0; k < steps; k++) {
        double f = level + (k + 1) * trend + s[si];
        if (w != null) {
          f += w[wi];
          if (++wi == weekly) {
            wi = 0;
          }
        }
        out[k] = f;
        if (++si == season) {
          si = 0;
        }
      }
    }

    @Override
    public double sigma(int step) {
      if (step > varianceFactor.length) {
        int n = Math.max(step, 2 * varianceFactor.length);
        double[] v = new double[n];
        double acc = 1;
        v[0] = 1;
        for (int j = 1; j < n; j++) {
          double c = alpha * (1 + j * beta);
          if (j % season == 0) {
            c += gamma * (1 - alpha);
          }
          if (w != null && j % weekly == 0) {
            c += omega * (1 - alpha);
          }
          acc += c * c;
          v[j] = acc;
        }
        varianceFactor = v;
      }
      return sigma1 * Math.sqrt(varianceFactor[step - 1]);
    }
  }
}
