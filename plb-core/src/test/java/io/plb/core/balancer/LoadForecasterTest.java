package io.plb.core.balancer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.balance.CostModel;
import io.plb.core.balance.LoadOutlook;
import io.plb.core.command.Command;
import io.plb.core.error.PlbException;
import io.plb.core.forecast.ForecasterConfig;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HotKey;
import io.plb.core.load.HotKeys;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.LoadFigures;
import io.plb.core.load.Resolution;
import io.plb.core.load.SliceLoad;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The leader's forecaster: the two resolutions, the blend, hot keys, and warming. */
class LoadForecasterTest {
  static final long FINE = 200;
  static final long COARSE = 1000;

  static LoadForecaster.Settings settings(long horizon) {
    return new LoadForecaster.Settings(FINE, COARSE, horizon, 0.9, new CostModel(1, 0),
        ForecasterConfig.defaults(60, 2), 8);
  }

  /** A fine bucket at {@code start}: {@code in} messages in each given slice. */
  static LoadBucket fine(long start, long in, int... slices) {
    List<SliceLoad> s = new ArrayList<>();
    for (int slice : slices) {
      s.add(new SliceLoad(slice, new LoadFigures(in, 0, 0, 0, 0, 0)));
    }
    return new LoadBucket(Resolution.FINE, start, FINE, FINE, 1, s, HotKeys.EMPTY, List.of());
  }

  /** The coarse bucket the fine buckets {@code fines} make. */
  static LoadBucket coarse(List<LoadBucket> fines) {
    long start = Math.floorDiv(fines.get(0).startMillis(), COARSE) * COARSE;
    java.util.TreeMap<Integer, Long> sums = new java.util.TreeMap<>();
    long covered = 0;
    for (LoadBucket f : fines) {
      covered += f.coveredMillis();
      for (SliceLoad s : f.slices()) {
        sums.merge(s.slice(), s.load().messagesIn(), Long::sum);
      }
    }
    List<SliceLoad> s = new ArrayList<>();
    sums.forEach((k, v) -> s.add(new SliceLoad(k, new LoadFigures(v, 0, 0, 0, 0, 0))));
    return new LoadBucket(Resolution.COARSE, start, COARSE, covered, fines.size(), s,
        HotKeys.EMPTY, List.of());
  }

  @Test
  void beforeAnyCoarseBucketTheOutlookIsTheRecentRate() {
    LoadForecaster f = new LoadForecaster(settings(2000));
    f.observe(fine(10_000, 20, 5)); // 20 messages in 200 ms: 100/s
    f.observe(fine(10_200, 40, 5)); // 200/s; the recent window is 5 buckets
    assertEquals(1.0, f.nearShare());
    LoadOutlook o = f.outlook();
    long start = (long) 5 << (64 - Ring.SLICE_BITS);
    assertEquals(150.0, o.mean(start, start + (1L << (64 - Ring.SLICE_BITS))), 1e-9);
    assertEquals(150.0, o.totalMean(), 1e-9);
    assertFalse(f.observe(fine(10_200, 99, 5)), "a bucket already taken is ignored");
  }

  @Test
  void theRunningCoarseBucketBecomesTheBanksNextValueAndTheBlendFollowsTheClock() {
    LoadForecaster f = new LoadForecaster(settings(2000));
    for (long t = 10_000; t < 13_000; t += FINE) {
      f.observe(fine(t, 20, 7)); // 100/s steady
    }
    // Fine buckets 10.0 .. 12.8 s: coarse buckets 10 s and 11 s are complete, 12 s is running.
    assertEquals(2, f.bank().buckets());
    // Now is 13.0 s: nothing is left of the running coarse bucket, all from the bank.
    assertEquals(0.0, f.nearShare(), 1e-12);
    f.observe(fine(13_000, 20, 7));
    assertEquals(3, f.bank().buckets());
    // Now is 13.2 s: 0.8 s of the 2 s horizon is left in the running bucket.
    assertEquals(0.4, f.nearShare(), 1e-12);
    LoadOutlook o = f.outlook();
    assertEquals(100.0, o.totalMean(), 1.0);
    assertTrue(o.totalUpper() >= o.totalMean());
  }

