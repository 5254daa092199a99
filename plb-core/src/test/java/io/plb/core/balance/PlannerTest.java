package io.plb.core.balance;

import static io.plb.core.balance.BalanceFixtures.MINUTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.balance.Cause.Reason;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Focused cases of the planner: split, hot key, merge, hysteresis, budgets, states, criteria. */
class PlannerTest {
  private static final long SLICE = 1L << (64 - Ring.SLICE_BITS);
  private static final long NOW = 10_000_000_000L;
  private static final BalancerConfig DEFAULTS = BalancerConfig.defaults();

  private static BalanceServer active(String id) {
    return new BalanceServer(id, 100.0, ServerState.ACTIVE);
  }

  /** Ranges of {@code width} slices each, owned in turn as {@code owners} says (one per range). */
  private static List<BalanceRange> slices(int width, String... owners) {
    List<BalanceRange> out = new ArrayList<>();
    for (int i = 0; i < owners.length; i++) {
      long start = (long) i * width * SLICE;
      long end = i + 1 == owners.length ? Ring.RING_END : (long) (i + 1) * width * SLICE;
      out.add(BalanceRange.of(start, end, owners[i]));
    }
    return out;
  }

  /** A per-slice outlook with these loads for the first slices, {@code rest} spread on the rest. */
  private static LoadOutlook outlook(double rest, List<LoadOutlook.HotKey> hot, double... first) {
    double[] mean = new double[Ring.SLICES];
    for (int i = 0; i < Ring.SLICES; i++) {
      mean[i] = i < first.length ? first[i] : rest / (Ring.SLICES - first.length);
    }
    return LoadOutlook.ofSlices(mean, mean.clone(), hot);
  }

  private static Plan plan(List<BalanceRange> ranges, List<BalanceServer> servers,
      LoadOutlook outlook, BalancerConfig cfg) {
    Plan plan = Planner.plan(ranges, servers, outlook, cfg, NOW, MoveHistory.EMPTY);
    PlanApplier.apply(ranges, servers, plan, NOW); // always a valid map
    return plan;
  }

  @Test
  void splitsARangeTooHotToPlaceWhereItsLoadHalves() {
    // a owns slices 0..3 with loads 30, 10, 20, 40 (100 = its capacity); b the rest, 20 in all.
    // Moving the range whole would put b at 1.2: too hot to place. Half the load (50) lies
    // halfway through slice 2.
    List<BalanceRange> ranges = List.of(
        BalanceRange.of(0, 4 * SLICE, "a"), BalanceRange.of(4 * SLICE, Ring.RING_END, "b"));
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    LoadOutlook outlook = outlook(20, List.of(), 30, 10, 20, 40);
    Plan plan = plan(ranges, servers, outlook, DEFAULTS);

    // First the split and the move of one half; b then sheds a little (the ratio is still 1.17).
    assertTrue(plan.actions().size() >= 2, plan.actions().toString());
    PlanAction.Split split = assertInstanceOf(PlanAction.Split.class, plan.actions().get(0));
    assertEquals(0L, split.rangeStart());
    long half = 2 * SLICE + SLICE / 2;
    assertTrue(Math.abs(split.at() - half) <= 1, Ring.hex(split.at()) + " vs " + Ring.hex(half));
    assertEquals(50.0, outlook.upper(0, split.at()), 1e-9);
    assertEquals(Reason.SPLIT_HALF, split.cause().reason());
    assertEquals(100.0, split.cause().upperLoad(), 1e-9);

    PlanAction.Move move = assertInstanceOf(PlanAction.Move.class, plan.actions().get(1));
    assertEquals("a", move.from());
    assertEquals("b", move.to());
    assertEquals(0.5, move.cause().sourceAfter(), 1e-9);
    assertEquals(0.7, move.cause().targetAfter(), 1e-9);
    assertEquals(50.0, move.cause().upperLoad(), 1e-9);
    assertEquals(1.0, plan.utilisationBefore().get("a"), 1e-9);
    assertEquals(0.6, plan.utilisationAfter().get("a"), 1e-9);
    assertEquals(0.6, plan.utilisationAfter().get("b"), 1e-9);
    assertTrue(plan.criterionAfter() < plan.criterionBefore());
  }

