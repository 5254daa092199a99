package io.plb.core.sim.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import org.junit.jupiter.api.Test;

class PlannerStrategyTest {
  private static PlannerStrategy withGrid(int grid) {
    PlannerStrategy.Foresight f = new PlannerStrategy.Foresight() {
      @Override
      public void observe(MinuteLoad load) {}

      @Override
      public void horizon(int minute, int horizon, double[] mean, double[] upper) {}

      @Override
      public int grid() {
        return grid;
      }
    };
    return new PlannerStrategy("test", f, SimConfig.defaults(), 1.0);
  }

  @Test
  void aSplitPointFallsOnTheNextPartBoundary() {
    PlannerStrategy slices = withGrid(Ring.SLICES);
    long slice7 = SimMapView.hashOfSlice(7);
    assertEquals(7, slices.boundaryAfter(slice7, 0, 100), "an aligned point stays");
    assertEquals(8, slices.boundaryAfter(slice7 + 1, 0, 100), "slice 7 (its load) goes left");
    assertEquals(8, slices.boundaryAfter(SimMapView.hashOfSlice(8) - 1, 0, 100));
    assertEquals(-1, slices.boundaryAfter(slice7 + 1, 7, 8), "one slice cannot be split");
    assertEquals(-1, slices.boundaryAfter(slice7, 7, 100), "not strictly inside");
    PlannerStrategy parts = withGrid(256); // parts of 16 slices
    assertEquals(32, parts.boundaryAfter(SimMapView.hashOfSlice(17), 0, 64));
    assertEquals(16, parts.boundaryAfter(SimMapView.hashOfSlice(16), 0, 64));
    assertEquals(-1, parts.boundaryAfter(SimMapView.hashOfSlice(50), 48, 64));
  }

  @Test
  void theOracleSplitsAHotRangeAtASliceBoundaryAndMovesAPiece() {
    // Two servers with one range each; all load on two keys in server 0's range.
    String a = BalanceSimulationTest.keyIn(0, 1000);
    String b = BalanceSimulationTest.keyIn(1100, 2048);
    Trace.Builder t = new Trace.Builder("two-keys");
    for (int minute = 0; minute < 120; minute++) {
      for (int i = 0; i < 3; i++) {
        t.add(BalanceSimulationTest.T0 + minute * 60_000L + i, KeyHash.hash(a), 0);
        t.add(BalanceSimulationTest.T0 + minute * 60_000L + i, KeyHash.hash(b), 0);
      }
    }
    LoadMatrix m = LoadMatrix.build(t.build(2), BalanceSimulationTest.tiny(2, 1.3, 1, 30, 120));
    StrategyResult r = new BalanceSimulation(m).run(Strategies.parse("oracle").create(m));
    assertEquals(0, r.rejected(), r.extra().toString());
    assertTrue(r.splits() >= 1, "splits: " + r.splits());
    assertEquals(1, r.moves(), "one move settles it");
    int cut = r.moveLog().startSlice()[0];
    int sa = Ring.sliceOf(KeyHash.hash(a));
    int sb = Ring.sliceOf(KeyHash.hash(b));
    assertTrue((cut > sa && cut <= sb) || r.moveLog().endSlice()[0] <= sb,
        "the moved piece holds exactly one of the keys");
    assertTrue(r.p50MaxMean() < 1.05, "balanced after the move: " + r.p50MaxMean());
    StrategyResult stat = new BalanceSimulation(m).run(new StaticStrategy());
    assertTrue(stat.overloadSeconds() > 0 && r.overloadSeconds() < stat.overloadSeconds());
  }
}