  @Test
  void hotKeysBecomePointLoadsTakenOutOfTheirSlice() {
    LoadForecaster f = new LoadForecaster(settings(2000));
    long hot = ((long) 9 << (64 - Ring.SLICE_BITS)) | 77;
    HotKeys keys = new HotKeys(List.of(new HotKey(hot, 30, 0, 0)), 0);
    f.observe(new LoadBucket(Resolution.FINE, 10_000, FINE, FINE, 1,
        List.of(new SliceLoad(9, new LoadFigures(40, 0, 0, 0, 0, 0))), keys, List.of()));
    LoadOutlook o = f.outlook();
    assertEquals(1, o.hotKeys().size());
    assertEquals(hot, o.hotKeys().get(0).hash());
    assertEquals(150.0, o.hotKeys().get(0).mean(), 1e-9); // 30 in 200 ms
    assertEquals(200.0, o.totalMean(), 1e-9); // the slice keeps the other 50/s
    assertEquals(hot, o.hottestKey(0, Ring.RING_END).hash());
  }

  @Test
  void aForecasterWarmedFromStoredHistoryMatchesOneThatFollowedIt() {
    LoadForecaster followed = new LoadForecaster(settings(2000));
    List<LoadBucket> fines = new ArrayList<>();
    List<LoadBucket> coarses = new ArrayList<>();
    List<LoadBucket> current = new ArrayList<>();
    for (long t = 10_000; t < 40_000; t += FINE) {
      LoadBucket b = fine(t, 10 + (t / 1000) % 7 * 3, 3, 4000);
      followed.observe(b);
      fines.add(b);
      if (!current.isEmpty() && Math.floorDiv(t, COARSE) * COARSE
          != Math.floorDiv(current.get(0).startMillis(), COARSE) * COARSE) {
        coarses.add(coarse(current));
        current.clear();
      }
      current.add(b);
    }
    coarses.add(coarse(current)); // the running one, as the store has it
    LoadForecaster warmed = new LoadForecaster(settings(2000));
    warmed.warm(coarses.iterator(), fines.subList(fines.size() - 10, fines.size()));
    LoadForecaster again = new LoadForecaster(settings(2000));
    again.warm(coarses.iterator(), fines.subList(fines.size() - 10, fines.size()));
    assertEquals(followed.bank().buckets(), warmed.bank().buckets());
    assertEquals(followed.newestFineMillis(), warmed.newestFineMillis());
    assertArrayEquals(followed.recentRates(), warmed.recentRates(), 1e-9);
    assertEquals(followed.nearShare(), warmed.nearShare());
    assertEquals(2, warmed.health().liveSeries());
    // The same stored data gives the same outlook, whoever warms from it.
    assertEquals(warmed.outlook().toString(), again.outlook().toString());
    assertEquals(warmed.outlook().totalUpper(), again.outlook().totalUpper());
    assertThrows(IllegalStateException.class,
        () -> warmed.warm(coarses.iterator(), fines));
  }

  @Test
  void aTelemetryOutageIsFilledWithTheForecastNotTakenAsNoLoad() {
    LoadForecaster f = new LoadForecaster(settings(2000));
    LoadForecaster zeros = new LoadForecaster(settings(2000)); // the same load, reported as 0
    for (long t = 10_000; t < 40_000; t += FINE) {
      f.observe(fine(t, 20, 7)); // 100/s
      zeros.observe(fine(t, 20, 7));
    }
    // No report at all from 40 s to 55 s (no leader, say); the other saw the load fall to 0.
    for (long t = 40_000; t < 55_000; t += FINE) {
      zeros.observe(fine(t, 0, 7));
    }
    f.observe(fine(55_000, 20, 7));
    zeros.observe(fine(55_000, 20, 7));
    assertEquals(zeros.bank().buckets(), f.bank().buckets(), "the gap still advances the bank");
    assertEquals(15, f.imputedBuckets(), "40 s .. 54 s: fifteen coarse buckets no report covered");
    assertEquals(0, zeros.imputedBuckets());
    double filled = f.outlook().totalMean();
    double fell = zeros.outlook().totalMean();
    assertTrue(filled > 90 && filled < 110, "after the outage the outlook is the load: " + filled);
    assertTrue(fell < 75, "a real fall to 0 does pull the forecast down: " + fell);
  }

