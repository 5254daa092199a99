package io.plb.core.forecast;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The seasonal shape of earlier weeks (or days), rescaled to the current level, plus a decaying
 * correction for how far the series runs off that shape right now. Cheap, and the workhorse on
 * strongly seasonal traffic: EWMA-like in the next minutes, seasonal shape further out.
 *
 * <p>At origin {@code o} (observations up to {@code o − 1} known), for a bucket {@code t}:
 *
 * <pre>
 *   ref(t)   = mean over lags L of the mean of y[t − L − s .. t − L + s]    (smoothed "same time")
 *   ρ_o      = Σ_{i=1..W} y(o − i) / Σ_{i=1..W} ref(o − i),  clamped to [1/maxRatio, maxRatio]
 *   d_o      = α (y(o−1) − ρ_o ref(o−1)) + (1 − α) d_{o−1}                (EWMA of the deviation)
 *   ŷ(o + k) = ρ_o ref(o + k) + c_k d_o                                    (k = 0 .. horizon − 1)
 * </pre>
 *
 * With lags of one and two weeks, {@code ρ} is the ratio of the last {@code W} buckets to the same
 * buckets in the previous weeks (growth, holidays, a quiet day), and {@code c_k} blends from "stay
 * where the series is now" ({@code c ≈ 1}) to "follow the rescaled shape" ({@code c → 0}) as the
 * step grows. At each fit, α is chosen from a small grid and each {@code c_k ∈ [0, 1]} in closed
 * form by least squares on the {@code k}-step error over the last {@code fitWindow} origins. Steps
 * beyond {@code horizon} use {@code c_{horizon}}.
 *
 * <p>Interval: the {@code k}-step error taken as normal with standard deviation {@code √(π/2) ×}
 * its in-sample mean absolute value at that step (steps beyond {@code horizon}: that of the last
 * step).
 *
 * <p>The fitted model keeps no copy of the series: it reads the buffer, back to {@code maxLag +
 * smooth + levelWindow} buckets before the newest.
 */
public final class SeasonalLevel implements ForecastModel {
  private static final double[] ALPHAS = {0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0};

  private final int[] lags;
  private final int maxLag;
  private final int levelWindow;
  private final int smooth;
  private final int horizon;
  private final double maxRatio;
  private final int fitWindow;

  /**
   * @param lags how far back the shape is taken, e.g. one and two weeks of buckets; each {@code >=
   *     horizon + smooth}
   * @param levelWindow buckets over which the current level is compared to the shape ({@code W})
   * @param smooth half-width of the centred average taken at each lag ({@code s}, 0 = none)
   * @param horizon steps with their own fitted blend coefficient
   */
  public SeasonalLevel(int[] lags, int levelWindow, int smooth, int horizon) {
    this(lags, levelWindow, smooth, horizon, 2.0, 2880);
  }

  public SeasonalLevel(
      int[] lags, int levelWindow, int smooth, int horizon, double maxRatio, int fitWindow) {
    if (lags == null || lags.length == 0) {
      throw new IllegalArgumentException("lags must not be empty");
    }
    Checks.atLeast("levelWindow", levelWindow, 1);
    Checks.atLeast("smooth", smooth, 0);
    Checks.atLeast("horizon", horizon, 1);
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
    this.maxRatio = maxRatio;
    Checks.atLeast("fitWindow", fitWindow, minFit());
    this.fitWindow = fitWindow;
  }

  private int minFit() {
    return Math.max(4 * horizon, 60);
  }

  @Override
  public String name() {
    StringBuilder b = new StringBuilder("seasonal-level/");
    for (int i = 0; i < lags.length; i++) {
      b.append(i == 0 ? "" : "+").append(lags[i]);
    }
    return b.toString();
  }

  @Override
  public int minHistory() {
    return maxLag + smooth + levelWindow + minFit();
  }

  @Override
  public int lookback() {
    return maxLag + smooth + levelWindow;
  }

