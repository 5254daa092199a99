package io.plb.core.balance;

import static io.plb.core.balance.BalanceFixtures.MINUTE;
import static io.plb.core.balance.BalanceFixtures.activeSorted;
import static io.plb.core.balance.BalanceFixtures.manySmallRanges;
import static io.plb.core.balance.BalanceFixtures.randomProblem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.plb.core.balance.BalanceFixtures.Problem;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Seeded random planning problems (3–50 servers, 10–2,000 ranges, random loads, capacities, pins,
 * handovers in flight, DRAINING and DOWN servers, histories and settings), with the planner's
 * promises checked on every one: budgets, the ranges and servers it must not touch, a valid map
 * when applied, the same plan for the same input, a criterion that falls when it acts, and rest
 * on a stationary load.
 *
 * <p>Replay one seed with {@code -Dplb.seed=N}.
 */
class PlannerPropertyTest {
  private static final int CASES = 300;
  private static final int REST_CASES = 24;
  private static final int SMALL_RANGE_CASES = 40;

  private static long[] seeds(int n, long salt) {
    String one = System.getProperty("plb.seed");
    if (one != null) {
      return new long[] {Long.parseLong(one)};
    }
    long[] seeds = new long[n];
    Random r = new Random(salt);
    for (int i = 0; i < n; i++) {
      seeds[i] = r.nextLong();
    }
    return seeds;
  }

  @Test
  void everyPlanKeepsItsPromises() {
    int withMoves = 0;
    int withSplits = 0;
    int withMerges = 0;
    int withRuns = 0;
    long[] seeds = seeds(CASES, 11);
    for (int i = 0; i < seeds.length; i++) {
      long seed = seeds[i];
      Problem p = randomProblem(seed, i % 2 == 1);
      Plan plan;
      try {
        plan = p.plan();
        checkPlan(p, plan);
      } catch (AssertionError | RuntimeException e) {
        throw new AssertionError("seed " + seed + ": " + e.getMessage(), e);
      }
      withMoves += plan.moves().isEmpty() ? 0 : 1;
      withSplits += plan.splits().isEmpty() ? 0 : 1;
      withMerges += plan.merges().isEmpty() ? 0 : 1;
      withRuns += plan.merges().stream()
          .anyMatch(g -> g.cause().reason() == Cause.Reason.MERGE_TO_MOVE) ? 1 : 0;
    }
    for (long seed : seeds(SMALL_RANGE_CASES, 13)) {
      Problem p = manySmallRanges(seed);
      Plan plan;
      try {
        plan = p.plan();
        checkPlan(p, plan);
      } catch (AssertionError | RuntimeException e) {
        throw new AssertionError("seed " + seed + " (small ranges): " + e.getMessage(), e);
      }
      withRuns += plan.merges().stream()
          .anyMatch(g -> g.cause().reason() == Cause.Reason.MERGE_TO_MOVE) ? 1 : 0;
    }
    // The generator must reach every kind of action, or the checks above prove little.
    if (System.getProperty("plb.seed") == null) {
      assertTrue(withMoves > CASES / 5, "plans with moves: " + withMoves);
      assertTrue(withSplits > CASES / 20, "plans with splits: " + withSplits);
      assertTrue(withMerges > CASES / 10, "plans with merges: " + withMerges);
      assertTrue(withRuns > 3, "plans merging runs to move: " + withRuns);
    }
  }

