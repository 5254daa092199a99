package io.plb.core.sim.balance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

class BalanceSimulationTest {
  /** 2001-01-01T00:00Z, an hour boundary. */
  static final long T0 = 978_307_200_000L;

  /** A key whose slice lies in [fromSlice, toSlice). */
  static String keyIn(int fromSlice, int toSlice) {
    for (int i = 0; ; i++) {
      String k = "k" + i;
      int s = Ring.sliceOf(KeyHash.hash(k));
      if (s >= fromSlice && s < toSlice) {
        return k;
      }
    }
  }

  static SimConfig tiny(int servers, double headroom, int spread, int hold, int minutes) {
    return SimConfig.defaults().withServers(servers).withHeadroom(headroom).withScale(60)
        .withSpreadMinutes(spread).withHoldSeconds(hold).withUnits(servers)
        .withWindow(T0, T0 + minutes * 60_000L);
  }

  /** Replays a fixed list of actions per minute. */
  static final class Scripted implements BalanceStrategy {
    final Map<Integer, List<SimAction>> script = new TreeMap<>();

    Scripted at(int minute, SimAction... actions) {
      script.put(minute, List.of(actions));
      return this;
    }

    @Override
    public String name() {
      return "scripted";
    }

    @Override
    public void observe(MinuteLoad load) {}

    @Override
    public List<SimAction> plan(PlanContext context) {
      return script.getOrDefault(context.minute(), List.of());
    }
  }

  @Test
  void overloadSecondsOfAHandComputedCase() {
    // Two events at minute 0 of 60 messages of cost 1 (size 0): 120 cost in minute 0, none after.
    String key = keyIn(0, Ring.SLICES);
    Trace trace = new Trace.Builder("tiny")
        .add(T0 + 5_000, KeyHash.hash(key), 0)
        .add(T0 + 50_000, KeyHash.hash(key), 0)
        .build(1);
    // Busiest hour: 120 cost over the window's 3 minutes = 2/3 per s; x1.5 / 1 server = 1/s.
    LoadMatrix m = LoadMatrix.build(trace, tiny(1, 1.5, 1, 30, 3));
    assertEquals(1.0, m.capacity(), 1e-12);
    StrategyResult r = new BalanceSimulation(m).run(new StaticStrategy());
    // Minute 0: 2/s against 1/s, backlog 0 -> 60 (delay above 1 s from t = 1 s: 59 s);
    // minutes 1-2: drains 60 -> 0 in 60 s, above 1 until t = 59 s: 59 s.
    assertEquals(118.0, r.overloadSeconds(), 1e-9);
    assertEquals(120, r.messages(), 1e-9);
    assertEquals(118, r.delayedMessages(), 1e-9); // delays uniform on [0, 60] s
    assertEquals(59.4, r.p99DelaySeconds(), 59.4 * 0.012);
    assertEquals(2.0f, r.series().utilisation()[0][0], 1e-6);
    assertEquals(0, r.moves());
  }

  @Test
  void eventsAreSpreadOverTheirMinutes() {
    String key = keyIn(0, Ring.SLICES);
    Trace trace = new Trace.Builder("spread")
        .add(T0 - 60_000, KeyHash.hash(key), 0) // before the window: left out
        .add(T0 + 1_000, KeyHash.hash(key), 1024) // cost 2 per message
        .build(1);
    LoadMatrix m = LoadMatrix.build(trace, tiny(1, 1, 4, 30, 10));
    assertEquals(1, m.events());
    for (int minute = 0; minute < 10; minute++) {
      double expected = minute < 4 ? 60 * 2.0 / 4 : 0;
      assertEquals(expected, m.aggregateCost(minute), 1e-4, "minute " + minute);
    }
    assertEquals(60, m.totalMessages(), 1e-4);
    assertTrue(m.busy(0) && !m.busy(4));
  }

