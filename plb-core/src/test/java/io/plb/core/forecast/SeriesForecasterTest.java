package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class SeriesForecasterTest {
  private static final int DAY = 96;
  private static final int WEEK = 7 * DAY;

  /** Seasonal-level against EWMA, one refit after three weeks and none after it. */
  private static ForecasterConfig config() {
    return new ForecasterConfig(
        List.of(new SeasonalLevel(new int[] {WEEK, 2 * WEEK}, 4, 1, 4)),
        Ewma.fitted(DAY), DAY, 4, 3 * WEEK, 2 * WEEK + 3 * DAY, DAY, 1, 0.02, false, 8, 0.05, 8,
        0.8);
  }

  @Test
  void fallsBackWhenTheRegimeChangesAndReturnsWhenItRecovers() {
    Synthetic spec = Synthetic.flights(DAY, 100);
    int n = 3 * WEEK + 4 * DAY;
    double[] y = spec.series(7, n);
    // Day 22: the daily pattern moves by twelve hours (a disruption); then back to normal.
    int from = 3 * WEEK + DAY;
    int to = 3 * WEEK + 2 * DAY;
    double[] shifted = spec.withShift(12).series(8, n);
    System.arraycopy(shifted, from, y, from, to - from);

    SeriesForecaster sf = new SeriesForecaster(config());
    int firstFallback = -1;
    int fallbackDuringDisruption = 0;
    int fallbackLastDay = 0;
    for (int t = 0; t < n; t++) {
      sf.observe(y[t]);
      if (t == from - 1) {
        assertEquals("seasonal-level/672+1344", sf.chosenModel());
        assertFalse(sf.inFallback(), "before the change");
        assertEquals("seasonal-level/672+1344", sf.currentModel());
      }
      if (t >= from && t < to && sf.inFallback()) {
        fallbackDuringDisruption++;
        if (firstFallback < 0) {
          firstFallback = t - from;
        }
        assertEquals("ewma", sf.currentModel());
        assertEquals("ewma", sf.forecast(4).model());
      }
      if (t >= n - DAY && sf.inFallback()) {
        fallbackLastDay++;
      }
    }
    assertTrue(firstFallback >= 0 && firstFallback <= 16,
        "fallback within four hours of the change, was " + firstFallback);
    assertTrue(fallbackDuringDisruption > 0.75 * (to - from),
        "in fallback for most of the disruption: " + fallbackDuringDisruption);
    assertTrue(fallbackLastDay < 0.1 * DAY, "back to the model: " + fallbackLastDay);
    assertFalse(sf.inFallback());
    assertEquals("seasonal-level/672+1344", sf.currentModel());
    // No refit happened after the first one at three weeks: the return came from tracking.
    assertEquals(3 * WEEK, sf.selectedAt());
    SeriesForecaster.Accuracy acc = sf.accuracy();
    assertTrue(acc.mase() < acc.reactiveMase(), acc.toString());
    assertTrue(acc.wape() > 0 && acc.wape() < 0.2, acc.toString());
  }

  @Test
  void refitsOnItsScheduleOnly() {
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY / 2);
    SeriesForecaster sf = new SeriesForecaster(c, 7, 0);
    double[] y = Synthetic.flights(DAY, 30).series(3, 2 * DAY);
    long last = -1;
    int refits = 0;
    for (double v : y) {
      sf.observe(v);
      if (sf.selectedAt() != last) {
        last = sf.selectedAt();
        refits++;
        assertTrue(last == 1 || last % (DAY / 2) == 7, "refit at " + last);
      }
    }
    assertEquals(1 + 4, refits); // the first observation, then buckets 7, 55, 103, 151
  }

  @Test
  void isDeterministic() {
    double[] y = Synthetic.flights(DAY, 30).withBursts(0.01, 2, 5).series(9, 3 * WEEK);
    ForecasterConfig c = ForecasterConfig.defaults(DAY, 4).withRefitEvery(DAY);
    SeriesForecaster a = new SeriesForecaster(c, 3, 0);
    SeriesForecaster b = new SeriesForecaster(c, 3, 0);
    for (double v : y) {
      a.observe(v);
      b.observe(v);
    }
    assertEquals(a.forecast(12), b.forecast(12));
    assertEquals(a.accuracy(), b.accuracy());
  }

  @Test
  void badInputIsRejectedAndChangesNothing() {
    SeriesForecaster sf = new SeriesForecaster(ForecasterConfig.defaults(DAY, 4));
    assertThrows(IllegalStateException.class, () -> sf.forecast(4));
    assertThrows(IllegalStateException.class, sf::currentModel);
    for (double v : Synthetic.flights(DAY, 30).series(1, DAY)) {
      sf.observe(v);
    }
    Forecast before = sf.forecast(6);
    long buckets = sf.buckets();
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> sf.observe(Double.NaN));
    assertTrue(e.getMessage().contains("finite"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> sf.observe(-1));
    assertThrows(IllegalArgumentException.class, () -> sf.observe(Double.POSITIVE_INFINITY));
    assertEquals(buckets, sf.buckets());
    assertEquals(before, sf.forecast(6));
    assertThrows(IllegalArgumentException.class, () -> sf.forecast(0));
    double[] out = new double[2];
    assertThrows(IllegalArgumentException.class, () -> sf.horizonRate(5, 0.9, out));
    assertThrows(IllegalArgumentException.class, () -> sf.horizonRate(4, 0.2, out));
    assertThrows(IllegalArgumentException.class, () -> new SeriesForecaster(null));
    assertThrows(IllegalArgumentException.class,
        () -> new SeriesForecaster(ForecasterConfig.defaults(DAY, 4), -1, 0));
  }

  @Test
  void horizonRateAgreesWithTheForecast() {
    SeriesForecaster sf = new SeriesForecaster(ForecasterConfig.defaults(DAY, 4));
    for (double v : Synthetic.flights(DAY, 30).series(4, 3 * WEEK)) {
      sf.observe(v);
    }
    Forecast f = sf.forecast(4);
    double[] out = new double[2];
    sf.horizonRate(4, 0.9, out);
    assertEquals(f.horizonMean(), out[0], 1e-9);
    assertEquals(f.horizonQuantile(0.9), out[1], 1e-9);
    assertTrue(out[1] > out[0]);
    // Beyond the tracked horizon the forecast still works, with intervals that keep growing.
    Forecast longer = sf.forecast(3 * DAY);
    assertEquals(3 * DAY, longer.steps());
  }

  @Test
  void configRejectsBadValuesNamingThem() {
    ForecasterConfig d = ForecasterConfig.defaults(DAY, 4);
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> d.withRefitEvery(0));
    assertTrue(e.getMessage().contains("refitEvery"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> d.withHistory(WEEK));
    assertTrue(e.getMessage().contains("history"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new ForecasterConfig(d.candidates(), d.reactive(), 1, 4, 10, d.history(), DAY, 1,
            0.02, false, 8, 0.05, 8, 0.8));
    assertTrue(e.getMessage().contains("season"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new ForecasterConfig(d.candidates(), d.reactive(), DAY, 4, 10, d.history(), DAY, 1,
            0.02, false, 8, 0.05, 8, 1.5));
    assertTrue(e.getMessage().contains("coverage"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new ForecasterConfig(d.candidates(), d.reactive(), DAY, 4, 10, d.history(), DAY, 1,
            Double.NaN, false, 8, 0.05, 8, 0.8));
    assertTrue(e.getMessage().contains("selectionMargin"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> ForecasterConfig.defaults(DAY, 0));
    assertThrows(IllegalArgumentException.class, () -> ForecasterConfig.defaults(DAY, DAY + 1));
  }
}