  static void checkPlan(Problem p, Plan plan) {
    BalancerConfig cfg = p.config();
    Map<String, BalanceServer> servers = new HashMap<>();
    p.servers().forEach(s -> servers.put(s.id(), s));

    // Budgets.
    List<PlanAction.Move> moves = plan.moves();
    assertTrue(moves.size() <= cfg.maxMovesPerRound(), "moves per round " + moves.size());
    int inWindow = p.history().movesAfter(p.now() - cfg.moveWindow().toMillis());
    assertTrue(moves.size() <= Math.max(0, cfg.maxMovesPerWindow() - inWindow),
        "window: " + inWindow + " before, " + moves.size() + " now");
    Map<String, Integer> perServer = new HashMap<>();
    for (BalanceRange r : p.ranges()) {
      if (r.moving()) {
        perServer.merge(r.owner(), 1, Integer::sum);
      }
    }
    Map<String, Integer> planned = new HashMap<>();
    for (PlanAction.Move m : moves) {
      planned.merge(m.from(), 1, Integer::sum);
      planned.merge(m.to(), 1, Integer::sum);
    }
    planned.forEach((s, n) -> assertTrue(
        n + perServer.getOrDefault(s, 0) <= cfg.maxMovesPerServer(),
        s + " takes part in " + n + " moves with " + perServer.getOrDefault(s, 0)
            + " running"));
    assertTrue(plan.splits().size() <= cfg.maxSplitsPerRound(), "splits");
    long cold = plan.merges().stream()
        .filter(g -> g.cause().reason() == Cause.Reason.MERGE_COLD).count();
    assertTrue(cold <= cfg.maxMergesPerRound(), "cold merges " + cold);
    // Each run merged to move is at most maxMergesPerMove merges onto one range start.
    Map<Long, Integer> runs = new HashMap<>();
    plan.merges().stream().filter(g -> g.cause().reason() == Cause.Reason.MERGE_TO_MOVE)
        .forEach(g -> runs.merge(g.leftStart(), 1, Integer::sum));
    runs.values().forEach(n -> assertTrue(n <= cfg.maxMergesPerMove(), "run of " + n));
    if (!runs.isEmpty()) {
      assertTrue(plan.acting(), "merged to move while not acting");
    }
    if (!plan.splits().isEmpty()) {
      assertTrue(p.ranges().size() + plan.splits().size() <= cfg.maxRanges(), "maxRanges");
    }

    // Every action, replayed in order on a copy of the map, touches only what it may.
    List<BalanceRange> map = new ArrayList<>(p.ranges());
    long dwell = cfg.minDwell().toMillis();
    for (PlanAction a : plan.actions()) {
      if (a instanceof PlanAction.Move m) {
        BalanceRange r = at(map, m.rangeStart());
        assertFalse(r.pinned(), "moved a pinned range " + r);
        assertFalse(r.moving(), "moved a moving range " + r);
        assertEquals(ServerState.ACTIVE, servers.get(m.from()).state(), "source state");
        assertEquals(ServerState.ACTIVE, servers.get(m.to()).state(), "target state");
        assertFalse(r.lastMovedAtMillis() > p.now() - dwell, "dwell of " + r);
        for (BalanceRange orig : p.ranges()) { // dwell as the input saw it, through splits
          if (overlaps(orig.start(), orig.end(), r.start(), r.end())) {
            assertFalse(orig.lastMovedAtMillis() > p.now() - dwell, "dwell of " + orig);
          }
        }
        for (MoveHistory.Entry e : p.history().entries()) {
          if (overlaps(e.rangeStart(), e.rangeEnd(), r.start(), r.end())) {
            assertFalse(e.atMillis() > p.now() - dwell, "history dwell " + e + " for " + r);
          }
        }
        assertTrue(m.cause().sourceBefore() - Math.max(m.cause().sourceAfter(),
            m.cause().targetAfter()) > cfg.minGain(), "gain of " + m.describe());
      } else if (a instanceof PlanAction.Split s) {
        BalanceRange r = at(map, s.rangeStart());
        assertFalse(r.pinned() || r.moving(), "split a pinned or moving range " + r);
        assertTrue(Ring.strictlyInside(r.start(), r.end(), s.at()), "split point");
        assertEquals(ServerState.ACTIVE, servers.get(r.owner()).state(), "split owner");
      } else if (a instanceof PlanAction.Merge g) {
        BalanceRange l = at(map, g.leftStart());
        BalanceRange r = at(map, g.rightStart());
        assertFalse(l.pinned() || r.pinned() || l.moving() || r.moving(), "merged " + l + r);
        assertEquals(ServerState.ACTIVE, servers.get(l.owner()).state(), "merge owner");
      }
      map = PlanApplier.apply(map, p.servers(), single(plan, a), p.now());
    }
    List<BalanceRange> applied = PlanApplier.apply(p.ranges(), p.servers(), plan, p.now());
    assertEquals(map, applied);
    Map<String, Long> counts = new HashMap<>();
    applied.forEach(r -> counts.merge(r.owner(), 1L, Long::sum));
    for (PlanAction.Merge g : plan.merges()) {
      String owner = at(p.ranges(), g.leftStart()) == null ? null : null;
      assertTrue(owner == null);
    }
    for (BalanceServer s : p.servers()) {
      long before = p.ranges().stream().filter(r -> r.owner().equals(s.id())).count();
      long after = counts.getOrDefault(s.id(), 0L);
      if (after < before && plan.merges().size() > 0) {
        assertTrue(after >= Math.min(before, cfg.minRangesPerServer())
            || plan.moves().stream().anyMatch(m -> m.from().equals(s.id()))
            || plan.merges().stream().anyMatch(
                g -> g.cause().reason() == Cause.Reason.MERGE_TO_MOVE
                    && g.cause().source().equals(s.id())),
            s.id() + " merged down to " + after + " ranges");
      }
    }

    // Deterministic: the same input, and the servers in another order, give the same plan.
    assertEquals(plan, p.plan(), "same input, same plan");
    List<BalanceServer> shuffled = new ArrayList<>(p.servers());
    Collections.shuffle(shuffled, new Random(p.now()));
    assertEquals(plan, Planner.plan(p.ranges(), shuffled, p.outlook(), cfg, p.now(),
        p.history()), "servers in another order");

    // The utilisations after are what a fresh look at the applied map sees.
    Plan next = Planner.plan(applied, p.servers(), p.outlook(), cfg, p.now() + MINUTE,
        p.history().record(plan, p.now(), cfg));
    for (BalanceServer s : p.servers()) {
      double a = plan.utilisationAfter().get(s.id());
      double b = next.utilisationBefore().get(s.id());
      assertEquals(a, b, 1e-9 * Math.max(1, Math.abs(a)), "utilisation of " + s.id());
    }

    // Acting lowers the criterion: the sorted vector of active utilisations falls.
    if (!moves.isEmpty()) {
      assertTrue(plan.acting(), "moves while not acting");
      double[] before = activeSorted(plan.utilisationBefore(), p.servers());
      double[] after = activeSorted(plan.utilisationAfter(), p.servers());
      if (cfg.upperCorrelation() == 1.0) {
        assertTrue(lexicographicallyBelow(after, before, 1e-9),
            "utilisations did not fall: " + plan.utilisationBefore() + " -> "
                + plan.utilisationAfter());
        assertTrue(plan.criterionAfter() <= plan.criterionBefore() + 1e-9,
            "criterion rose: " + plan.criterionBefore() + " -> " + plan.criterionAfter());
      }
      assertTrue(after[0] <= before[0] + 1e-6, "max rose: " + before[0] + " -> " + after[0]);
    }
    if (!plan.acting()) {
      assertTrue(moves.isEmpty() && plan.splits().isEmpty(), "moved or split while not acting");
    }
  }