  @Test
  void aMoveHoldsTheRangesArrivalsAndDeliversThemAsOneLump() {
    // Range [0, 2048) on server 0 gets 60 cost a minute (1/s); range [2048, 4096) on server 1
    // gets nothing. Capacity: 4 x 1/s / 2 = 2/s.
    String key = keyIn(0, Ring.SLICES / 2);
    Trace.Builder b = new Trace.Builder("hold");
    for (int minute = 0; minute < 5; minute++) {
      b.add(T0 + minute * 60_000L, KeyHash.hash(key), 0);
    }
    Trace trace = b.build(1);
    LoadMatrix m = LoadMatrix.build(trace, tiny(2, 4, 1, 30, 5));
    assertEquals(2.0, m.capacity(), 1e-12);
    StrategyResult r = new BalanceSimulation(m)
        .run(new Scripted().at(2, new SimAction.Move(0, 1)));
    assertEquals(1, r.moves());
    assertEquals(0, r.rejected());
    float[][] u = r.series().utilisation();
    assertEquals(0.5f, u[0][1], 1e-6);
    assertEquals(0.0f, u[1][1], 1e-6);
    // Minute 2: the first 30 s of arrivals (30 cost, 30 messages) land on server 1 at 30 s.
    assertEquals(0.0f, u[0][2], 1e-6);
    assertEquals(0.5f, u[1][2], 1e-6);
    assertEquals(30, r.heldMessages(), 1e-9);
    // The lump puts 15 s of delay on server 1, draining at 2 - 1 = 1/s: above 1 s for 28 s.
    assertEquals(28.0, r.overloadSeconds(), 1e-9);
    assertEquals(30.0, r.holdSecondsMean(), 1e-9);
    assertEquals(0.5, r.loadMoved(), 1e-9);
    // Without the hold the same move costs nothing.
    LoadMatrix free = LoadMatrix.build(trace, tiny(2, 4, 1, 0, 5));
    StrategyResult r0 = new BalanceSimulation(free)
        .run(new Scripted().at(2, new SimAction.Move(0, 1)));
    assertEquals(0.0, r0.overloadSeconds(), 1e-12);
    assertEquals(0.0, r0.heldMessages(), 1e-12);
  }

  @Test
  void theSimulatorEnforcesTheBudgets() {
    Trace trace = SyntheticTrace.defaults(3).withMinutes(60).trace();
    SimConfig config = SimConfig.defaults().withUnits(64);
    LoadMatrix m = LoadMatrix.build(trace, config);
    int w = Ring.SLICES / 64; // ranges 8k..8k+7 start on server k
    Scripted s = new Scripted();
    s.at(1, new SimAction.Move(0, 1), new SimAction.Move(16 * w, 3),
        new SimAction.Move(32 * w, 5), new SimAction.Move(48 * w, 7),
        new SimAction.Move(56 * w, 6)); // the fifth: round budget
    s.at(2, new SimAction.Move(0, 0), // dwell
        new SimAction.Move(8 * w, 2)); // window budget: 4 moves in the last 10 min
    s.at(3, new SimAction.Move(1, 1), // no such range
        new SimAction.Move(10 * w, 1), new SimAction.Move(10 * w, 99), // bad targets
        new SimAction.Split(0, 0), // split point outside
        new SimAction.Merge(7 * w)); // owners differ
    s.at(11, new SimAction.Split(10 * w, 10 * w + 3), new SimAction.Merge(10 * w),
        new SimAction.Move(8 * w, 0), new SimAction.Move(9 * w, 0),
        new SimAction.Move(11 * w, 0)); // the third for server 0: server budget
    StrategyResult r = new BalanceSimulation(m).run(s);
    assertEquals(6, r.moves());
    assertEquals(1, r.splits());
    assertEquals(1, r.merges());
    assertEquals(9, r.rejected());
    assertEquals(Map.of("round budget", 1, "dwell", 1, "window budget", 1, "no such range", 1,
        "bad target", 2, "split point outside the range", 1, "merge of different owners", 1,
        "server budget", 1), r.extra().get("rejections"));
    assertBudgets(r, config, m);
  }

