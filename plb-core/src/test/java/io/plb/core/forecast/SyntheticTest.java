package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class SyntheticTest {
  private static final int DAY = 1440;

  @Test
  void sameSeedSameSeriesOtherSeedOtherSeries() {
    Synthetic s = Synthetic.flights(DAY, 40).withBursts(0.001, 3, 30).withDrift(0.05);
    assertArrayEquals(s.series(1, 3 * DAY), s.series(1, 3 * DAY));
    assertFalse(Arrays.equals(s.series(1, 3 * DAY), s.series(2, 3 * DAY)));
    for (double v : s.series(3, 7 * DAY)) {
      assertTrue(v >= 0 && Double.isFinite(v));
    }
  }

  @Test
  void flightsHaveBanksAtFourteenAndSeventeenHoursUtcAndAQuietNight() {
    Synthetic s = Synthetic.flights(DAY, 100);
    double night = s.expected(8 * 60);
    double bank14 = s.expected(14 * 60);
    double between = s.expected(15 * 60 + 30);
    double bank17 = s.expected(17 * 60);
    assertTrue(night < 0.5 * between, night + " " + between);
    assertTrue(bank14 > between && bank17 > between, bank14 + " " + between + " " + bank17);
    // Saturday (day 5) is quieter than Friday (day 4) at the same time.
    assertTrue(s.expected(5L * DAY + 14 * 60) < 0.8 * s.expected(4L * DAY + 14 * 60));
    // Counts are whole numbers around the expected rate.
    double[] y = s.series(1, DAY);
    double sum = 0;
    double expected = 0;
    for (int t = 0; t < DAY; t++) {
      assertEquals(Math.rint(y[t]), y[t]);
      sum += y[t];
      expected += s.expected(t);
    }
    assertEquals(expected, sum, 0.01 * expected);
  }

  @Test
  void hotKeysShareTheLevelInZipfProportions() {
    double[][] keys = Synthetic.flights(96, 1000).withNoise(0, false).keys(5, 10, 1.0, 7 * 96);
    double first = Arrays.stream(keys[0]).sum();
    double second = Arrays.stream(keys[1]).sum();
    double tenth = Arrays.stream(keys[9]).sum();
    assertEquals(2.0, first / second, 0.1);
    assertEquals(10.0, first / tenth, 0.5);
  }

  @Test
  void badSpecsAreRejected() {
    Synthetic s = Synthetic.seasonal(96, 10, 0.1);
    assertThrows(IllegalArgumentException.class, () -> s.withLevel(-1));
    assertThrows(IllegalArgumentException.class, () -> s.withNoise(-0.1, false));
    assertThrows(IllegalArgumentException.class, () -> s.withBursts(2, 1, 1));
    assertThrows(IllegalArgumentException.class, () -> s.withBursts(0.1, 1, 0));
    assertThrows(IllegalArgumentException.class, () -> s.keys(1, 0, 1, 10));
  }
}
