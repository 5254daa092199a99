package io.plb.core.forecast;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.ArrayRealVector;
import org.apache.commons.math3.linear.CholeskyDecomposition;
import org.apache.commons.math3.linear.DecompositionSolver;
import org.apache.commons.math3.linear.NonPositiveDefiniteMatrixException;
import org.apache.commons.math3.linear.RealVector;
import org.apache.commons.math3.linear.SingularValueDecomposition;

/**
 * Linear trend plus Fourier seasonal terms, fitted by least squares: {@code y_t = c₀ + c₁·t/n +
 * Σ_P Σ_{k≤K_P} (a_{P,k} sin(2πkt/P) + b_{P,k} cos(2πkt/P)) + r_t} over the last {@code fitWindow}
 * observations ({@code t} counted from the window's start, {@code n} its length). The forecast
 * adds the last residual decayed by its lag-one autocorrelation {@code φ} (an AR(1) error), so a
 * series running above its seasonal curve is forecast to stay above it for a while.
 *
 * <p>The normal equations are solved with a Commons Math Cholesky decomposition (SVD if they are
 * singular). The design matrix depends only on the window length, so its Gram matrix and
 * decomposition are cached per length and shared by every series fitted with this model: a fit
 * then costs one O(n·p) pass for {@code Xᵀy}. Sines and cosines come from per-period tables.
 *
 * <p>Interval: residuals taken as a stationary AR(1) with normal innovations, marginal standard
 * deviation {@code σ_r = √(π/2) × mean |r|} (over the most recent part of the window, at most
 * 2880 values); the {@code h}-step error then has {@code σ_h = σ_r √(1 − φ^{2h})}. Uncertainty in
 * the coefficients is ignored.
 */
public final class FourierRegression implements ForecastModel {
  private static final int RESIDUAL_WINDOW = 2880;
  private static final int MAX_CACHED_GRAMS = 8;

  private final int[] periods;
  private final int[] harmonics;
  private final boolean trend;
  private final int fitWindow;
  private final int columns;
  private final double[][] sin;
  private final double[][] cos;
  private final Map<Integer, DecompositionSolver> grams = new ConcurrentHashMap<>();

  /** Trend plus {@code harmonics[i]} harmonics of {@code periods[i]}, fit on two longest periods. */
  public FourierRegression(int[] periods, int[] harmonics) {
    this(periods, harmonics, true, 2 * max(periods));
  }

  public FourierRegression(int[] periods, int[] harmonics, boolean trend, int fitWindow) {
    if (periods == null || harmonics == null || periods.length == 0) {
      throw new IllegalArgumentException("periods must not be empty");
    }
    if (periods.length != harmonics.length) {
      throw new IllegalArgumentException(
          "periods and harmonics must have the same length, got " + periods.length + " and "
              + harmonics.length);
    }
    for (int i = 0; i < periods.length; i++) {
      Checks.season("period", periods[i]);
      if (harmonics[i] < 1 || 2 * harmonics[i] >= periods[i]) {
        throw new IllegalArgumentException(
            "harmonics of period " + periods[i] + " must be in [1, " + (periods[i] - 1) / 2
                + "], got " + harmonics[i]);
      }
    }
    // Two terms with the same frequency k/P would make the design matrix singular.
    for (int a = 0; a < periods.length; a++) {
      for (int b = a + 1; b < periods.length; b++) {
        for (int k = 1; k <= harmonics[a]; k++) {
          for (int j = 1; j <= harmonics[b]; j++) {
            if ((long) k * periods[b] == (long) j * periods[a]) {
              throw new IllegalArgumentException(
                  "harmonic " + k + " of period " + periods[a] + " equals harmonic " + j
                      + " of period " + periods[b]);
            }
          }
        }
      }
    }
    this.periods = periods.clone();
    this.harmonics = harmonics.clone();
    this.trend = trend;
    int terms = 0;
    for (int k : harmonics) {
      terms += 2 * k;
    }
    this.columns = 1 + (trend ? 1 : 0) + terms;
    if (fitWindow < minHistory()) {
      throw new IllegalArgumentException(
          "fitWindow must be >= " + minHistory() + ", got " + fitWindow);
    }
    this.fitWindow = fitWindow;
    this.sin = new double[periods.length][];
    this.cos = new double[periods.length][];
    for (int i = 0; i < periods.length; i++) {
      int p = periods[i];
      sin[i] = new double[p];
      cos[i] = new double[p];
      for (int j = 0; j < p; j++) {
        double x = 2 * Math.PI * j / p;
        sin[i][j] = Math.sin(x);
        cos[i][j] = Math.cos(x);
      }
    }
  }

  private static int max(int[] values) {
    if (values == null || values.length == 0) {
      throw new IllegalArgumentException("periods must not be empty");
    }
    return Arrays.stream(values).max().getAsInt();
  }

  @Override
  public String name() {
    StringBuilder b = new StringBuilder(trend ? "fourier+trend/" : "fourier/");
    for (int i = 0; i < periods.length; i++) {
      b.append(i == 0 ? "" : "+").append(periods[i]).append('x').append(harmonics[i]);
    }
    return b.toString();
  }