  static void assertBudgets(StrategyResult r, SimConfig c, LoadMatrix m) {
    StrategyResult.MoveLog log = r.moveLog();
    Map<Long, int[]> perServer = new TreeMap<>();
    Map<Long, Integer> perRound = new TreeMap<>();
    Map<Integer, Long> lastMove = new TreeMap<>();
    List<Long> times = new ArrayList<>();
    for (int i = 0; i < log.size(); i++) {
      long t = log.millis()[i];
      perRound.merge(t, 1, Integer::sum);
      int[] ps = perServer.computeIfAbsent(t, k -> new int[c.servers()]);
      ps[log.from()[i]]++;
      ps[log.to()[i]]++;
      for (int s = log.startSlice()[i]; s < log.endSlice()[i]; s++) {
        Long last = lastMove.get(s);
        assertTrue(last == null || t - last >= c.minDwellMillis(),
            r.name() + ": slice " + s + " moved again after " + (t - (last == null ? 0 : last)));
        lastMove.put(s, t);
      }
      times.add(t);
    }
    for (int n : perRound.values()) {
      assertTrue(n <= c.maxMovesPerRound(), r.name() + ": " + n + " moves in a round");
    }
    for (int[] ps : perServer.values()) {
      for (int n : ps) {
        assertTrue(n <= c.maxMovesPerServer(), r.name() + ": a server in " + n + " moves");
      }
    }
    for (int i = 0; i < times.size(); i++) {
      int inWindow = 0;
      for (int j = i; j < times.size() && times.get(j) < times.get(i) + c.moveWindowMillis();
          j++) {
        inWindow++;
      }
      assertTrue(inWindow <= c.maxMovesPerWindow(), r.name() + ": " + inWindow
          + " moves within a window");
    }
    for (long t : times) {
      assertTrue(t > m.startMillis() && t < m.millisOf(m.minutes()));
    }
  }

  /** A day with hot keys, bursts and a hotspot travelling around the ring twice. */
  static LoadMatrix movingHotspot(long seed) {
    Trace trace = SyntheticTrace.defaults(seed).withMinutes(1440).withRate(30)
        .withHotspot(0.35, 0.06, 720).trace();
    return LoadMatrix.build(trace, SimConfig.defaults().withHeadroom(1.2));
  }

  @Test
  void everyStrategyKeepsTheBudgetsByItself() {
    LoadMatrix m = movingHotspot(11);
    for (Strategies.Spec spec : Strategies.parseList(
        "static,reactive-ewma:0.05,reactive-ewma:0.2,reactive-shedder:0.05,predictive,"
            + "oracle")) {
      StrategyResult r = new BalanceSimulation(m).run(spec.create(m));
      assertEquals(0, r.rejected(), r.name() + " planned over budget: " + r.extra());
      assertBudgets(r, m.config(), m);
      if (spec.kind().equals("static")) {
        assertEquals(0, r.moves() + r.splits() + r.merges(), "static never changes the map");
      } else {
        assertTrue(r.moves() > 0, r.name() + " never moved on a moving hotspot");
      }
    }
  }

  @Test
  void reactiveBalancingBeatsStaticHashingOnAMovingHotspot() {
    LoadMatrix m = movingHotspot(5);
    StrategyResult stat = new BalanceSimulation(m).run(new StaticStrategy());
    StrategyResult reactive = new BalanceSimulation(m).run(new ReactiveEwmaStrategy(0.1));
    assertTrue(stat.overloadSeconds() > 0, "the setting must overload static hashing");
    assertTrue(reactive.overloadSeconds() < stat.overloadSeconds(),
        reactive.overloadSeconds() + " vs static " + stat.overloadSeconds());
    assertTrue(reactive.p50MaxMean() < stat.p50MaxMean());
  }