  @Test
  void isolatesAHotKeyThatDominatesItsRange() {
    // a's one range brings 100, of which one key brings 70. The key gets its own range
    // [h, h+1); the rest of the range can then move.
    long h = 2 * SLICE + 12345;
    LoadOutlook.HotKey key = new LoadOutlook.HotKey(h, 70, 70);
    List<BalanceRange> ranges = List.of(
        BalanceRange.of(0, 4 * SLICE, "a"), BalanceRange.of(4 * SLICE, Ring.RING_END, "b"));
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    LoadOutlook outlook = outlook(20, List.of(key), 10, 10, 0, 10);
    Plan plan = plan(ranges, servers, outlook, DEFAULTS);

    List<PlanAction.Split> splits = plan.splits();
    assertEquals(2, splits.size(), plan.actions().toString());
    assertEquals(0L, splits.get(0).rangeStart());
    assertEquals(h, splits.get(0).at());
    assertEquals(h, splits.get(1).rangeStart());
    assertEquals(h + 1, splits.get(1).at());
    assertEquals(Reason.ISOLATE_HOT_KEY, splits.get(0).cause().reason());
    List<BalanceRange> after = PlanApplier.apply(ranges, servers, plan, NOW);
    assertTrue(after.stream().anyMatch(r -> r.start() == h && r.end() == h + 1),
        "the key has its own range: " + after);
    // The move that follows takes load off a without taking the key to b (b would overload).
    PlanAction.Move move = plan.moves().get(0);
    assertEquals("a", move.from());
    assertNotEquals(h, move.rangeStart());
  }

  @Test
  void aKeyAtTheRangeStartNeedsOneCut() {
    long h = 4 * SLICE; // first hash of b's first range
    LoadOutlook.HotKey key = new LoadOutlook.HotKey(h, 90, 90);
    List<BalanceRange> ranges = List.of(BalanceRange.of(0, 4 * SLICE, "a"),
        BalanceRange.of(4 * SLICE, 8 * SLICE, "b"), BalanceRange.of(8 * SLICE, 0, "a"));
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    Plan plan = plan(ranges, servers, outlook(10, List.of(key), 0, 0, 0, 0, 5, 5), DEFAULTS);
    assertEquals(1, plan.splits().size(), plan.actions().toString());
    assertEquals(h + 1, plan.splits().get(0).at());
  }

  @Test
  void mergesColdNeighboursOfOneOwnerOnly() {
    // 40 ranges of one slice each, all nearly idle: a owns 0..19, b owns 20..39 (the last one
    // runs to the end of the ring). Merges stay within an owner, respect pins, the per-round
    // bound, and stop at minRangesPerServer.
    String[] owners = new String[40];
    for (int i = 0; i < 40; i++) {
      owners[i] = i < 20 ? "a" : "b";
    }
    List<BalanceRange> ranges = new ArrayList<>(slices(1, owners));
    BalanceRange pinned = ranges.get(5);
    ranges.set(5, new BalanceRange(pinned.start(), pinned.end(), "a", true, false,
        BalanceRange.NEVER, 0));
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    double[] each = new double[ranges.size()];
    java.util.Arrays.fill(each, 0.0001); // balanced, so the planner is not acting
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, each, each.clone(), List.of());
    BalancerConfig cfg = DEFAULTS.toBuilder().minRangesPerServer(12).maxMergesPerRound(100)
        .build();
    Plan plan = plan(ranges, servers, outlook, cfg);
    assertTrue(plan.moves().isEmpty() && plan.splits().isEmpty());
    List<BalanceRange> after = PlanApplier.apply(ranges, servers, plan, NOW);
    long a = after.stream().filter(r -> r.owner().equals("a")).count();
    long b = after.stream().filter(r -> r.owner().equals("b")).count();
    assertEquals(12, a);
    assertEquals(12, b);
    assertTrue(after.stream().anyMatch(r -> r.pinned() && r.start() == pinned.start()
        && r.end() == pinned.end()), "the pinned range is untouched");
    for (PlanAction.Merge m : plan.merges()) {
      assertEquals(Reason.MERGE_COLD, m.cause().reason());
    }
    // The boundary between a and b stays.
    assertTrue(after.stream().anyMatch(r -> r.start() == 20 * SLICE));