  @Override
  public int minHistory() {
    return Math.max(max(periods), 2 * columns);
  }

  @Override
  public int lookback() {
    return 0;
  }

  /** Writes the regressors at relative time {@code t} of a window of length {@code n}. */
  private void row(long t, int n, double[] x) {
    int c = 0;
    x[c++] = 1;
    if (trend) {
      x[c++] = (double) t / n;
    }
    for (int i = 0; i < periods.length; i++) {
      int p = periods[i];
      int idx = (int) Math.floorMod(t, (long) p);
      int j = 0;
      double[] si = sin[i];
      double[] co = cos[i];
      for (int k = 1; k <= harmonics[i]; k++) {
        j += idx;
        if (j >= p) {
          j -= p;
        }
        x[c++] = si[j];
        x[c++] = co[j];
      }
    }
  }

  private DecompositionSolver gram(int n) {
    DecompositionSolver solver = grams.get(n);
    if (solver != null) {
      return solver;
    }
    int p = columns;
    double[][] g = new double[p][p];
    double[] x = new double[p];
    for (int t = 0; t < n; t++) {
      row(t, n, x);
      for (int a = 0; a < p; a++) {
        double xa = x[a];
        double[] ga = g[a];
        for (int b = a; b < p; b++) {
          ga[b] += xa * x[b];
        }
      }
    }
    double trace = 0;
    for (int a = 0; a < p; a++) {
      for (int b = 0; b < a; b++) {
        g[a][b] = g[b][a];
      }
      trace += g[a][a];
    }
    // A tiny ridge keeps the decomposition well defined when a window barely covers a period.
    for (int a = 0; a < p; a++) {
      g[a][a] += 1e-10 * trace / p;
    }
    Array2DRowRealMatrix m = new Array2DRowRealMatrix(g, false);
    try {
      solver = new CholeskyDecomposition(m).getSolver();
    } catch (NonPositiveDefiniteMatrixException e) {
      solver = new SingularValueDecomposition(m).getSolver();
    }
    if (grams.size() >= MAX_CACHED_GRAMS) {
      grams.clear();
    }
    grams.put(n, solver);
    return solver;
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, minHistory(), name());
    long start = Math.max(from, to - fitWindow);
    double[] y = series.toArray(start, to);
    int n = y.length;
    int p = columns;
    double[] xty = new double[p];
    double[] x = new double[p];
    for (int t = 0; t < n; t++) {
      row(t, n, x);
      double yt = y[t];
      for (int a = 0; a < p; a++) {
        xty[a] += x[a] * yt;
      }
    }
    RealVector solution = gram(n).solve(new ArrayRealVector(xty, false));
    double[] coef = solution.toArray();
    // Residual statistics over the most recent part of the window.
    int r0 = Math.max(0, n - RESIDUAL_WINDOW);
    double abs = 0;
    double sq = 0;
    double lag = 0;
    double prev = 0;
    for (int t = r0; t < n; t++) {
      row(t, n, x);
      double r = y[t] - dot(coef, x);
      abs += Math.abs(r);
      sq += r * r;
      if (t > r0) {
        lag += r * prev;
      }
      prev = r;
    }
    double phi = sq > 0 ? Math.max(0, Math.min(0.99, lag / sq)) : 0;
    double sigma = Checks.SIGMA_PER_MAE * abs / (n - r0);
    return new Fitted(series, to, start, n, coef, prev, phi, sigma);
  }

  private static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  private final class Fitted implements FittedModel {
    private final SeriesBuffer series;
    private final long origin;
    private final int n;
    private final double[] coef;
    private final double phi;
    private final double sigmaR;
    private final double[] x = new double[columns];
    private double residual;
    private long time;

    Fitted(
        SeriesBuffer series, long time, long origin, int n, double[] coef, double residual,
        double phi, double sigmaR) {
      this.series = series;
      this.time = time;
      this.origin = origin;
      this.n = n;
      this.coef = coef;
      this.residual = residual;
      this.phi = phi;
      this.sigmaR = sigmaR;
    }

    private double curve(long t) {
      row(t - origin, n, x);
      return dot(coef, x);
    }

    @Override
    public String name() {
      return FourierRegression.this.name();
    }

    @Override
    public long time() {
      return time;
    }

    @Override
    public Map<String, Double> parameters() {
      return Map.of("phi", phi, "intercept", coef[0], "sigma", sigmaR);
    }

    @Override
    public void advance() {
      residual = series.get(time) - curve(time);
      time++;
    }

    @Override
    public void forecastMean(int steps, double[] out) {
      double decay = phi;
      for (int k = 0; k < steps; k++) {
        out[k] = curve(time + k) + decay * residual;
        decay *= phi;
      }
    }

    @Override
    public double sigma(int step) {
      return sigmaR * Math.sqrt(1 - Math.pow(phi, 2.0 * step));
    }
  }
}
