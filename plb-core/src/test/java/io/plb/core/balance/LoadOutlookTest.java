package io.plb.core.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class LoadOutlookTest {
  private static final long SLICE = 1L << (64 - Ring.SLICE_BITS);

  @Test
  void rangeLoadIsProRataPlusHotKeysWhereTheyFall() {
    double[] mean = new double[Ring.SLICES];
    double[] upper = new double[Ring.SLICES];
    mean[0] = 8;
    upper[0] = 10;
    mean[1] = 4;
    upper[1] = 4;
    long key = SLICE + SLICE / 4;
    LoadOutlook o = LoadOutlook.ofSlices(mean, upper,
        List.of(new LoadOutlook.HotKey(key, 3, 5), new LoadOutlook.HotKey(key, 1, 1)));
    assertEquals(16, o.totalMean(), 1e-12);
    assertEquals(20, o.totalUpper(), 1e-12);
    assertEquals(4, o.mean(0, SLICE / 2), 1e-9); // half of slice 0
    assertEquals(5, o.upper(0, SLICE / 2), 1e-9);
    assertEquals(1 + 4, o.mean(SLICE, key + 1), 1e-9); // a quarter of slice 1, and the key
    assertEquals(1, o.mean(SLICE, key), 1e-9); // the key is not before its own hash
    assertEquals(20, o.upper(0, Ring.RING_END), 1e-12);
    assertEquals(6, o.hottestKey(SLICE, 2 * SLICE).upper(), 1e-12);
    assertNull(o.hottestKey(0, SLICE));
  }

  @Test
  void splitPointHalvesTheLoadAndStaysStrictlyInside() {
    Random rnd = new Random(5);
    for (int c = 0; c < 300; c++) {
      double[] mean = new double[Ring.SLICES];
      for (int i = 0; i < mean.length; i++) {
        mean[i] = rnd.nextInt(3) == 0 ? 0 : rnd.nextDouble();
      }
      LoadOutlook o = LoadOutlook.ofSlices(mean, mean.clone(), List.of());
      long a = rnd.nextLong();
      long b = rnd.nextLong();
      long start = Long.compareUnsigned(a, b) < 0 ? a : b;
      long end = Long.compareUnsigned(a, b) < 0 ? b : Ring.RING_END;
      if (end - start < 2) {
        continue;
      }
      long at = o.splitPoint(start, end);
      assertTrue(Ring.strictlyInside(start, end, at));
      double total = o.upper(start, end);
      if (total > 0) {
        double left = o.upper(start, at);
        // One hash of the densest slice can move at most total / 2^40: nothing.
        assertEquals(total / 2, left, 1e-9 * Math.max(1, total), "seed case " + c);
      }
    }
  }

  @Test
  void aHotKeyEndsWholeOnTheSideThatBalancesBetter() {
    long key = 1000;
    LoadOutlook o = LoadOutlook.ofSegments(new long[] {0}, new double[] {0}, new double[] {0},
        List.of(new LoadOutlook.HotKey(key, 6, 6), new LoadOutlook.HotKey(2000, 4, 4)));
    long at = o.splitPoint(0, 5000);
    assertTrue(at > key && at <= 2000, "" + at);
    assertEquals(6, o.upper(0, at), 1e-12);
    // No load at all: the middle.
    assertEquals(2500, LoadOutlook.uniform(0, 0).splitPoint(0, 5000), 1);
    assertThrows(IllegalArgumentException.class, () -> o.splitPoint(7, 8));
    // The last hash of the ring.
    long last = -1L;
    assertTrue(Ring.strictlyInside(last - 1, Ring.RING_END,
        LoadOutlook.uniform(1, 1).splitPoint(last - 1, Ring.RING_END)));
  }

  @Test
  void rangeRatesInOneSweepMatchRangeByRange() {
    Random rnd = new Random(9);
    for (int c = 0; c < 50; c++) {
      long[] starts = BalanceFixtures.randomStarts(rnd, 1 + rnd.nextInt(300));
      double[] mean = new double[Ring.SLICES];
      double[] upper = new double[Ring.SLICES];
      for (int i = 0; i < mean.length; i++) {
        mean[i] = rnd.nextDouble();
        upper[i] = mean[i] * 1.5;
      }
      List<LoadOutlook.HotKey> hot = List.of(new LoadOutlook.HotKey(rnd.nextLong(), 3, 4),
          new LoadOutlook.HotKey(starts[starts.length - 1], 1, 2), new LoadOutlook.HotKey(-1L, 1, 1));
      LoadOutlook o = LoadOutlook.ofSlices(mean, upper, hot);
      double[] m = new double[starts.length];
      double[] u = new double[starts.length];
      o.rangeRates(starts, m, u);
      for (int i = 0; i < starts.length; i++) {
        long end = i + 1 < starts.length ? starts[i + 1] : Ring.RING_END;
        assertEquals(o.mean(starts[i], end), m[i], 1e-9);
        assertEquals(o.upper(starts[i], end), u[i], 1e-9);
      }
    }
  }

  @Test
  void refusesBadInput() {
    assertThrows(IllegalArgumentException.class,
        () -> LoadOutlook.ofSlices(new double[3], new double[3], List.of()));
    double[] m = new double[Ring.SLICES];
    double[] u = new double[Ring.SLICES];
    m[7] = 2;
    u[7] = 1;
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> LoadOutlook.ofSlices(m, u, List.of()));
    assertTrue(e.getMessage().contains("segment 7"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> LoadOutlook.ofSegments(new long[] {5},
        new double[] {1}, new double[] {1}, List.of()));
    assertThrows(IllegalArgumentException.class, () -> LoadOutlook.ofSegments(
        new long[] {0, 9, 9}, new double[3], new double[3], List.of()));
    assertThrows(IllegalArgumentException.class, () -> new LoadOutlook.HotKey(1, -1, 0));
    assertThrows(IllegalArgumentException.class, () -> LoadOutlook.ofRanges(
        List.of(BalanceRange.of(0, 10, "a")), new double[1], new double[1], List.of()));
  }
}
