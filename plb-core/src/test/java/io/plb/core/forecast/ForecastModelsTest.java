package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Properties every model shares: never negative, ordered intervals, calibrated coverage. */
class ForecastModelsTest {
  private static final int DAY = 96;
  private static final int WEEK = 7 * DAY;

  private static List<ForecastModel> models() {
    return List.of(
        new SeasonalNaive(DAY),
        Ewma.fitted(DAY),
        new Ewma(0.3),
        new HoltWinters(DAY),
        new HoltWinters(DAY, WEEK),
        new FourierRegression(new int[] {DAY, WEEK}, new int[] {10, 3}),
        new SeasonalLevel(new int[] {WEEK, 2 * WEEK}, 4, 1, 8),
        new SeasonalLevel(new int[] {DAY, 2 * DAY}, 4, 1, 8),
        new SeasonalLevel(new int[] {DAY, 2 * DAY, WEEK}, 8, 1, 8, 6, 2.0, 2 * DAY));
  }

  /** Fits on [0, fitEnd) and checks the forecast from every origin after it. */
  private static void assertNonNegativeAndOrdered(ForecastModel m, double[] y, int fitEnd) {
    SeriesBuffer b = SeriesBuffer.of(y);
    FittedModel f = m.fit(b, 0, fitEnd);
    for (long t = fitEnd; t < y.length; t++) {
      Forecast fc = f.forecast(12, 0.8);
      for (int k = 0; k < 12; k++) {
        assertTrue(fc.lower(k) >= 0, m.name() + " t " + t);
        assertTrue(fc.lower(k) <= fc.mean(k) && fc.mean(k) <= fc.upper(k), m.name() + " t " + t);
        assertTrue(fc.quantile(k, 0.05) >= 0 && fc.quantile(k, 0.95) >= fc.mean(k));
      }
      f.advance();
    }
  }

  @Test
  void forecastsAreNeverNegativeOnASparseBurstySeriesNearZero() {
    Synthetic sparse = Synthetic.flights(DAY, 0.3).withBursts(0.02, 20, 6);
    double[] y = sparse.series(5, 4 * WEEK);
    int zeros = 0;
    for (double v : y) {
      zeros += v == 0 ? 1 : 0;
    }
    assertTrue(zeros > y.length / 3, "mostly zeros: " + zeros);
    for (ForecastModel m : models()) {
      assertNonNegativeAndOrdered(m, y, 3 * WEEK);
    }
  }

