package io.plb.core.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.plb.core.sim.HandoverSimulation.Config;
import io.plb.core.sim.HandoverSimulation.Crashes;
import io.plb.core.sim.HandoverSimulation.Faults;
import io.plb.core.sim.HandoverSimulation.Mutation;
import io.plb.core.sim.HandoverSimulation.Result;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.LongFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Runs the seeded handover simulation over many seeds: without crashes, and with crashes, restarts
 * and forced handovers. A failure names its seed and the command that replays it: {@code
 * -Dplb.sim.seed=N} runs that one seed in each test (add {@code -Dplb.sim.trace=true} for a
 * step-by-step story); {@code -Dplb.sim.count=N} and {@code -Dplb.sim.crashCount=N} run more.
 */
class HandoverSimulationTest {
  private static final Config PIPELINED = Config.of(3, 120, 6, 3, 0.05, 0.2, 8);
  private static final Config SEQUENTIAL = Config.of(2, 80, 4, 1, 0.08, 0.3, 6);
  /** Many aborts, few keys: reaches the abort-from-SWITCH races that C2 and C3 guard. */
  private static final Config ABORTS = Config.of(2, 100, 2, 2, 0.3, 0.2, 10);
  /** Reports, transfers and their acknowledgements lost at random; agents send them again. */
  private static final Config LOSSY = Config.of(2, 100, 4, 2, 0.1, 0.2, 8).lossy(0.25);

  private static final Crashes CRASHES = new Crashes(3, 0.02, 0.004, 0.5, 10);
  /** Three servers, three ranges: forced handovers to a third server, targets lost with sources. */
  private static final Config CRASH_THREE = Config.of(3, 80, 6, 3, 0.05, 0.2, 8)
      .crashing(3, 3, CRASHES);
  /** Two servers: a forced handover always goes to the handover's target or the other server. */
  private static final Config CRASH_TWO = Config.of(2, 80, 4, 2, 0.08, 0.2, 8)
      .crashing(2, 2, CRASHES);
  /** Crashes with many aborts: ABORT_SWITCH waiting for a crashed target, forced from it. */
  private static final Config CRASH_ABORTS = Config.of(2, 80, 3, 2, 0.25, 0.2, 8)
      .crashing(3, 2, CRASHES);
  /** Crashes on lossy links. */
  private static final Config CRASH_LOSSY = Config.of(2, 80, 4, 2, 0.08, 0.2, 8).lossy(0.15)
      .crashing(3, 3, CRASHES);
  /**
   * Sources crash right after sealing, before the seal is persisted; short outages and a very
   * stale router, which keeps sending the restarted source messages routed under PREPARE.
   */
  private static final Config CRASH_AT_SEAL = Config.of(3, 80, 6, 3, 0.05, 0.2, 8)
      .crashing(3, 3, new Crashes(4, 0, 0.5, 0, 40, "sealed"));

  /**
   * Lease faults: heartbeats and grants lost at random and for long stretches (a server cut off
   * from the PLB nodes), servers paused for less than the lease, more, or until DOWN, operators
   * declaring a suspect server DOWN while its lease may run, and leader changes.
   */
  private static final Faults LEASE_FAULTS = new Faults(0.1, 0.01, 0.015, 0.1, 0.01, 2, 0.05);
  /** Three servers, three ranges, lease faults and broken streams, no crashes. */
  private static final Config LEASES = Config.of(3, 80, 6, 3, 0.05, 0.2, 8)
      .crashing(3, 3, Crashes.NONE).faulty(LEASE_FAULTS).breakingStreams(0.02);
  /** Lease faults on top of crashes, on two servers. */
  private static final Config LEASES_CRASHING = Config.of(2, 80, 4, 2, 0.08, 0.2, 8)
      .crashing(2, 2, new Crashes(2, 0.01, 0.003, 0.5, 10)).faulty(LEASE_FAULTS);

  /** Splits and merges under traffic and moves, three servers, no faults. */
  private static final Config RESHAPING = Config.of(3, 80, 6, 3, 0.05, 0.2, 8)
      .crashing(3, 3, Crashes.NONE).faulty(new Faults(0, 0, 0, 0, 0, 0, 0.15));

  private static Config leases(long seed) {
    return seed % 3 == 2 ? LEASES_CRASHING : LEASES;
  }