  private double ratio(double sumY, double sumRef) {
    if (!(sumRef > 0)) {
      return 1;
    }
    return Math.max(1 / maxRatio, Math.min(maxRatio, sumY / sumRef));
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, minHistory(), name());
    int w = levelWindow;
    long a = Math.max(to - fitWindow, from + lookback()); // first origin
    long b = a - lookback(); // first value read
    double[] y = series.toArray(b, to);
    int n = y.length;
    double[] prefix = new double[n + 1];
    for (int i = 0; i < n; i++) {
      prefix[i + 1] = prefix[i] + y[i];
    }
    // ref[i] = ref(b + i) for b + i in [a - W, to); lags >= horizon + smooth keep windows known.
    int r0 = (int) (a - w - b);
    double[] ref = new double[n];
    double width = 2 * smooth + 1;
    for (int i = r0; i < n; i++) {
      double sum = 0;
      for (int lag : lags) {
        sum += prefix[i - lag + smooth + 1] - prefix[i - lag - smooth];
      }
      ref[i] = sum / (width * lags.length);
    }
    // rho[o - b] for origins o in [a, to]
    double[] rho = new double[n + 1];
    double sumY = 0;
    double sumRef = 0;
    for (int i = r0; i < r0 + w; i++) {
      sumY += y[i];
      sumRef += ref[i];
    }
    int first = (int) (a - b);
    for (int o = first; o <= n; o++) {
      rho[o] = ratio(sumY, sumRef);
      if (o < n) {
        sumY += y[o] - y[o - w];
        sumRef += ref[o] - ref[o - w];
      }
    }
    int burn = Math.min(60, (n - first) / 4);
    double bestSse = Double.POSITIVE_INFINITY;
    double bestAlpha = 1;
    double[] bestC = new double[horizon];
    double[] see = new double[horizon];
    double[] sed = new double[horizon];
    double[] sdd = new double[horizon];
    for (double alpha : ALPHAS) {
      Arrays.fill(see, 0);
      Arrays.fill(sed, 0);
      Arrays.fill(sdd, 0);
      double d = 0;
      for (int o = first; o < n; o++) {
        d += alpha * (y[o - 1] - rho[o] * ref[o - 1] - d);
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
        bestAlpha = alpha;
        bestC = c;
      }
    }
    // Final pass: residual spread per step and the deviation at `to`.
    double[] abs = new double[horizon];
    long[] count = new long[horizon];
    double d = 0;
    for (int o = first; o < n; o++) {
      d += bestAlpha * (y[o - 1] - rho[o] * ref[o - 1] - d);
      if (o - first < burn) {
        continue;
      }
      int kmax = Math.min(horizon, n - o);
      for (int k = 0; k < kmax; k++) {
        abs[k] += Math.abs(y[o + k] - rho[o] * ref[o + k] - bestC[k] * d);
        count[k]++;
      }
    }
    d += bestAlpha * (y[n - 1] - rho[n] * ref[n - 1] - d);
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
    return new Fitted(series, to, bestAlpha, bestC, sigma, d, sy, sr);
  }

  private final class Fitted implements FittedModel {
    private final SeriesBuffer series;
    private final double alpha;
    private final double[] c;
    private final double[] sigma;
    private double deviation;
    private double sumY; // Σ y over [time - W, time)
    private double sumRef; // Σ ref over [time - W, time)
    private long time;

    Fitted(
        SeriesBuffer series, long time, double alpha, double[] c, double[] sigma,
        double deviation, double sumY, double sumRef) {
      this.series = series;
      this.time = time;
      this.alpha = alpha;
      this.c = c;
      this.sigma = sigma;
      this.deviation = deviation;
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
      Map<String, Double> p = new HashMap<>();
      p.put("alpha", alpha);
      p.put("ratio", ratio(sumY, sumRef));
      p.put("deviation", deviation);
      for (int k = 0; k < c.length; k++) {
        p.put("c" + (k + 1), c[k]);
      }
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
      deviation += alpha * (yt - ratio(sumY, sumRef) * refT - deviation);
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
        out[k] = rho * sum / (width * lags.length) + c[k] * deviation;
      }
      double last = rolled > 0 ? out[rolled - 1] : 0;
      for (int k = rolled; k < steps; k++) {
        double r = ref(time + k);
        double f = Double.isNaN(r) ? last : rho * r + c[horizon - 1] * deviation;
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