  static Plan single(Plan plan, PlanAction a) {
    return new Plan(List.of(a), plan.criterion(), plan.criterionBefore(),
        plan.criterionAfter(), plan.acting(), plan.engaged(), plan.utilisationBefore(),
        plan.utilisationAfter(), List.of());
  }

  static BalanceRange at(List<BalanceRange> map, long start) {
    for (BalanceRange r : map) {
      if (r.start() == start) {
        return r;
      }
    }
    fail("no range starts at " + Ring.hex(start));
    return null;
  }

  static boolean overlaps(long aStart, long aEnd, long bStart, long bEnd) {
    boolean aBeforeBEnd = bEnd == Ring.RING_END || Long.compareUnsigned(aStart, bEnd) < 0;
    boolean bBeforeAEnd = aEnd == Ring.RING_END || Long.compareUnsigned(bStart, aEnd) < 0;
    return aBeforeBEnd && bBeforeAEnd;
  }

  static boolean lexicographicallyBelow(double[] a, double[] b, double eps) {
    for (int i = 0; i < a.length; i++) {
      if (Math.abs(a[i] - b[i]) > eps) {
        return a[i] < b[i];
      }
    }
    return false;
  }

  /**
   * On a stationary load, planning every minute and applying each plan comes to rest: after a
   * while no plan has any action, and it stays so. With budgets that do not bind, moves stop
   * within three rounds.
   */
  @Test
  void comesToRestOnStationaryLoad() {
    int roundsWithMovesMax = 0;
    for (long seed : seeds(REST_CASES, 23)) {
      Problem p = randomProblem(seed);
      boolean free = new Random(seed).nextBoolean();
      BalancerConfig cfg = free
          ? p.config().toBuilder().maxMovesPerRound(10_000).maxMovesPerServer(10_000)
              .maxMovesPerWindow(10_000).maxSplitsPerRound(10_000).build()
          : p.config().toBuilder().maxMovesPerRound(Math.max(2, p.config().maxMovesPerRound()))
              .maxMovesPerServer(Math.max(2, p.config().maxMovesPerServer()))
              .maxMovesPerWindow(Math.max(4, p.config().maxMovesPerWindow()))
              .moveWindow(Duration.ofMinutes(Math.min(10, p.config().moveWindow().toMinutes())))
              .build();
      // Ranges in flight finish first, so the picture is stationary. With free budgets no range
      // waits for its dwell either, so every move possible is possible from the first round.
      List<BalanceRange> map = new ArrayList<>();
      for (BalanceRange r : p.ranges()) {
        map.add(new BalanceRange(r.start(), r.end(), r.owner(), r.pinned(), false,
            free ? BalanceRange.NEVER : r.lastMovedAtMillis(), r.backlog()));
      }
      MoveHistory history = free ? MoveHistory.EMPTY : p.history();
      long now = p.now();
      int quiet = 0;
      int rounds = 0;
      int roundsWithMoves = 0;
      double lastCriterion = Double.NaN;
      while (quiet < 30) {
        rounds++;
        if (rounds > 3000) {
          fail("seed " + seed + ": still acting after 3000 rounds");
        }
        Problem here = new Problem(map, p.servers(), p.outlook(), cfg, now, history);
        Plan plan = here.plan();
        try {
          if (rounds <= 3 || rounds % 25 == 0) {
            checkPlan(here, plan);
          }
        } catch (AssertionError e) {
          throw new AssertionError("seed " + seed + " round " + rounds + ": " + e.getMessage(),
              e);
        }
        if (!Double.isNaN(lastCriterion)) {
          assertEquals(lastCriterion, plan.criterionBefore(), 1e-9,
              "seed " + seed + ": criterion changed between rounds without a plan");
        }
        lastCriterion = plan.criterionAfter();
        if (!plan.moves().isEmpty()) {
          roundsWithMoves++;
        }
        quiet = plan.isEmpty() ? quiet + 1 : 0;
        map = PlanApplier.apply(map, p.servers(), plan, now);
        history = history.record(plan, now, cfg);
        now += MINUTE;
      }
      if (free) {
        assertTrue(roundsWithMoves <= 3,
            "seed " + seed + ": moves in " + roundsWithMoves + " rounds with free budgets");
      }
      roundsWithMovesMax = Math.max(roundsWithMovesMax, roundsWithMoves);
    }
    assertTrue(roundsWithMovesMax > 0, "no case moved at all");
  }

  @Test
  void criterionFallsWhenActingWithAnyCorrelation() {
    // With upperCorrelation < 1 the criterion itself may move a little with the mean; the max
    // does not rise and, for STDDEV, the deviation falls.
    for (long seed : seeds(CASES / 2, 31)) {
      Problem p = randomProblem(seed);
      BalancerConfig cfg = p.config().toBuilder().criterion(Criterion.STDDEV)
          .hysteresis(0.01).maxMovesPerRound(6).maxMovesPerServer(3).maxMovesPerWindow(6)
          .moveWindow(Duration.ofMinutes(1)).build();
      Problem q = new Problem(p.ranges(), p.servers(), p.outlook(), cfg, p.now(),
          MoveHistory.EMPTY);
      Plan plan = q.plan();
      if (!plan.moves().isEmpty()) {
        assertTrue(plan.criterionAfter() < plan.criterionBefore() + 1e-12,
            "seed " + seed + ": stddev " + plan.criterionBefore() + " -> "
                + plan.criterionAfter());
      }
    }
  }
}
