package io.plb.core.forecast;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.ArrayRealVector;
import org.apache.commons.math3.linear.CholeskyDecomposition;
import org.apache.commons.math3.linear.DecompositionSolver;
import org.apache.commons.math3.linear.NonPositiveDefiniteMatrixException;
import org.apache.commons.math3.linear.SingularValueDecomposition;

/**
 * The seasonal shape of earlier days and weeks, rescaled to the current level, plus a correction
 * for how far the series runs off that shape right now. Cheap, and the workhorse on strongly
 * seasonal traffic: it follows the current level in the next minutes and the seasonal shape
 * further out.
 *
 * <p>At origin {@code o} (observations up to {@code o − 1} known), for a bucket {@code t}:
 *
 * <pre>
 *   ref(t)   = mean over lags L of the mean of y[t − L − s .. t − L + s]    (smoothed "same time")
 *   ρ_o      = Σ_{i=1..W} y(o − i) / Σ_{i=1..W} ref(o − i),  clamped to [1/maxRatio, maxRatio]
 *   u(t)     = y(t) − ρ_{t+1} ref(t)                                       (deviation from shape)
 *   ŷ(o + k) = ρ_o ref(o + k) + correction_k(o)                            (k = 0 .. horizon − 1)
 * </pre>
 *
 * With lags of one and two days and weeks, {@code ρ} is the ratio of the last {@code W} buckets
 * to the same buckets on earlier days (growth, holidays, a quiet day). The correction is one of:
 *
 * <ul>
 *   <li>{@code arLags = 0}: {@code c_k · d_o}, with {@code d} an EWMA (factor α) of {@code u} and
 *       {@code c_k ∈ [0, 1]}: from "stay where the series is now" ({@code c ≈ 1}) to "follow the
 *       shape" ({@code c → 0}) as the step grows. α is chosen from a small grid and each {@code
 *       c_k} in closed form by least squares.
 *   <li>{@code arLags = p > 0}: a direct regression per step on the last {@code p} deviations and
 *       a slow EWMA of them (factor {@code 2 / (W + 1)}), {@code Σ_j a_{k,j} u(o − j) + b_k
 *       d_o}: it learns the short-term dynamics of the deviation (how a burst or a bank
 *       decays), fitted by ridge-regularised least squares (Commons Math Cholesky).
 * </ul>
 *
 * Both are fitted on the {@code k}-step error over the last {@code fitWindow} origins. Steps beyond
 * {@code horizon} use the correction of the last step.
 *
 * <p>Interval: the {@code k}-step error taken as normal with standard deviation {@code √(π/2) ×}
 * its in-sample mean absolute value at that step (beyond {@code horizon}: that of the last step).
 *
 * <p>The fitted model keeps no copy of the series: it reads the buffer, back to {@code maxLag +
 * smooth + levelWindow + arLags} buckets before the newest.
 */
public final class SeasonalLevel implements ForecastModel {
  private static final double[] ALPHAS = {0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0};
  private static final double RIDGE = 1e-3;

  private final int[] lags;
  private final int maxLag;
  private final int levelWindow;
  private final int smooth;
  private final int horizon;
  private final int arLags;
  private final double maxRatio;
  private final int fitWindow;

  /** EWMA correction ({@code arLags = 0}), ratio clamp 2, two days of fit origins. */
  public SeasonalLevel(int[] lags, int levelWindow, int smooth, int horizon) {
    this(lags, levelWindow, smooth, horizon, 0, 2.0, 2880);
  }

  /**
   * @param lags how far back the shape is taken, e.g. one and two days and weeks of buckets; each
   *     {@code >= horizon + smooth}
   * @param levelWindow buckets over which the current level is compared to the shape ({@code W})
   * @param smooth half-width of the centred average taken at each lag ({@code s}, 0 = none)
   * @param horizon steps with their own fitted correction
   * @param arLags deviations regressed on per step ({@code p}); 0 for the EWMA correction
   * @param maxRatio clamp of the level ratio, {@code >= 1}
   * @param fitWindow origins fitted on (the most recent)
   */
  public SeasonalLevel(
      int[] lags, int levelWindow, int smooth, int horizon, int arLags, double maxRatio,
      int fitWindow) {
    if (lags == null || lags.length == 0) {
      throw new IllegalArgumentException("lags must not be empty");
    }
    Checks.atLeast("levelWindow", levelWindow, 1);
    Checks.atLeast("smooth", smooth, 0);
    Checks.atLeast("horizon", horizon, 1);
    Checks.atLeast("arLags", arLags, 0);
    for (int lag : lags) {
      Checks.season("lag", lag);
      if (lag < horizon + smooth) {
        throw new IllegalArgumentException(
            "each lag must be >= horizon + smooth (" + (horizon + smooth) + "), got " + lag);
      }
    }
    if (!(maxRatio >= 1) || Double.isInfinite(maxRatio)) {
      throw new IllegalArgumentException("maxRatio must be a finite number >= 1, got " + maxRatio);
    }
    this.lags = lags.clone();
    this.maxLag = Arrays.stream(lags).max().getAsInt();
    this.levelWindow = levelWindow;
    this.smooth = smooth;
    this.horizon = horizon;
    this.arLags = arLags;
    this.maxRatio = maxRatio;
    Checks.atLeast("fitWindow", fitWindow, minFit());
    this.fitWindow = fitWindow;
  }