  /**
   * The crash configurations with publish streams that also break with no crash; a server drops
   * a session's refusal fences once its stream has ended (the agent's rule, DESIGN §5). Ranges
   * are split and merged under traffic too.
   */
  private static Config breaking(long seed) {
    return crashing(seed).breakingStreams(0.03).faulty(new Faults(0, 0, 0, 0, 0, 0, 0.05));
  }

  private static Config plain(long seed) {
    return switch ((int) (seed % 4)) {
      case 0 -> PIPELINED;
      case 1 -> SEQUENTIAL;
      case 2 -> ABORTS;
      default -> LOSSY;
    };
  }

  private static Config crashing(long seed) {
    return switch ((int) (seed % 5)) {
      case 0 -> CRASH_THREE;
      case 1 -> CRASH_TWO;
      case 2 -> CRASH_ABORTS;
      case 3 -> CRASH_LOSSY;
      default -> CRASH_AT_SEAL;
    };
  }

  /** Totals over a run of seeds. */
  private static final class Totals {
    long completed;
    long aborted;
    long refusals;
    long crashes;
    long down;
    long forced;
    long late;
    long duplicates;
    long pauses;
    long outages;
    long operatorDowns;
    long leaderChanges;
    long overloaded;
    long deduped;
    long knownGaps;
    /** Second deliveries flagged redelivered (a resend another server may have stored). */
    long flagged;
    long splits;
    long merges;
    final Set<String> coverage = new TreeSet<>();

    void add(Result r) {
      completed += r.handoversCompleted();
      aborted += r.handoversAborted();
      refusals += r.refusals();
      crashes += r.crashes();
      down += r.downDeclared();
      forced += r.forced();
      late += r.lateDelivered();
      duplicates += r.duplicates();
      pauses += r.pauses();
      outages += r.outages();
      operatorDowns += r.operatorDowns();
      leaderChanges += r.leaderChanges();
      overloaded += r.overloaded();
      deduped += r.dedupedResends();
      knownGaps += r.unmarkedLeftovers();
      flagged += r.flaggedDuplicates();
      splits += r.splits();
      merges += r.merges();
      coverage.addAll(r.coverage());
    }
  }

  private static Totals runSeeds(String test, String countProperty, long defaultCount,
      LongFunction<Config> configs) {
    String only = System.getProperty("plb.sim.seed");
    long first = only == null ? 1 : Long.parseLong(only);
    long last = only == null ? Long.getLong(countProperty, defaultCount) : first;
    Totals t = new Totals();
    for (long seed = first; seed <= last; seed++) {
      try {
        t.add(new HandoverSimulation(seed, configs.apply(seed)).run());
      } catch (AssertionError e) {
        throw new AssertionError(e.getMessage() + "\n  replay: mvn -B -q -pl plb-core -am test"
            + " -Dtest='HandoverSimulationTest#" + test + "'"
            + " -Dsurefire.failIfNoSpecifiedTests=false -Dplb.sim.seed=" + seed
            + " -Dplb.sim.trace=true", e);
      }
    }
    return only == null ? t : null;
  }

  @Test
  void manySeedsKeepEveryMessageInProducerOrder() {
    Totals t = runSeeds("manySeedsKeepEveryMessageInProducerOrder", "plb.sim.count", 1000,
        HandoverSimulationTest::plain);
    if (t != null) {
      // The runs must actually exercise the protocol, or passing means nothing.
      assertTrue(t.completed > 200, "handovers completed: " + t.completed);
      assertTrue(t.aborted > 50, "handovers aborted: " + t.aborted);
      assertTrue(t.refusals > 100, "WRONG_OWNER refusals: " + t.refusals);
    }
  }