  @Test
  void forecastsAreNeverNegativeWhenTheSeriesCollapsesToZero() {
    // Busy and rising for three weeks, then nothing: trends and seasonal terms point below zero.
    double[] busy = Synthetic.seasonal(DAY, 100, 0.05).withDrift(0.2).series(6, 3 * WEEK);
    double[] y = new double[3 * WEEK + 2 * DAY];
    System.arraycopy(busy, 0, y, 0, busy.length);
    for (ForecastModel m : models()) {
      assertNonNegativeAndOrdered(m, y, 3 * WEEK - DAY);
    }
    // A forecaster that saw only the collapse, too.
    ForecasterConfig config = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY / 4);
    SeriesForecaster sf = new SeriesForecaster(config);
    for (double v : y) {
      sf.observe(v);
      Forecast f = sf.forecast(8);
      for (int k = 0; k < 8; k++) {
        assertTrue(f.lower(k) >= 0 && f.lower(k) <= f.mean(k) && f.mean(k) <= f.upper(k));
      }
    }
  }

  /** Share of actuals inside the 80 % interval, over steps 1..steps from every origin. */
  private static double coverage(ForecastModel m, double[] y, int fitEnd, int steps) {
    SeriesBuffer b = SeriesBuffer.of(y);
    FittedModel f = m.fit(b, 0, fitEnd);
    long inside = 0;
    long total = 0;
    for (int t = fitEnd; t + steps <= y.length; t++) {
      Forecast fc = f.forecast(steps, 0.8);
      for (int k = 0; k < steps; k++) {
        double v = y[t + k];
        if (v >= fc.lower(k) && v <= fc.upper(k)) {
          inside++;
        }
        total++;
      }
      f.advance();
    }
    return (double) inside / total;
  }

  private static void assertCoverage(String what, double c) {
    assertTrue(c >= 0.7 && c <= 0.9, what + ": 80 % interval covered " + c);
  }

  @Test
  void intervalsCoverAboutTheirNominalShare() {
    int steps = 8;
    // Each model on data that fits its assumptions.
    double[] seasonal = Synthetic.seasonal(DAY, 100, 0.08).series(31, 4 * WEEK);
    assertCoverage("seasonal-naive",
        coverage(new SeasonalNaive(WEEK), seasonal, 3 * WEEK, steps));
    assertCoverage("fourier",
        coverage(new FourierRegression(new int[] {DAY, WEEK}, new int[] {10, 3}), seasonal,
            3 * WEEK, steps));
    assertCoverage("seasonal-level",
        coverage(new SeasonalLevel(new int[] {WEEK, 2 * WEEK}, 4, 1, steps), seasonal, 3 * WEEK,
            steps));
    assertCoverage("seasonal-level with deviation regression",
        coverage(new SeasonalLevel(new int[] {DAY, 2 * DAY, WEEK, 2 * WEEK}, 8, 1, steps, 6, 2.0,
            2 * DAY), seasonal, 3 * WEEK, steps));
    assertCoverage("holt-winters weekly",
        coverage(new HoltWinters(DAY, WEEK), seasonal, 3 * WEEK, steps));

    // A local level (random walk plus noise): what exponential smoothing assumes.
    Random rnd = new Random(32);
    double[] local = new double[3 * DAY * 7];
    double level = 200;
    for (int t = 0; t < local.length; t++) {
      level += 2 * rnd.nextGaussian();
      local[t] = Math.max(0, level + 4 * rnd.nextGaussian());
    }
    assertCoverage("ewma", coverage(Ewma.fitted(DAY), local, 2 * WEEK, steps));
  }

  @Test
  void servedIntervalsCoverAboutTheirNominalShareOnTrafficLikeCounts() {
    // Poisson counts with banks; the served interval comes from realised errors.
    Synthetic spec = Synthetic.flights(DAY, 60).withBursts(0.002, 0.5, 8);
    double[] y = spec.series(33, 5 * WEEK);
    ForecasterConfig config = ForecasterConfig.defaults(DAY, 4);
    SeriesForecaster sf = new SeriesForecaster(config);
    long inside = 0;
    long total = 0;
    Forecast[] issued = new Forecast[y.length];
    for (int t = 0; t < y.length; t++) {
      if (t >= 3 * WEEK) {
        for (int k = 0; k < 4 && t - 1 - k >= 0; k++) {
          Forecast f = issued[t - 1 - k];
          if (v(y, t) >= f.lower(k) && v(y, t) <= f.upper(k)) {
            inside++;
          }
          total++;
        }
      }
      sf.observe(y[t]);
      issued[t] = sf.forecast(4);
    }
    assertCoverage("served " + sf.currentModel(), (double) inside / total);
  }

  private static double v(double[] y, int t) {
    return y[t];
  }

  @Test
  void forecastRecordRejectsDisorderAndNegatives() {
    double[] one = {1};
    assertThrows(IllegalArgumentException.class,
        () -> new Forecast(new double[] {1}, new double[] {2}, new double[] {3}, 0.8, "m"));
    assertThrows(IllegalArgumentException.class,
        () -> new Forecast(new double[] {-1}, new double[] {-2}, new double[] {3}, 0.8, "m"));
    assertThrows(IllegalArgumentException.class,
        () -> new Forecast(one, one, new double[] {Double.NaN}, 0.8, "m"));
    assertThrows(IllegalArgumentException.class, () -> new Forecast(one, one, one, 1.0, "m"));
    assertThrows(IllegalArgumentException.class,
        () -> new Forecast(one, one, new double[] {1, 2}, 0.8, "m"));
    assertThrows(IllegalArgumentException.class, () -> new Forecast(one, one, one, 0.8, ""));
    // Quantiles: exact at the interval's ends, the mean at 0.5, never negative.
    Forecast f = Forecast.fromRaw("m", new double[] {10, -3}, new double[] {2, 2}, 0.8);
    assertEquals(f.upper(0), f.quantile(0, 0.9), 1e-9);
    assertEquals(f.lower(0), f.quantile(0, 0.1), 1e-9);
    assertEquals(10, f.quantile(0, 0.5), 1e-12);
    assertEquals(0, f.mean(1));
    assertEquals(0, f.lower(1));
    assertTrue(f.quantile(1, 0.99) >= 0 && f.quantile(1, 0.01) == 0);
    assertEquals(10 + 2 * Forecast.z(0.9), f.upper(0), 1e-9);
    // Arrays are copied: changing one handed out changes nothing.
    f.mean()[0] = 99;
    assertEquals(10, f.mean(0));
  }

  @Test
  void modelParametersAreValidated() {
    assertThrows(IllegalArgumentException.class, () -> new SeasonalNaive(1));
    assertThrows(IllegalArgumentException.class, () -> new Ewma(-0.1));
    assertThrows(IllegalArgumentException.class, () -> new Ewma(0));
    assertThrows(IllegalArgumentException.class, () -> new Ewma(Double.NaN));
    assertThrows(IllegalArgumentException.class,
        () -> new FourierRegression(new int[] {24}, new int[] {12}));
    assertThrows(IllegalArgumentException.class,
        () -> new FourierRegression(new int[] {24, 168}, new int[] {2, 7}));
    assertThrows(IllegalArgumentException.class,
        () -> new FourierRegression(new int[] {1}, new int[] {1}));
    assertThrows(IllegalArgumentException.class,
        () -> new FourierRegression(new int[] {24}, new int[] {2, 3}));
    assertThrows(IllegalArgumentException.class,
        () -> new SeasonalLevel(new int[] {6}, 4, 1, 8));
    assertThrows(IllegalArgumentException.class,
        () -> new SeasonalLevel(new int[] {}, 4, 1, 8));
    assertThrows(IllegalArgumentException.class,
        () -> new SeasonalLevel(new int[] {24}, 0, 1, 8));
    assertThrows(IllegalArgumentException.class,
        () -> new SeasonalLevel(new int[] {24}, 4, 1, 8, 0, 0.5, 100));
    assertThrows(IllegalArgumentException.class,
        () -> new SeasonalLevel(new int[] {24}, 4, 1, 8, -1, 2, 100));
    for (ForecastModel m : models()) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> m.forecast(new double[0], 4));
      assertTrue(e.getMessage().contains("empty"), m.name() + ": " + e.getMessage());
      double[] bad = new double[m.minHistory() + 5];
      bad[2] = Double.NaN;
      assertThrows(IllegalArgumentException.class, () -> m.forecast(bad, 4), m.name());
      double[] inf = new double[m.minHistory() + 5];
      inf[2] = Double.POSITIVE_INFINITY;
      assertThrows(IllegalArgumentException.class, () -> m.forecast(inf, 4), m.name());
    }
  }

  @Test
  void seasonalLevelFollowsTheShapeOfEarlierWeeksAtTheCurrentLevel() {
    // Three weeks of a weekly-repeating pattern; this week runs 30 % higher from its start.
    Synthetic spec = Synthetic.flights(DAY, 100).withNoise(0, false);
    double[] y = spec.series(1, 3 * WEEK + 3 * DAY);
    for (int t = 2 * WEEK + DAY; t < y.length; t++) {
      y[t] *= 1.3;
    }
    int origin = 3 * WEEK + DAY / 2; // midday: the smoothing window stays within one day
    double[] history = java.util.Arrays.copyOf(y, origin);
    Forecast f = new SeasonalLevel(new int[] {WEEK, 2 * WEEK}, 4, 1, 8).forecast(history, 8);
    for (int k = 0; k < 8; k++) {
      assertEquals(y[origin + k], f.mean(k), 0.03 * y[origin + k], "step " + (k + 1));
    }
  }
}
