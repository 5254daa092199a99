package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class HoltWintersTest {

  /**
   * Simulates the additive Holt–Winters process itself (error-correction form, the same equations
   * the model fits) with known parameters; returns the series and, in {@code truth}, the final
   * level, trend and the conditional mean of the next {@code ahead} values.
   */
  private static double[] simulate(
      long seed, int m, int n, double alpha, double beta, double gamma, double sigma,
      double amplitude, int ahead, double[] truth) {
    Random rnd = new Random(seed);
    double level = 100;
    double trend = 0.01;
    double[] s = new double[m];
    for (int i = 0; i < m; i++) {
      s[i] = amplitude * Math.sin(2 * Math.PI * i / m) + 0.5 * amplitude * Math.cos(4 * Math.PI * i / m);
    }
    double[] y = new double[n];
    for (int t = 0; t < n; t++) {
      int si = t % m;
      double yt = level + trend + s[si] + sigma * rnd.nextGaussian();
      y[t] = yt;
      double lNew = alpha * (yt - s[si]) + (1 - alpha) * (level + trend);
      trend = beta * (lNew - level) + (1 - beta) * trend;
      level = lNew;
      s[si] = gamma * (yt - lNew) + (1 - gamma) * s[si];
    }
    truth[0] = level;
    truth[1] = trend;
    for (int h = 1; h <= ahead; h++) {
      truth[1 + h] = level + h * trend + s[(n + h - 1) % m];
    }
    return y;
  }

  @Test
  void recoversParametersLevelAndForecastOfAKnownProcess() {
    int m = 48;
    int ahead = 48;
    double sigma = 1;
    double[] truth = new double[2 + ahead];
    double[] y = simulate(11, m, 40 * m, 0.3, 0.02, 0.2, sigma, 10, ahead, truth);
    HoltWinters hw = new HoltWinters(m, 0, y.length);
    FittedModel f = hw.fit(SeriesBuffer.of(y), 0, y.length);
    Map<String, Double> p = f.parameters();
    assertEquals(0.3, p.get("alpha"), 0.08, "alpha " + p);
    assertEquals(0.2, p.get("gamma"), 0.1, "gamma " + p);
    assertTrue(p.get("beta") < 0.1, "beta " + p);
    assertEquals(truth[0], p.get("level"), 1.0 * sigma, "level " + p);
    double[] mean = new double[ahead];
    f.forecastMean(ahead, mean);
    double err = 0;
    for (int h = 0; h < ahead; h++) {
      err += Math.abs(mean[h] - truth[2 + h]);
    }
    // The conditional mean of the process itself: off by much less than the noise (σ = 1) and
    // far less than the seasonal amplitude (10).
    assertTrue(err / ahead < 1.0 * sigma, "mean abs error to the true conditional mean " + err / ahead);
    // One-step σ close to the true noise.
    assertEquals(sigma, f.sigma(1), 0.15);
  }

  @Test
  void fitsADailySeasonOfOneMinuteBucketsAccurately() {
    int day = 1440;
    Synthetic spec = Synthetic.seasonal(day, 50, 0.05).withShift(3);
    // Days 0..4 of the spec have weekday factor 1: four days of history and the fifth day ahead
    // are one pure daily cycle.
    double[] y = spec.series(5, 4 * day);
    int ahead = 120;
    HoltWinters hw = new HoltWinters(day);
    Forecast f = hw.forecast(y, ahead);
    double err = 0;
    double noise = 0;
    for (int h = 0; h < ahead; h++) {
      double actual = spec.expected(4L * day + h);
      err += Math.abs(f.mean(h) - actual);
      noise += 0.05 * actual;
    }
    // The noise-free truth is recovered within a fraction of the noise's standard deviation
    // (each minute's seasonal term rests on a few days of noisy values: about half of it).
    assertTrue(err < 0.65 * noise, "error " + err / ahead + " against noise sd " + noise / ahead);
    assertEquals("holt-winters/1440", f.model());
  }

  @Test
  void weeklySeasonCapturesTheWeekendThatADailySeasonMisses() {
    int day = 24;
    int week = 7 * day;
    Synthetic spec = Synthetic.seasonal(day, 50, 0.02);
    int n = 5 * week; // ends at the start of a week: the weekend is 5..7 days ahead
    double[] y = spec.series(3, n);
    int ahead = week;
    Forecast daily = new HoltWinters(day).forecast(y, ahead);
    Forecast weekly = new HoltWinters(day, week).forecast(y, ahead);
    double errDaily = 0;
    double errWeekly = 0;
    for (int h = 0; h < ahead; h++) {
      double actual = spec.expected((long) n + h);
      errDaily += Math.abs(daily.mean(h) - actual);
      errWeekly += Math.abs(weekly.mean(h) - actual);
    }
    assertTrue(errWeekly < 0.5 * errDaily, "weekly " + errWeekly + " daily " + errDaily);
    assertEquals("holt-winters/24+168", weekly.model());
  }

  @Test
  void fixedParametersAreUsedAsGiven() {
    double[] y = Synthetic.seasonal(24, 10, 0.1).series(1, 24 * 6);
    FittedModel f =
        HoltWinters.withParameters(24, 0, 0.5, 0.0, 0.25, 0).fit(SeriesBuffer.of(y), 0, y.length);
    assertEquals(0.5, f.parameters().get("alpha"));
    assertEquals(0.0, f.parameters().get("beta"));
    assertEquals(0.25, f.parameters().get("gamma"));
  }

  @Test
  void intervalWidensWithTheStep() {
    double[] y = Synthetic.seasonal(24, 10, 0.1).series(1, 24 * 10);
    Forecast f = new HoltWinters(24).forecast(y, 48);
    for (int i = 1; i < 48; i++) {
      assertTrue(f.upper(i) - f.lower(i) >= f.upper(i - 1) - f.lower(i - 1) - 1e-9
          || f.lower(i) == 0, "step " + i);
    }
  }

  @Test
  void invalidParametersAreRejectedClearly() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> new HoltWinters(1));
    assertTrue(e.getMessage().contains("season must be >= 2"), e.getMessage());
    e = assertThrows(
        IllegalArgumentException.class, () -> HoltWinters.withParameters(24, 0, -0.1, 0, 0, 0));
    assertTrue(e.getMessage().contains("alpha"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class, () -> HoltWinters.withParameters(24, 0, 0.5, 1.5, 0, 0));
    assertThrows(
        IllegalArgumentException.class,
        () -> HoltWinters.withParameters(24, 0, 0.5, 0.1, Double.NaN, 0));
    e = assertThrows(IllegalArgumentException.class, () -> new HoltWinters(24, 100));
    assertTrue(e.getMessage().contains("weekly season"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new HoltWinters(24, 0, 47));

    HoltWinters hw = new HoltWinters(4);
    e = assertThrows(IllegalArgumentException.class, () -> hw.forecast(new double[0], 3));
    assertTrue(e.getMessage().contains("history is empty"), e.getMessage());
    double[] withNaN = new double[20];
    Arrays.fill(withNaN, 1);
    withNaN[7] = Double.NaN;
    e = assertThrows(IllegalArgumentException.class, () -> hw.forecast(withNaN, 3));
    assertTrue(e.getMessage().contains("history[7]"), e.getMessage());
    double[] negative = new double[20];
    negative[3] = -1;
    assertThrows(IllegalArgumentException.class, () -> hw.forecast(negative, 3));
    e = assertThrows(IllegalArgumentException.class, () -> hw.forecast(new double[7], 3));
    assertTrue(e.getMessage().contains("at least 8"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> hw.forecast(new double[20], 0));
    assertThrows(IllegalArgumentException.class, () -> hw.forecast(new double[20], 3, 1.0));
    assertThrows(IllegalArgumentException.class, () -> hw.forecast(null, 3));
  }
}