    // Per-round bound.
    Plan few = plan(ranges, servers, outlook,
        cfg.toBuilder().maxMergesPerRound(3).build());
    assertEquals(3, few.merges().size());
    // Not cold enough: nothing merges.
    java.util.Arrays.fill(each, 0.15);
    Plan warm = plan(ranges, servers, LoadOutlook.ofRanges(ranges, each, each, List.of()), cfg);
    assertTrue(warm.merges().isEmpty(), warm.actions().toString());
  }

  /** 20 ranges; a holds 10 of them, b and c 5 each; load uniform per range. */
  private static List<BalanceRange> hysteresisMap() {
    String[] owners = new String[20];
    for (int i = 0; i < 20; i++) {
      owners[i] = i < 10 ? "a" : i < 15 ? "b" : "c";
    }
    return slices(Ring.SLICES / 20, owners);
  }

  @Test
  void hysteresisActsAboveTheThresholdAndStopsBelowTheBand() {
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    List<BalanceRange> ranges = hysteresisMap();
    // Per-range outlook: a's ten ranges bring x each, b's and c's five bring y each.
    BalancerConfig cfg = DEFAULTS.toBuilder().maxMeanRatio(1.15).hysteresis(0.05)
        .minGain(0.0).mergeMaxLoad(0).maxMovesPerServer(10).maxMovesPerRound(10)
        .maxMovesPerWindow(10).build();
    // ratio = 3a / (a + b + c) with b = c.
    LoadOutlook at112 = perRange(ranges, 5.6, 11.0); // a 56, b 55, c 55... see below
    // Between exit (1.10) and threshold (1.15), not engaged: nothing.
    Plan quiet = Planner.plan(ranges, servers, ratio(ranges, 1.12), cfg, NOW, MoveHistory.EMPTY);
    assertEquals(1.12, quiet.criterionBefore(), 1e-9);
    assertFalse(quiet.acting());
    assertTrue(quiet.moves().isEmpty());
    // The same while engaged from an earlier round: it acts, and plans down to the exit level.
    Plan engaged = Planner.plan(ranges, servers, ratio(ranges, 1.12), cfg, NOW,
        MoveHistory.of(List.of(), true));
    assertTrue(engaged.acting());
    assertFalse(engaged.moves().isEmpty());
    assertTrue(engaged.criterionAfter() <= 1.10 + 1e-9, "" + engaged.criterionAfter());
    assertFalse(engaged.engaged());
    // Above the threshold it acts without being engaged.
    Plan above = Planner.plan(ranges, servers, ratio(ranges, 1.2), cfg, NOW, MoveHistory.EMPTY);
    assertTrue(above.acting());
    assertTrue(above.criterionAfter() <= 1.10 + 1e-9);
    // At or below the exit level, even engaged: nothing.
    Plan below = Planner.plan(ranges, servers, ratio(ranges, 1.09), cfg, NOW,
        MoveHistory.of(List.of(), true));
    assertFalse(below.acting());
    assertTrue(below.isEmpty());
    assertEquals(at112.totalMean(), at112.totalUpper());
  }

  @Test
  void engagedCarriesOverWhenABudgetStopsThePlan() {
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    List<BalanceRange> ranges = hysteresisMap();
    BalancerConfig cfg = DEFAULTS.toBuilder().minGain(0.0).mergeMaxLoad(0)
        .maxMovesPerRound(1).build();
    LoadOutlook outlook = ratio(ranges, 1.5);
    Plan first = Planner.plan(ranges, servers, outlook, cfg, NOW, MoveHistory.EMPTY);
    assertEquals(1, first.moves().size());
    assertTrue(first.engaged(), "budget spent above the exit level");
    MoveHistory history = MoveHistory.EMPTY.record(first, NOW, cfg);
    assertTrue(history.engaged());
    assertEquals(1, history.entries().size());
  }

  /** Loads so that a's share gives max/mean = ratio over three equal servers (b = c). */
  private static LoadOutlook ratio(List<BalanceRange> ranges, double ratio) {
    // a = ratio * (a + 2b) / 3  =>  a (3 - ratio) = 2 ratio b; with b = 30: a = 60 ratio / (3 - r)
    double b = 30;
    double a = 2 * ratio * b / (3 - ratio);
    return perRange(ranges, a / 10, b / 5);
  }

  private static LoadOutlook perRange(List<BalanceRange> ranges, double aEach, double otherEach) {
    double[] mean = new double[ranges.size()];
    for (int i = 0; i < ranges.size(); i++) {
      mean[i] = ranges.get(i).owner().equals("a") ? aEach : otherEach;
    }
    return LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
  }

  @Test
  void neverOntoDrainingOrDownAndLeavesTheirRangesAlone() {
    List<BalanceRange> ranges = slices(Ring.SLICES / 8, "a", "a", "a", "a", "a", "b", "c", "d");
    List<BalanceServer> servers = List.of(active("a"), active("b"),
        new BalanceServer("c", 100, ServerState.DRAINING),
        new BalanceServer("d", 100, ServerState.DOWN));
    // c and d are idle and would be the best targets; d's range is hot but not the planner's.
    double[] mean = {10, 10, 10, 10, 10, 5, 0, 0};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    Plan plan = plan(ranges, servers, outlook, DEFAULTS.toBuilder().minGain(0).build());
    assertFalse(plan.moves().isEmpty());
    for (PlanAction.Move m : plan.moves()) {
      assertEquals("a", m.from());
      assertEquals("b", m.to());
    }
    assertTrue(plan.notes().stream().anyMatch(n -> n.contains("DRAINING or DOWN")),
        plan.notes().toString());
    // The criterion counts active servers only: c and d (idle) do not lower the mean.
    assertEquals(50.0 / 55.0 * 2, plan.criterionBefore(), 1e-9);
  }

  @Test
  void respectsPinsMovingRangesDwellAndHistory() {
    // a holds four hot ranges; each is blocked for a different reason but one.
    List<BalanceRange> ranges = new ArrayList<>(
        slices(Ring.SLICES / 8, "a", "a", "a", "a", "b", "b", "b", "b"));
    long step = (long) (Ring.SLICES / 8) * SLICE;
    ranges.set(0, new BalanceRange(0, step, "a", true, false, BalanceRange.NEVER, 0));
    ranges.set(1, new BalanceRange(step, 2 * step, "a", false, true, BalanceRange.NEVER, 0));
    ranges.set(2, new BalanceRange(2 * step, 3 * step, "a", false, false, NOW - MINUTE, 0));
    double[] mean = {20, 20, 20, 20, 1, 1, 1, 1};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    BalancerConfig cfg = DEFAULTS.toBuilder().maxMovesPerServer(4).maxMovesPerRound(4)
        .maxMovesPerWindow(4).build();
    Plan plan = plan(ranges, servers, outlook, cfg);
    assertEquals(1, plan.moves().size(), plan.actions().toString());
    assertEquals(3 * step, plan.moves().get(0).rangeStart());
    // A move in the history over part of range 3 (since split or merged) blocks it too.
    MoveHistory history = MoveHistory.of(List.of(new MoveHistory.Entry(NOW - 5 * MINUTE,
        3 * step + 5, 3 * step + 10, "b", "a")), false);
    Plan blocked = Planner.plan(ranges, servers, outlook, cfg, NOW, history);
    assertTrue(blocked.moves().isEmpty(), blocked.actions().toString());
    // Eleven minutes later the dwell is over for both.
    Plan later = Planner.plan(ranges, servers, outlook, cfg, NOW + 10 * MINUTE, history);
    assertEquals(2, later.moves().size(), later.actions().toString());
  }

  @Test
  void windowBudgetCountsRecentMoves() {
    List<BalanceRange> ranges = slices(Ring.SLICES / 8, "a", "a", "a", "a", "a", "a", "b", "b");
    double[] mean = {10, 10, 10, 10, 10, 10, 1, 1};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    List<MoveHistory.Entry> three = new ArrayList<>();
    for (int i = 0; i < 3; i++) { // elsewhere in the ring: only the window counts them
      three.add(new MoveHistory.Entry(NOW - (i + 1) * MINUTE, 7 * (long) (Ring.SLICES / 8) * SLICE
          + i, 7 * (long) (Ring.SLICES / 8) * SLICE + i + 1, "x", "y"));
    }
    Plan plan = Planner.plan(ranges, servers, outlook, DEFAULTS, NOW,
        MoveHistory.of(three, false));
    assertEquals(1, plan.moves().size(), plan.actions().toString());
    assertTrue(plan.notes().stream().anyMatch(n -> n.contains("window budget")));
    // Ten minutes after the first of them, it has left the window.
    Plan later = Planner.plan(ranges, servers, outlook, DEFAULTS, NOW + 9 * MINUTE,
        MoveHistory.of(three, false));
    assertEquals(2, later.moves().size());
  }

  @Test
  void perServerBudgetCountsHandoversAlreadyRunning() {
    List<BalanceRange> ranges = new ArrayList<>(
        slices(Ring.SLICES / 8, "a", "a", "a", "a", "a", "a", "b", "c"));
    long step = (long) (Ring.SLICES / 8) * SLICE;
    ranges.set(0, new BalanceRange(0, step, "a", false, true, BalanceRange.NEVER, 0));
    double[] mean = {10, 10, 10, 10, 10, 10, 1, 1};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    Plan plan = plan(ranges, servers, outlook, DEFAULTS);
    assertEquals(1, plan.moves().size(), "one running + one new = maxMovesPerServer 2");
  }

  @Test
  void noMoveForLessThanTheMinimumGain() {
    // a at 0.50, b at 0.40 over ranges of 0.1: the best move (0.1) lowers the pair max 0.5 ->
    // 0.5: nothing. With ranges of 0.01, a move lowers it by 0.01 < 2 %: nothing either.
    List<BalanceRange> ranges = slices(Ring.SLICES / 2, "a", "b");
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    double[] mean = new double[Ring.SLICES];
    for (int i = 0; i < Ring.SLICES; i++) {
      mean[i] = i < Ring.SLICES / 2 ? 60.0 / 2048 : 50.0 / 2048;
    }
    // c is full too: max/mean = 0.6 / 0.55 = 1.09 < 1.15, but HIGH_WATER 0.5 fires.
    BalancerConfig cfg = DEFAULTS.toBuilder().criterion(Criterion.HIGH_WATER).highWater(0.55)
        .hysteresis(0.0).minGain(0.2).build();
    List<BalanceServer> two = List.of(active("a"), active("b"));
    Plan plan = plan(ranges, two, LoadOutlook.ofSlices(mean, mean.clone(), List.of()), cfg);
    assertTrue(plan.acting());
    assertTrue(plan.moves().isEmpty(), plan.actions().toString());
    assertTrue(plan.notes().stream().anyMatch(n -> n.contains("a at")), plan.notes().toString());
    assertEquals(3, servers.size());
  }

  @Test
  void actAboveKeepsAnIdleClusterStill() {
    List<BalanceRange> ranges = slices(Ring.SLICES / 8, "a", "a", "a", "a", "a", "a", "b", "b");
    double[] mean = {1, 1, 1, 1, 1, 1, 0.1, 0.1};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    BalancerConfig cfg = DEFAULTS.toBuilder().minGain(0).mergeMaxLoad(0).build();
    assertFalse(plan(ranges, servers, outlook, cfg).moves().isEmpty());
    Plan idle = plan(ranges, servers, outlook, cfg.toBuilder().actAbove(0.5).build());
    assertTrue(idle.criterionBefore() > 1.15);
    assertFalse(idle.acting());
    assertTrue(idle.isEmpty());
    assertTrue(idle.notes().stream().anyMatch(n -> n.contains("at or below actAbove 0.500")),
        idle.notes().toString());
  }

  @Test
  void lumpAllowanceLeavesTheImbalanceAHeavyKeyExplains() {
    // a: a key of 60 in its first range plus 10; b: 25 + 25. Mean 60, max/mean 70/60 = 1.17.
    long h = SLICE / 2;
    LoadOutlook.HotKey key = new LoadOutlook.HotKey(h, 60, 60);
    List<BalanceRange> ranges = slices(Ring.SLICES / 4, "a", "a", "b", "b");
    double[] mean = {0, 10, 25, 25};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of(key));
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    BalancerConfig cfg = DEFAULTS.toBuilder().minGain(0).mergeMaxLoad(0).build();

    Plan off = plan(ranges, servers, outlook, cfg);
    assertEquals(70.0 / 60, off.criterionBefore(), 1e-9);
    assertTrue(off.acting());
    assertFalse(off.moves().isEmpty());

    // With the allowance at 1 the ratio balanced to is 1 + 60/60 = 2: nothing to do.
    Plan lumpy = plan(ranges, servers, outlook, cfg.toBuilder().lumpAllowance(1).build());
    assertEquals(70.0 / 60, lumpy.criterionBefore(), 1e-9, "the criterion itself is unchanged");
    assertFalse(lumpy.acting());
    assertTrue(lumpy.isEmpty());
    assertTrue(lumpy.notes().stream().anyMatch(n -> n.contains("is held to 2.000, not 1.150")
        && n.contains("the hottest key brings 1.000 of a mean server's load")),
        lumpy.notes().toString());

    // A small allowance (1 + 0.1 = 1.1) stays under maxMeanRatio: the planner acts as before.
    Plan small = plan(ranges, servers, outlook, cfg.toBuilder().lumpAllowance(0.1).build());
    assertEquals(off.actions(), small.actions());

    // The combined criterion: the ratio part is raised the same way; the high water still acts.
    BalancerConfig both = cfg.toBuilder().criterion(Criterion.MAX_MEAN_OR_HIGH_WATER)
        .maxMeanRatio(1.15).highWater(0.9).lumpAllowance(1).build();
    assertFalse(plan(ranges, servers, outlook, both).acting());
    assertTrue(plan(ranges, servers, outlook, both.toBuilder().highWater(0.65).build()).acting());
  }

  @Test
  void stddevAndHighWaterCriteria() {
    List<BalanceRange> ranges = slices(Ring.SLICES / 8, "a", "a", "a", "a", "a", "b", "b", "c");
    double[] mean = {18, 18, 18, 18, 18, 5, 5, 5};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    List<BalanceServer> servers = List.of(active("a"), active("b"), active("c"));
    Plan std = plan(ranges, servers, outlook, DEFAULTS.toBuilder()
        .criterion(Criterion.STDDEV).stddevThreshold(0.2).hysteresis(0.05).build());
    double u1 = 0.9;
    double u2 = 0.1;
    double u3 = 0.05;
    double m = (u1 + u2 + u3) / 3;
    double sd = Math.sqrt(((u1 - m) * (u1 - m) + (u2 - m) * (u2 - m) + (u3 - m) * (u3 - m)) / 3);
    assertEquals(sd, std.criterionBefore(), 1e-9);
    assertFalse(std.moves().isEmpty());
    assertTrue(std.criterionAfter() < std.criterionBefore());
    Plan high = plan(ranges, servers, outlook, DEFAULTS.toBuilder()
        .criterion(Criterion.HIGH_WATER).highWater(0.8).hysteresis(0.1).build());
    assertEquals(0.9, high.criterionBefore(), 1e-9);
    assertFalse(high.moves().isEmpty());
    assertTrue(high.criterionAfter() < 0.9);
  }

  @Test
  void eitherMaxMeanOrHighWater() {
    String[] owners = new String[16];
    java.util.Arrays.fill(owners, 0, 8, "a");
    java.util.Arrays.fill(owners, 8, 16, "b");
    List<BalanceRange> ranges = slices(Ring.SLICES / 16, owners);
    List<BalanceServer> servers = List.of(active("a"), active("b"));
    BalancerConfig either = DEFAULTS.toBuilder().criterion(Criterion.MAX_MEAN_OR_HIGH_WATER)
        .maxMeanRatio(1.3).highWater(0.8).hysteresis(0.05).minGain(0).mergeMaxLoad(0).build();
    assertEquals(0.0, either.threshold());
    BalancerConfig ratioOnly = either.toBuilder().criterion(Criterion.MAX_MEAN).build();
    BalancerConfig waterOnly = either.toBuilder().criterion(Criterion.HIGH_WATER).build();

    // a 0.88, b 0.72: the ratio (1.1) is fine, but a is above the high water.
    LoadOutlook full = outlook(ranges, 11, 9);
    Plan p = plan(ranges, servers, full, either);
    assertEquals(0.08, p.criterionBefore(), 1e-9);
    assertTrue(p.acting());
    assertFalse(p.moves().isEmpty());
    assertTrue(p.utilisationAfter().get("a") < 0.88);
    assertFalse(plan(ranges, servers, full, ratioOnly).acting());

    // a 0.48, b 0.16: nobody is near full, but max/mean is 1.5.
    LoadOutlook uneven = outlook(ranges, 6, 2);
    p = plan(ranges, servers, uneven, either);
    assertEquals(0.2, p.criterionBefore(), 1e-9);
    assertFalse(p.moves().isEmpty());
    assertTrue(p.criterionAfter() <= -0.05 + 1e-9, "planned down to the exit level on both: "
        + p.criterionAfter());
    assertFalse(plan(ranges, servers, uneven, waterOnly).acting());

    // a 0.56, b 0.48: neither.
    p = plan(ranges, servers, outlook(ranges, 7, 6), either);
    assertEquals(Math.max(0.56 / 0.52 - 1.3, 0.56 - 0.8), p.criterionBefore(), 1e-9);
    assertFalse(p.acting());
    assertTrue(p.isEmpty());

    assertThrows(IllegalArgumentException.class, () -> either.toBuilder().highWater(0.04)
        .build(), "the hysteresis must fit below the high water too");
  }

  /** Eight ranges of a at {@code a} each, eight of b at {@code b} each. */
  private static LoadOutlook outlook(List<BalanceRange> ranges, double a, double b) {
    double[] mean = new double[16];
    java.util.Arrays.fill(mean, 0, 8, a);
    java.util.Arrays.fill(mean, 8, 16, b);
    return LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
  }

  @Test
  void heavierBacklogMakesAMoveLessAttractive() {
    // Two equal ranges could go; the one with a backlog is more disruptive.
    List<BalanceRange> ranges = new ArrayList<>(
        slices(Ring.SLICES / 4, "a", "a", "b", "b"));
    long step = (long) (Ring.SLICES / 4) * SLICE;
    ranges.set(0, new BalanceRange(0, step, "a", false, false, BalanceRange.NEVER, 5000));
    double[] mean = {30, 30, 10, 10};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, mean.clone(), List.of());
    Plan plan = plan(ranges, List.of(active("a"), active("b")), outlook,
        DEFAULTS.toBuilder().maxMovesPerRound(1).build());
    assertEquals(step, plan.moves().get(0).rangeStart());
  }

  @Test
  void upperQuantileDrivesThePlan() {
    // Equal means; a's ranges are much more uncertain. Planning for the upper quantile moves
    // load off a.
    List<BalanceRange> ranges = slices(Ring.SLICES / 8, "a", "a", "a", "a", "b", "b", "b", "b");
    double[] mean = {10, 10, 10, 10, 10, 10, 10, 10};
    double[] upper = {20, 20, 20, 20, 10, 10, 10, 10};
    LoadOutlook outlook = LoadOutlook.ofRanges(ranges, mean, upper, List.of());
    Plan plan = plan(ranges, List.of(active("a"), active("b")), outlook, DEFAULTS);
    assertEquals(0.8, plan.utilisationBefore().get("a"), 1e-9);
    assertEquals("a", plan.moves().get(0).from());
    // Independent errors: a's planned load is 40 + sqrt(4 * 10^2) = 60.
    Plan independent = plan(ranges, List.of(active("a"), active("b")), outlook,
        DEFAULTS.toBuilder().upperCorrelation(0).build());
    assertEquals(0.6, independent.utilisationBefore().get("a"), 1e-9);
  }

  @Test
  void mergesARunOfSmallRangesToMoveIt() {
    // 8 servers, 4096 one-slice ranges; s0's slices bring 0.15 each (76.8 in all), the others'
    // 0.1 (51.2): max/mean 1.41. No single range (0.15 % of capacity) can move with a 2 % gain,
    // so a run of s0's ranges is merged first, sized to level s0 with the least utilised server.
    String[] owners = new String[Ring.SLICES];
    for (int i = 0; i < owners.length; i++) {
      owners[i] = "s" + (i * 8 / owners.length);
    }
    List<BalanceRange> ranges = slices(1, owners);
    List<BalanceServer> servers = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      servers.add(active("s" + i));
    }
    double[] mean = new double[Ring.SLICES];
    for (int i = 0; i < mean.length; i++) {
      mean[i] = i < 512 ? 0.15 : 0.1;
    }
    LoadOutlook outlook = LoadOutlook.ofSlices(mean, mean.clone(), List.of());
    Plan plan = plan(ranges, servers, outlook, DEFAULTS);
    List<PlanAction.Merge> runs = plan.merges().stream()
        .filter(m -> m.cause().reason() == Reason.MERGE_TO_MOVE).toList();
    assertFalse(runs.isEmpty(), plan.actions().toString());
    java.util.Map<Long, Long> perUnit = runs.stream().collect(java.util.stream.Collectors
        .groupingBy(PlanAction.Merge::leftStart, java.util.stream.Collectors.counting()));
    perUnit.values().forEach(n -> assertTrue(n <= DEFAULTS.maxMergesPerMove()));
    // Every merged unit is then moved.
    assertEquals(perUnit.keySet(), plan.moves().stream().map(PlanAction.Move::rangeStart)
        .collect(java.util.stream.Collectors.toSet()));
    PlanAction.Move first = plan.moves().get(0);
    assertEquals("s0", first.from());
    assertEquals(runs.get(0).leftStart(), first.rangeStart());
    // Levelling s0 (0.768) with an s1 (0.512) moves about 12.8: 85 ranges, capped at 65.
    assertEquals(0.15 * 65, first.cause().upperLoad(), 1e-6);
    assertTrue(plan.criterionAfter() < plan.criterionBefore());
    // Not with merging to move turned off: every server is left as it is.
    Plan off = plan(ranges, servers, outlook, DEFAULTS.toBuilder().maxMergesPerMove(0).build());
    assertTrue(off.moves().isEmpty(), off.actions().toString());
  }

  @Test
  void refusesAnInvalidMap() {
    List<BalanceServer> servers = List.of(active("a"));
    LoadOutlook outlook = LoadOutlook.uniform(1, 1);
    IllegalArgumentException gap = assertThrows(IllegalArgumentException.class,
        () -> Planner.plan(List.of(BalanceRange.of(0, SLICE, "a"),
            BalanceRange.of(2 * SLICE, 0, "a")), servers, outlook, DEFAULTS, NOW,
            MoveHistory.EMPTY));
    assertTrue(gap.getMessage().contains("gap"), gap.getMessage());
    IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
        () -> Planner.plan(List.of(BalanceRange.of(0, 0, "zz")), servers, outlook, DEFAULTS,
            NOW, MoveHistory.EMPTY));
    assertTrue(unknown.getMessage().contains("zz"), unknown.getMessage());
    IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
        () -> Planner.plan(List.of(BalanceRange.of(0, 0, "a")), List.of(active("a"), active("a")),
            outlook, DEFAULTS, NOW, MoveHistory.EMPTY));
    assertTrue(twice.getMessage().contains("twice"), twice.getMessage());
  }

  @Test
  void smallClusterPlanIsCheap() {
    // The simulator's shape: 8 servers, 4096 one-slice ranges. Not a timing assertion (that is
    // in bench/); this checks that planning such a cluster repeatedly does not blow up.
    String[] owners = new String[Ring.SLICES];
    for (int i = 0; i < owners.length; i++) {
      owners[i] = "s" + (i * 8 / owners.length);
    }
    List<BalanceRange> ranges = slices(1, owners);
    List<BalanceServer> servers = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      servers.add(active("s" + i));
    }
    double[] mean = new double[Ring.SLICES];
    for (int i = 0; i < mean.length; i++) {
      mean[i] = i < 64 && i % 4 == 0 ? 2.5 : 0.1; // s0 has 16 hot slices
    }
    LoadOutlook outlook = LoadOutlook.ofSlices(mean, mean.clone(), List.of());
    Plan plan = plan(ranges, servers, outlook, DEFAULTS.toBuilder().mergeMaxLoad(0).build());
    assertEquals(2, plan.moves().size(), "s0 takes part in at most 2");
    for (int round = 0; round < 200; round++) {
      assertEquals(plan, Planner.plan(ranges, servers, outlook, DEFAULTS.toBuilder()
          .mergeMaxLoad(0).build(), NOW, MoveHistory.EMPTY));
    }
    assertEquals(Duration.ofMinutes(10), DEFAULTS.horizon());
  }
}