  @Test
  void crashesRestartsAndForcedHandoversLoseNothing() {
    Totals t = runSeeds("crashesRestartsAndForcedHandoversLoseNothing", "plb.sim.crashCount",
        500, HandoverSimulationTest::crashing);
    if (t != null) {
      System.out.println("crash simulation: " + t.crashes + " crashes, " + t.down + " DOWN, "
          + t.forced + " forced handovers, " + t.late + " late deliveries, " + t.duplicates
          + " duplicates, " + t.completed + " handovers completed, " + t.aborted + " aborted; "
          + t.coverage);
      assertTrue(t.crashes > 500, "crashes: " + t.crashes);
      assertTrue(t.forced > 100, "forced handovers: " + t.forced);
      assertTrue(t.late > 100, "late deliveries: " + t.late);
      assertTrue(t.completed > 500, "handovers completed: " + t.completed);
      for (String role : new String[] {"source", "target"}) {
        for (String phase : new String[] {"PREPARE", "SWITCH", "ABORT_SWITCH"}) {
          assertTrue(t.coverage.contains(role + "-crash-in-" + phase),
              "no crash of a " + role + " in " + phase + ": " + t.coverage);
        }
      }
      for (String point : new String[] {"between-actions", "before-persist", "after-persist",
          "sealed", "publish-stored", "transfer-stored", "late-queued", "late-sent"}) {
        assertTrue(t.coverage.contains("crash@" + point), "no crash at " + point);
      }
    }
  }

  @Test
  void fencesDroppedWithTheirStreamsKeepProducerOrder() {
    Totals t = runSeeds("fencesDroppedWithTheirStreamsKeepProducerOrder", "plb.sim.breakCount",
        400, HandoverSimulationTest::breaking);
    if (t != null) {
      assertTrue(t.coverage.contains("stream-break"), "no stream broke: " + t.coverage);
      assertTrue(t.splits > 100 && t.merges > 20, t.splits + " splits, " + t.merges + " merges");
      assertTrue(t.refusals > 100, "WRONG_OWNER refusals: " + t.refusals);
      assertTrue(t.aborted > 50, "handovers aborted: " + t.aborted);
    }
  }

  @Test
  void leasesPausesLostHeartbeatsAndLeaderChangesKeepOrder() {
    Totals t = runSeeds("leasesPausesLostHeartbeatsAndLeaderChangesKeepOrder",
        "plb.sim.leaseCount", 500, HandoverSimulationTest::leases);
    if (t != null) {
      System.out.println("lease simulation: " + t.pauses + " pauses, " + t.outages
          + " heartbeat outages, " + t.operatorDowns + " operator DOWNs, " + t.leaderChanges
          + " leader changes, " + t.down + " DOWN, " + t.forced + " forced, " + t.overloaded
          + " OVERLOADED, " + t.deduped + " resends recognised, " + t.late + " late, "
          + t.knownGaps + " known-gap deliveries, " + t.flagged + " flagged duplicates, "
          + t.splits + " splits, " + t.merges + " merges; " + t.coverage);
      assertTrue(t.forced > 50, "forced handovers: " + t.forced);
      assertTrue(t.deduped > 50, "resends recognised: " + t.deduped);
      for (String c : new String[] {"pause-0", "pause-1", "pause-2", "heartbeat-outage",
          "operator-down", "force-waits-for-lease", "leader-change", "resend-recognised",
          "resend-dropped-on-merge", "split", "merge"}) {
        assertTrue(t.coverage.contains(c), "never reached: " + c + " in " + t.coverage);
      }
    }
  }

  @Test
  void splitsAndMergesUnderTrafficKeepOrder() {
    Totals t = runSeeds("splitsAndMergesUnderTrafficKeepOrder", "plb.sim.reshapeCount", 200,
        seed -> RESHAPING);
    if (t != null) {
      System.out.println("reshaping simulation: " + t.splits + " splits, " + t.merges
          + " merges, " + t.completed + " handovers completed, " + t.aborted + " aborted, "
          + t.refusals + " refusals");
      assertTrue(t.splits > 200, "splits: " + t.splits);
      assertTrue(t.merges > 200, "merges: " + t.merges);
      assertTrue(t.completed > 200, "handovers completed: " + t.completed);
    }
  }