  @Test
  void theOracleBeatsStaticHashingOnAMovingHotspot() {
    LoadMatrix m = movingHotspot(5);
    StrategyResult stat = new BalanceSimulation(m).run(new StaticStrategy());
    StrategyResult oracle = new BalanceSimulation(m).run(Strategies.parse("oracle").create(m));
    assertEquals(0, oracle.rejected(), oracle.extra().toString());
    assertTrue(stat.overloadSeconds() > 0, "the setting must overload static hashing");
    assertTrue(oracle.overloadSeconds() < 0.5 * stat.overloadSeconds(),
        oracle.overloadSeconds() + " vs static " + stat.overloadSeconds());
    assertTrue(oracle.p99MaxMean() < stat.p99MaxMean());
    assertTrue(oracle.moves() > 0 && (double) oracle.extra().get("forecast_wape") < 1e-9,
        "the oracle's outlook is the actual load");
  }

  @Test
  void sameTraceAndSeedGiveTheSameResults() {
    LoadMatrix a = movingHotspot(7);
    LoadMatrix b = movingHotspot(7);
    for (String name : List.of("reactive-ewma:0.1", "reactive-shedder", "oracle")) {
      StrategyResult x = new BalanceSimulation(a).run(Strategies.parse(name).create(a));
      StrategyResult y = new BalanceSimulation(b).run(Strategies.parse(name).create(b));
      assertEquals(x.overloadSeconds(), y.overloadSeconds());
      assertEquals(x.p99DelaySeconds(), y.p99DelaySeconds());
      assertEquals(x.p99MaxMean(), y.p99MaxMean());
      assertEquals(x.moves(), y.moves());
      assertArrayEquals(x.moveLog().millis(), y.moveLog().millis());
      assertArrayEquals(x.moveLog().startSlice(), y.moveLog().startSlice());
      assertArrayEquals(x.moveLog().to(), y.moveLog().to());
    }
    LoadMatrix other = movingHotspot(8);
    StrategyResult z = new BalanceSimulation(other).run(new ReactiveEwmaStrategy(0.1));
    StrategyResult x = new BalanceSimulation(a).run(new ReactiveEwmaStrategy(0.1));
    assertTrue(z.overloadSeconds() != x.overloadSeconds(), "another seed, another trace");
  }

  @Test
  void automaticUnitsAimAtThirtyTwoLoadedUnitsPerServer() {
    int[] everySlice = new int[Ring.SLICES];
    for (int i = 0; i < everySlice.length; i++) {
      everySlice[i] = i;
    }
    assertEquals(256, LoadMatrix.autoUnits(everySlice, 8));
    assertEquals(32, LoadMatrix.autoUnits(everySlice, 1));
    assertEquals(4096, LoadMatrix.autoUnits(new int[] {1, 500, 4000}, 8));
    assertEquals(128, LoadMatrix.autoUnits(everySlice, 5)); // 128 <= 32 x 5 < 256
  }

  @Test
  void theMapSplitsMergesAndMovesConsistently() {
    SimMap map = new SimMap(4, 16);
    map.checkInvariants();
    assertEquals(16, map.rangeCount());
    assertEquals(0, map.owner(0));
    assertEquals(3, map.owner(15));
    assertEquals(1, map.ownerOfSlice(1024));
    map.split(4, 1100);
    map.checkInvariants();
    assertEquals(17, map.rangeCount());
    assertEquals(5, map.indexOfStart(1100));
    map.move(5, 2, 1000L);
    map.checkInvariants();
    assertEquals(2, map.ownerOfSlice(1100));
    assertEquals(1, map.ownerOfSlice(1099));
    assertEquals(1000L, map.lastMovedMillis(5));
    map.move(5, 1, 2000L);
    map.merge(4);
    map.checkInvariants();
    assertEquals(16, map.rangeCount());
    assertEquals(2000L, map.lastMovedMillis(4), "a merge keeps the later move");
    assertEquals(-1, map.indexOfStart(1100));
    assertEquals(4, map.indexOfSlice(1100));
  }
}