  @Test
  void warmingFillsCoarseBucketsNoReportCoveredFromASeasonEarlier() {
    List<LoadBucket> fines = new ArrayList<>();
    List<LoadBucket> all = new ArrayList<>();
    List<LoadBucket> holed = new ArrayList<>();
    List<LoadBucket> zeroed = new ArrayList<>();
    for (long c = 10_000; c < 200_000; c += COARSE) {
      List<LoadBucket> in = new ArrayList<>();
      List<LoadBucket> none = new ArrayList<>();
      for (long t = c; t < c + COARSE; t += FINE) {
        // A "day" of 60 coarse buckets: 100/s in its first half, 300/s in the second.
        in.add(fine(t, (c / COARSE) % 60 < 30 ? 20 : 60, 7));
        none.add(fine(t, 0, 7));
      }
      fines.addAll(in);
      all.add(coarse(in));
      boolean outage = c >= 150_000 && c < 170_000; // twenty buckets no report covered
      if (!outage) {
        holed.add(coarse(in));
      }
      zeroed.add(coarse(outage ? none : in));
    }
    List<LoadBucket> last = fines.subList(fines.size() - 10, fines.size());
    LoadForecaster complete = new LoadForecaster(settings(2000));
    complete.warm(all.iterator(), last);
    LoadForecaster filled = new LoadForecaster(settings(2000));
    filled.warm(holed.iterator(), last);
    LoadForecaster zeros = new LoadForecaster(settings(2000));
    zeros.warm(zeroed.iterator(), last);
    assertEquals(20, filled.imputedBuckets());
    assertEquals(0, complete.imputedBuckets());
    assertEquals(complete.bank().buckets(), filled.bank().buckets());
    // The load repeats every season, so the hole filled from a season earlier is the load itself.
    assertEquals(complete.outlook().toString(), filled.outlook().toString());
    assertTrue(zeros.outlook().totalMean() != filled.outlook().totalMean()
        || zeros.outlook().totalUpper() != filled.outlook().totalUpper(),
        "zeros in the hole would have given another forecast");
  }

  @Test
  void viewComparesActualWithTheForecastIssuedBeforeIt() {
    LoadForecaster f = new LoadForecaster(settings(2000));
    for (long t = 10_000; t < 20_000; t += FINE) {
      f.observe(fine(t, 20, 1)); // 100/s
    }
    double[] all = LoadForecaster.weightsOf(new long[] {0}, new long[] {Ring.RING_END});
    LoadForecaster.View v = f.view(all, 5);
    assertEquals(5, v.recent().size());
    for (LoadForecaster.Point p : v.recent()) {
      assertEquals(100.0, p.actual(), 1e-3);
      assertEquals(100.0, p.forecast(), 5.0);
    }
    assertTrue(v.wape() < 0.05, "wape " + v.wape());
    assertEquals(2, v.ahead().size());
    assertEquals(1, v.series().size());
    double[] none = LoadForecaster.weightsOf(new long[] {Long.MIN_VALUE},
        new long[] {Ring.RING_END});
    assertEquals(0.0, f.view(none, 5).recent().get(0).actual());
  }

  @Test
  void theNewestQueueDepthsAreTheBacklog() {
    LoadForecaster f = new LoadForecaster(new LoadForecaster.Settings(FINE, COARSE, 2000, 0.9,
        new CostModel(1, 0.5), ForecasterConfig.defaults(60, 2), 8));
    f.observe(new LoadBucket(Resolution.FINE, 10_000, FINE, FINE, 1,
        List.of(new SliceLoad(3, new LoadFigures(10, 40, 0, 0, 100, 5))), HotKeys.EMPTY,
        List.of()));
    long slice = 1L << (64 - Ring.SLICE_BITS);
    // 100 queued at 4 bytes each: 100 × (1 + 0.5 × 4) = 300.
    assertEquals(300.0, f.backlog(0, Ring.RING_END), 1e-9);
    assertEquals(150.0, f.backlog(3 * slice, 3 * slice + slice / 2), 1e-9);
    assertEquals(0.0, f.backlog(4 * slice, 5 * slice), 1e-9);
    f.observe(fine(10_200, 5, 3));
    assertEquals(0.0, f.backlog(0, Ring.RING_END), 1e-9, "the newest bucket counts");
  }

  @Test
  void weightsOfCoverPartsOfSlices() {
    long slice = 1L << (64 - Ring.SLICE_BITS);
    double[] w = LoadForecaster.weightsOf(new long[] {slice / 2}, new long[] {slice * 2});
    assertEquals(0.0, w[2]);
    assertEquals(0.5, w[0], 1e-12);
    assertEquals(1.0, w[1], 1e-12);
  }

  @Test
  void pausingIsAStateTransitionThatRefusesRepeats() {
    BalancerState s = BalancerState.INITIAL;
    BalancerState p = s.apply(new Command.SetBalancerPaused(true, ""), 7);
    assertTrue(p.paused());
    assertEquals("operator", p.by());
    assertEquals(7, p.changedAtIndex());
    PlbException e = assertThrows(PlbException.class,
        () -> p.apply(new Command.SetBalancerPaused(true, "ops"), 8));
    assertTrue(e.getMessage().contains("already paused"), e.getMessage());
    assertFalse(p.apply(new Command.SetBalancerPaused(false, "ops"), 9).paused());
    assertThrows(PlbException.class,
        () -> s.apply(new Command.SetBalancerPaused(true, "x".repeat(200)), 1));
  }
}
