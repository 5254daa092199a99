package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ForecastBankTest {
  private static final int DAY = 96;
  private static final int WEEK = 7 * DAY;

  @Test
  void advancesAllSeriesTogetherAndGivesThePlannerItsRates() {
    int size = 64;
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY / 4);
    ForecastBank bank = new ForecastBank(size, c);
    // Half the series carry traffic (hot keys of an airport-like pattern), half stay idle.
    double[][] keys = Synthetic.flights(DAY, 2000).keys(12, size / 2, 1.0, 3 * WEEK);
    double[] bucket = new double[size];
    int[] refitsPerBucket = new int[3 * WEEK];
    long[] lastSelected = new long[size];
    for (int t = 0; t < 3 * WEEK; t++) {
      for (int i = 0; i < size; i++) {
        bucket[i] = i % 2 == 0 ? keys[i / 2][t] : 0;
      }
      bank.observe(bucket);
      for (int i = 0; i < size; i++) {
        SeriesForecaster s = bank.series(i);
        if (s != null && s.selectedAt() != lastSelected[i]) {
          lastSelected[i] = s.selectedAt();
          if (t > 0) {
            refitsPerBucket[t]++;
          }
        }
      }
    }
    assertEquals(3 * WEEK, bank.buckets());
    assertEquals(size / 2, bank.live());
    // The refit schedule is spread: at most ⌈live / refitEvery⌉ + 1 refits in any bucket.
    for (int t = DAY; t < 3 * WEEK; t++) {
      assertTrue(refitsPerBucket[t] <= 2, "bucket " + t + ": " + refitsPerBucket[t]);
    }
    double[] mean = new double[size];
    double[] upper = new double[size];
    bank.horizonRates(4, 0.9, mean, upper);
    for (int i = 0; i < size; i++) {
      if (i % 2 == 1) {
        assertNull(bank.series(i));
        assertEquals(0, mean[i]);
        assertEquals(0, upper[i]);
        assertEquals("idle", bank.forecast(i, 4).model());
        assertEquals(0, bank.forecast(i, 4).upper(3));
      } else {
        Forecast f = bank.forecast(i, 4);
        assertEquals(f.horizonMean(), mean[i], 1e-9);
        assertEquals(f.horizonQuantile(0.9), upper[i], 1e-9);
        assertTrue(upper[i] >= mean[i]);
      }
    }
    // The hot series end up on seasonal models.
    Map<String, Integer> served = bank.servedModels();
    int seasonal = 0;
    for (Map.Entry<String, Integer> e : served.entrySet()) {
      if (!e.getKey().equals("ewma")) {
        seasonal += e.getValue();
      }
    }
    assertTrue(seasonal >= size / 4, served.toString());
    assertTrue(bank.inFallback() <= size / 2);
  }

  @Test
  void aSeriesStartingLateKeepsTheBanksTimeline() {
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY);
    ForecastBank bank = new ForecastBank(4, c);
    double[] y = Synthetic.flights(DAY, 50).series(1, 2 * DAY);
    for (int t = 0; t < 2 * DAY; t++) {
      bank.observe(new double[] {y[t], 0, t >= DAY ? y[t] : 0, 0});
    }
    assertEquals(2L * DAY, bank.series(0).buckets());
    assertEquals(2L * DAY, bank.series(2).buckets());
    assertEquals(bank.phase(2), (int) (bank.series(2).selectedAt() % DAY));
  }

  @Test
  void badBucketsAreRejectedWhole() {
    ForecastBank bank = new ForecastBank(3, ForecasterConfig.defaults(DAY, 4));
    bank.observe(new double[] {1, 2, 3});
    assertThrows(IllegalArgumentException.class, () -> bank.observe(new double[] {1, 2}));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> bank.observe(new double[] {5, Double.NaN, 3}));
    assertTrue(e.getMessage().contains("series 1"), e.getMessage());
    assertEquals(1, bank.buckets());
    assertEquals(1, bank.series(0).buckets());
    assertThrows(IllegalArgumentException.class,
        () -> bank.horizonRates(4, 0.9, new double[2], new double[3]));
    assertThrows(IllegalArgumentException.class,
        () -> bank.horizonRates(5, 0.9, new double[3], new double[3]));
    assertThrows(IllegalArgumentException.class,
        () -> bank.horizonRates(4, 0.3, new double[3], new double[3]));
    assertThrows(IllegalArgumentException.class, () -> new ForecastBank(0,
        ForecasterConfig.defaults(DAY, 4)));
  }

  @Test
  void loadsStoredHistoryAllOrNothing() {
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4);
    double[] y = Synthetic.flights(DAY, 50).series(1, 3 * WEEK);
    double[] bad = y.clone();
    bad[100] = Double.NaN;
    ForecastBank bank = new ForecastBank(3, c);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> bank.loadHistory(y.length, i -> i == 2 ? bad : y));
    assertTrue(e.getMessage().contains("values[100]"), e.getMessage());
    assertEquals(0, bank.buckets());
    assertEquals(0, bank.live());
    assertThrows(IllegalArgumentException.class,
        () -> bank.loadHistory(y.length, i -> new double[5]));
    bank.loadHistory(y.length, i -> i == 0 ? y : i == 1 ? new double[y.length] : null);
    assertEquals(y.length, bank.buckets());
    assertEquals(1, bank.live());
    assertNotNull(bank.series(0));
    assertEquals(y.length, bank.series(0).buckets());
    assertTrue(!bank.series(0).chosenModel().equals("ewma"), bank.series(0).chosenModel());
    bank.observe(new double[] {3, 0, 1});
    assertEquals(y.length + 1, bank.series(2).buckets());
    assertThrows(IllegalArgumentException.class, () -> bank.loadHistory(5, i -> null));
  }

  @Test
  void hotKeysAreForecastPerKey() {
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY);
    KeyForecasts hot = new KeyForecasts(c, 2);
    double[][] keys = Synthetic.flights(DAY, 500).keys(3, 2, 1.0, 2 * DAY);
    hot.track(0xFFFF_0000_0000_0001L);
    for (int t = 0; t < 2 * DAY; t++) {
      if (t == DAY) {
        hot.track(42L);
      }
      Map<Long, Double> rates = new HashMap<>();
      rates.put(0xFFFF_0000_0000_0001L, keys[0][t]);
      if (t >= DAY) {
        rates.put(42L, keys[1][t]);
      }
      hot.observe(rates);
    }
    assertEquals(2, hot.keys().size());
    assertEquals(42L, hot.keys().first()); // unsigned order
    assertNotNull(hot.forecast(42L, 4));
    assertEquals(2L * DAY, hot.series(42L).buckets());
    assertThrows(IllegalArgumentException.class, () -> hot.track(7L));
    assertThrows(IllegalArgumentException.class, () -> hot.observe(Map.of(7L, 1.0)));
    assertThrows(IllegalArgumentException.class, () -> hot.observe(Map.of(42L, -1.0)));
    hot.untrack(42L);
    assertThrows(IllegalArgumentException.class, () -> hot.forecast(42L, 4));
  }
}