  /**
   * The checkers can fail: each deliberate defect makes a seed fail within a few dozen.
   * TRANSFER_BEFORE_PERSIST and LATE_AS_BEFORE are the agent as it was before the simulation
   * modelled crashes.
   */
  @ParameterizedTest
  @EnumSource(value = Mutation.class, names = {"NONE", "LATE_SKIP_AS_BUILT"},
      mode = EnumSource.Mode.EXCLUDE)
  void everyMutationIsCaught(Mutation mutation) {
    LongFunction<Config> configs = switch (mutation) {
      case C1_DRAINED_BEFORE_ACK, C2_NO_WAIT -> HandoverSimulationTest::plain;
      case TRANSFER_BEFORE_PERSIST -> seed -> CRASH_AT_SEAL;
      case FENCES_DROPPED_ON_NEW_VERSION -> HandoverSimulationTest::crashing;
      case NO_LEASE, FORCE_DURING_LEASE -> seed -> LEASES;
      case NO_DEDUPE, NO_SEQUENCES_IN_TRANSFERS -> HandoverSimulationTest::breaking;
      default -> HandoverSimulationTest::crashing;
    };
    for (long seed = 1; seed <= 200; seed++) {
      try {
        new HandoverSimulation(seed, configs.apply(seed).with(mutation)).run();
      } catch (AssertionError e) {
        System.out.println(mutation + " caught: " + e.getMessage());
        return;
      }
    }
    fail("no seed up to 200 fails with " + mutation);
  }

  /**
   * Without the lease check a paused owner, resuming, serves under its old map while its ranges
   * were forced away: the history checker alone (no knowledge of the simulation) sees keys
   * reordered, and the simulation's own checks see a second owner delivering.
   */
  @Test
  void withoutLeasesAPausedOwnerReordersKeys() {
    for (long seed = 1; seed <= 500; seed++) {
      Result r = new HandoverSimulation(seed, LEASES.with(Mutation.NO_LEASE))
          .judgedByHistoryOnly().run();
      if (r.verdict().reorderedKeys() > 0) {
        System.out.println("without leases, seed " + seed + ": " + r.verdict());
        return;
      }
    }
    fail("no seed up to 500 shows a reordered key without leases");
  }

  /**
   * Handbacks, then long outages: two servers, many aborts from SWITCH, a source that crashes
   * right after storing a handback and stays down until its ranges are forced to the target,
   * and then sends the target what it holds as late.
   */
  private static final Config HANDBACK_THEN_LATE = Config.of(3, 60, 12, 2, 0.3, 0.2, 8)
      .crashing(2, 2, new Crashes(2, 0, 0.5, 1.0, 1, "transfer-stored"));

  /**
   * The reference store's late path as built (QueueStore.queueLate skips a late copy by its
   * sequences) loses acknowledged messages: a server stored a message, handed it on in a transfer
   * (a target's held messages given back after an abort), and later took its late copy for one it
   * still had. With the model's rule (no late copy is skipped; a copy the receiver has too is
   * delivered twice, marked late) the same seed passes.
   */
  @Test
  void theLateSkipAsBuiltLosesMessages() {
    for (long seed = 1; seed <= 300; seed++) {
      try {
        new HandoverSimulation(seed, HANDBACK_THEN_LATE.with(Mutation.LATE_SKIP_AS_BUILT)).run();
      } catch (AssertionError e) {
        if (!e.getMessage().contains("lost=")) {
          throw e;
        }
        System.out.println("late skip as built, seed " + seed + ": " + e.getMessage());
        new HandoverSimulation(seed, HANDBACK_THEN_LATE).run();
        return;
      }
    }
    fail("no seed up to 300 loses a message with the late skip as built");
  }

  /**
   * Regression: a restarted server, before its first map, took every key for one outside any
   * handover and forgot the producer entries its producers' settled_below passed. As the source
   * of a handover it then sent its transfer without the entry of a message whose resend the
   * target held, and the target's merge kept the resend: delivered twice, unmarked (counted as
   * the "forgotten entry" shape; seeds 10 and 96 of the crash runs, 12 deliveries in 500 seeds).
   * Without a map the server now keeps every entry ({@code AgentCore.inHandover}).
   */
  @Test
  void aServerWithoutAMapKeepsItsProducerEntries() {
    for (long seed : new long[] {10, 96}) {
      Result r = new HandoverSimulation(seed, crashing(seed)).run();
      assertEquals(0, r.flaggedDuplicates(), "seed " + seed);
    }
  }

  @Test
  void aSeedReplaysExactly() {
    assertEquals(new HandoverSimulation(42, PIPELINED).run(),
        new HandoverSimulation(42, PIPELINED).run());
    assertEquals(new HandoverSimulation(43, CRASH_THREE).run(),
        new HandoverSimulation(43, CRASH_THREE).run());
    assertEquals(new HandoverSimulation(44, LEASES).run(),
        new HandoverSimulation(44, LEASES).run());
  }
}