  private int minFit() {
    return Math.max(4 * horizon, 60) + 4 * arLags;
  }

  @Override
  public String name() {
    StringBuilder b = new StringBuilder("seasonal-level/");
    for (int i = 0; i < lags.length; i++) {
      b.append(i == 0 ? "" : "+").append(lags[i]);
    }
    if (arLags > 0) {
      b.append("/ar").append(arLags);
    }
    return b.toString();
  }

  @Override
  public int minHistory() {
    return lookback() + minFit();
  }

  @Override
  public int lookback() {
    return maxLag + smooth + levelWindow + arLags;
  }

  private double ratio(double sumY, double sumRef) {
    if (!(sumRef > 0)) {
      return 1;
    }
    return Math.max(1 / maxRatio, Math.min(maxRatio, sumY / sumRef));
  }

  private double slowAlpha() {
    return 2.0 / (levelWindow + 1);
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, minHistory(), name());
    int w = levelWindow;
    int p = arLags;
    long a = Math.max(to - fitWindow, from + lookback()); // first origin
    long b = a - lookback(); // first value read
    double[] y = series.toArray(b, to);
    int n = y.length;
    double[] prefix = new double[n + 1];
    for (int i = 0; i < n; i++) {
      prefix[i + 1] = prefix[i] + y[i];
    }
    int first = (int) (a - b);
    int u0 = first - Math.max(p, 1); // first deviation needed
    // ref[i] = ref(b + i) for i >= u0 + 1 - W; lags >= horizon + smooth keep windows known.
    int r0 = u0 + 1 - w;
    double[] ref = new double[n];
    double width = 2 * smooth + 1;
    for (int i = r0; i < n; i++) {
      double sum = 0;
      for (int lag : lags) {
        sum += prefix[i - lag + smooth + 1] - prefix[i - lag - smooth];
      }
      ref[i] = sum / (width * lags.length);
    }
    // rho[o] for origins o in [u0 + 1, n] (sums over [o - W, o)); u[i] for i in [u0, n)
    double[] rho = new double[n + 1];
    double sumY = 0;
    double sumRef = 0;
    for (int i = r0; i <= u0; i++) {
      sumY += y[i];
      sumRef += ref[i];
    }
    double[] u = new double[n];
    for (int o = u0 + 1; o <= n; o++) {
      if (o > u0 + 1) {
        sumY += y[o - 1] - y[o - 1 - w];
        sumRef += ref[o - 1] - ref[o - 1 - w];
      }
      rho[o] = ratio(sumY, sumRef);
      u[o - 1] = y[o - 1] - rho[o] * ref[o - 1];
    }
    int burn = Math.min(60, (n - first) / 4);
    Correction correction =
        p == 0 ? fitEwma(y, ref, rho, u, first, burn) : fitAr(y, ref, rho, u, first, burn);
    // Residual spread per step, from every third origin (plenty for a spread, a third the cost).
    double[] abs = new double[horizon];
    long[] count = new long[horizon];
    double[] state = correction.initialState();
    for (int o = first; o < n; o++) {
      correction.update(state, u[o - 1]);
      if (o - first < burn || (o - first) % 3 != 0) {
        continue;
      }
      int kmax = Math.min(horizon, n - o);
      for (int k = 0; k < kmax; k++) {
        abs[k] += Math.abs(y[o + k] - rho[o] * ref[o + k] - correction.apply(state, k));
        count[k]++;
      }
    }
    correction.update(state, u[n - 1]);
    double[] sigma = new double[horizon];
    for (int k = 0; k < horizon; k++) {
      sigma[k] = count[k] > 0 ? Checks.SIGMA_PER_MAE * abs[k] / count[k] : 0;
      if (k > 0 && count[k] == 0) {
        sigma[k] = sigma[k - 1];
      }
    }
    double sy = 0;
    double sr = 0;
    for (int i = n - w; i < n; i++) {
      sy += y[i];
      sr += ref[i];
    }
    return new Fitted(series, to, correction, state, sigma, sy, sr);
  }

  /**
   * The fitted correction. Its state, fed with each deviation {@code u(o − 1)} in turn, gives the
   * correction at each step from origin {@code o}.
   */
  private interface Correction {
    double[] initialState();

    void update(double[] state, double deviation);

    double apply(double[] state, int step);

    Map<String, Double> parameters();
  }

  /** {@code c_k · d}, d an EWMA of the deviation: state {d}. */
  private record EwmaCorrection(double alpha, double[] c) implements Correction {
    @Override
    public double[] initialState() {
      return new double[1];
    }

    @Override
    public void update(double[] state, double deviation) {
      state[0] += alpha * (deviation - state[0]);
    }

    @Override
    public double apply(double[] state, int step) {
      return c[step] * state[0];
    }

    @Override
    public Map<String, Double> parameters() {
      Map<String, Double> m = new HashMap<>();
      m.put("alpha", alpha);
      for (int k = 0; k < c.length; k++) {
        m.put("c" + (k + 1), c[k]);
      }
      return m;
    }
  }

  /**
   * {@code Σ_j a[k][j] u(o − 1 − j) + a[k][p] d}: state {u(o−1), …, u(o−p), d} (newest first).
   */
  private record ArCorrection(double slow, double[][] a) implements Correction {
    @Override
    public double[] initialState() {
      return new double[a[0].length];
    }

    @Override
    public void update(double[] state, double deviation) {
      int p = state.length - 1;
      System.arraycopy(state, 0, state, 1, p - 1);
      state[0] = deviation;
      state[p] += slow * (deviation - state[p]);
    }

    @Override
    public double apply(double[] state, int step) {
      double[] ak = a[step];
      double s = 0;
      for (int j = 0; j < ak.length; j++) {
        s += ak[j] * state[j];
      }
      return s;
    }

    @Override
    public Map<String, Double> parameters() {
      Map<String, Double> m = new HashMap<>();
      for (int k = 0; k < a.length; k++) {
        m.put("a" + (k + 1) + ".1", a[k][0]);
        m.put("a" + (k + 1) + ".slow", a[k][a[k].length - 1]);
      }
      return m;
    }
  }

  private Correction fitEwma(
      double[] y, double[] ref, double[] rho, double[] u, int first, int burn) {
    int n = y.length;
    double bestSse = Double.POSITIVE_INFINITY;
    EwmaCorrection best = null;
    double[] see = new double[horizon];
    double[] sed = new double[horizon];
    double[] sdd = new double[horizon];
    for (double alpha : ALPHAS) {
      Arrays.fill(see, 0);
      Arrays.fill(sed, 0);
      Arrays.fill(sdd, 0);
      double d = 0;
      for (int o = first; o < n; o++) {
        d += alpha * (u[o - 1] - d);
        if (o - first < burn) {
          continue;
        }
        double ro = rho[o];
        int kmax = Math.min(horizon, n - o);
        for (int k = 0; k < kmax; k++) {
          double e0 = y[o + k] - ro * ref[o + k];
          see[k] += e0 * e0;
          sed[k] += e0 * d;
          sdd[k] += d * d;
        }
      }
      double sse = 0;
      double[] c = new double[horizon];
      for (int k = 0; k < horizon; k++) {
        c[k] = sdd[k] > 0 ? Math.max(0, Math.min(1, sed[k] / sdd[k])) : 1;
        sse += see[k] - 2 * c[k] * sed[k] + c[k] * c[k] * sdd[k];
      }
      if (sse < bestSse) {
        bestSse = sse;
        best = new EwmaCorrection(alpha, c);
      }
    }
    return best;
  }

  private Correction fitAr(
      double[] y, double[] ref, double[] rho, double[] u, int first, int burn) {
    int n = y.length;
    int p = arLags;
    int q = p + 1;
    double slow = slowAlpha();
    double[][] xtx = new double[q][q];
    double[][] xty = new double[horizon][q];
    double[] x = new double[q];
    // Regressors at origin o: u(o−1) .. u(o−p), then the slow EWMA of u up to o − 1.
    double d = 0;
    for (int i = first - p; i < first - 1; i++) {
      d += slow * (u[i] - d);
    }
    for (int o = first; o <= n - horizon; o++) {
      d += slow * (u[o - 1] - d);
      if (o - first < burn) {
        continue;
      }
      for (int j = 0; j < p; j++) {
        x[j] = u[o - 1 - j];
      }
      x[p] = d;
      for (int r = 0; r < q; r++) {
        double xr = x[r];
        for (int c = r; c < q; c++) {
          xtx[r][c] += xr * x[c];
        }
      }
      double ro = rho[o];
      for (int k = 0; k < horizon; k++) {
        double e0 = y[o + k] - ro * ref[o + k];
        double[] row = xty[k];
        for (int r = 0; r < q; r++) {
          row[r] += x[r] * e0;
        }
      }
    }
    double trace = 0;
    for (int r = 0; r < q; r++) {
      for (int c = 0; c < r; c++) {
        xtx[r][c] = xtx[c][r];
      }
      trace += xtx[r][r];
    }
    // Ridge: shrinks the coefficients of a sparse or flat series towards no correction.
    double lambda = RIDGE * trace / q + 1e-12;
    for (int r = 0; r < q; r++) {
      xtx[r][r] += lambda;
    }
    Array2DRowRealMatrix m = new Array2DRowRealMatrix(xtx, false);
    DecompositionSolver solver;
    try {
      solver = new CholeskyDecomposition(m).getSolver();
    } catch (NonPositiveDefiniteMatrixException e) {
      solver = new SingularValueDecomposition(m).getSolver();
    }
    double[][] coef = new double[horizon][];
    for (int k = 0; k < horizon; k++) {
      coef[k] = solver.solve(new ArrayRealVector(xty[k], false)).toArray();
    }
    return new ArCorrection(slow, coef);
  }

  private final class Fitted implements FittedModel {
    private final SeriesBuffer series;
    private final Correction correction;
    private final double[] state;
    private final double[] sigma;
    private double sumY; // Σ y over [time - W, time)
    private double sumRef; // Σ ref over [time - W, time)
    private long time;

    Fitted(
        SeriesBuffer series, long time, Correction correction, double[] state, double[] sigma,
        double sumY, double sumRef) {
      this.series = series;
      this.time = time;
      this.correction = correction;
      this.state = state;
      this.sigma = sigma;
      this.sumY = sumY;
      this.sumRef = sumRef;
    }

    /**
     * ref(t) seen from the current origin: windows are clipped to known buckets, and a lag whose
     * window lies wholly in the future is taken whole seasons further back (if still held).
     */
    private double ref(long t) {
      long newest = time - 1;
      long oldest = series.start();
      double sum = 0;
      int used = 0;
      for (int lag : lags) {
        long l = lag;
        while (t - l - smooth > newest) {
          l += lag;
        }
        long lo = t - l - smooth;
        long hi = Math.min(t - l + smooth, newest);
        if (lo < oldest) {
          continue;
        }
        double s = 0;
        for (long i = lo; i <= hi; i++) {
          s += series.get(i);
        }
        sum += s / (hi - lo + 1);
        used++;
      }
      return used > 0 ? sum / used : Double.NaN;
    }

    @Override
    public String name() {
      return SeasonalLevel.this.name();
    }

    @Override
    public long time() {
      return time;
    }

    @Override
    public Map<String, Double> parameters() {
      Map<String, Double> p = new HashMap<>(correction.parameters());
      p.put("ratio", ratio(sumY, sumRef));
      p.put("deviation", state[0]);
      return p;
    }

    @Override
    public void advance() {
      double yt = series.get(time);
      double refT = ref(time);
      int w = levelWindow;
      sumY += yt - series.get(time - w);
      sumRef += refT - ref(time - w);
      time++;
      correction.update(state, yt - ratio(sumY, sumRef) * refT);
    }

    @Override
    public void forecastMean(int steps, double[] out) {
      double rho = ratio(sumY, sumRef);
      // Within the fitted horizon every window is known: slide each lag's window by one bucket.
      int rolled = Math.min(steps, horizon);
      double width = 2 * smooth + 1;
      double sum = 0;
      for (int lag : lags) {
        for (long i = time - lag - smooth; i <= time - lag + smooth; i++) {
          sum += series.get(i);
        }
      }
      for (int k = 0; k < rolled; k++) {
        if (k > 0) {
          long t = time + k;
          for (int lag : lags) {
            sum += series.get(t - lag + smooth) - series.get(t - lag - smooth - 1);
          }
        }
        out[k] = rho * sum / (width * lags.length) + correction.apply(state, k);
      }
      double last = rolled > 0 ? out[rolled - 1] : 0;
      double tail = correction.apply(state, horizon - 1);
      for (int k = rolled; k < steps; k++) {
        double r = ref(time + k);
        double f = Double.isNaN(r) ? last : rho * r + tail;
        out[k] = f;
        last = f;
      }
    }

    @Override
    public double sigma(int step) {
      return sigma[Math.min(step, horizon) - 1];
    }
  }
}
