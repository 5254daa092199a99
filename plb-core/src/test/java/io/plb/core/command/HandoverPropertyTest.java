package io.plb.core.command;

import static io.plb.core.map.MapFixtures.TWO_64;
import static io.plb.core.map.MapFixtures.assertCoversRing;
import static io.plb.core.map.MapFixtures.copyOf;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.plb.core.command.Command.AbortHandover;
import io.plb.core.command.Command.AssignRange;
import io.plb.core.command.Command.FinishAbort;
import io.plb.core.command.Command.ForceHandover;
import io.plb.core.command.Command.HandoverDrained;
import io.plb.core.command.Command.HandoverReady;
import io.plb.core.command.Command.MergeRanges;
import io.plb.core.command.Command.RegisterServer;
import io.plb.core.command.Command.RemoveServer;
import io.plb.core.command.Command.SetPinned;
import io.plb.core.command.Command.SplitRange;
import io.plb.core.command.Command.StartHandover;
import io.plb.core.command.Command.UpdateServer;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * Seeded random sequences of handover commands (with correct, stale, future and invalid epochs,
 * and replayed duplicates) mixed with splits, merges, assigns, server state changes, removals and
 * forced handovers, run against {@link CommandProcessor} and {@link ClusterImage#apply}.
 *
 * <p>For each command an independent model of the rules (DESIGN §4–5, the class Javadoc of
 * {@link Handovers}) predicts: refused (with which codes), ignored, or accepted — and for a
 * handover command the exact entry it writes. After every step: the image's invariants hold; the
 * open handovers stay within the fixed limits of every StartHandover ({@value #PER} per server,
 * {@value #TOTAL} in all); no key's epoch ever decreases; a range whose bounds are unchanged
 * changes its epoch by at most one; every ownership change bumps the epoch by exactly one and is
 * made by HandoverDrained (to the handover's target), ForceHandover (off a DOWN owner, to the
 * forced target) or AssignRange (to the assigned owner); the only other epoch changes are the
 * clearing of an aborted handover (AbortHandover from PREPARE, FinishAbort from ABORT_SWITCH),
 * which bumps the epoch of that one range by exactly one to the aborted attempt's handover epoch,
 * owner unchanged and slot empty, and a merge, which gives the merged range the larger epoch of
 * its two parts; a report naming an attempt whose abort was cleared is never applied (ignored, or
 * refused as NOT_FOUND once its range was merged away); an ignored command changes nothing.
 *
 * <p>Replay one seed with {@code mvn -o test -pl plb-core -Dtest=HandoverPropertyTest
 * -Dplb.seed=N}.
 */
class HandoverPropertyTest {
  private static final int SEEDS = 300;
  private static final int STEPS = 200;
  static final int PER = 2;
  static final int TOTAL = 4;
  private static final int MAX_RANGES = 24;

  private static final String[] POOL = {"s0", "s1", "s2", "s3", "s4", "s5"};
  private static final String UNKNOWN = "zz";
  private static final String MALFORMED = "bad id";

  /** What the model predicts: refused with one of {@code errors}, ignored, or accepted. */
  private record Expect(Set<ErrorCode> errors, boolean ignored, RangeEntry entry) {
    static Expect refused(Set<ErrorCode> errors) {
      return new Expect(errors, false, null);
    }

    static Expect ignore() {
      return new Expect(EnumSet.noneOf(ErrorCode.class), true, null);
    }

    static Expect accepted(RangeEntry entry) {
      return new Expect(EnumSet.noneOf(ErrorCode.class), false, entry);
    }
  }

  @Test
  void randomHandoverSequencesKeepTheRules() {
    Map<String, Integer> outcomes = new TreeMap<>();
    int[] peaks = new int[2];
    String replay = System.getProperty("plb.seed");
    if (replay != null && !replay.isBlank()) {
      run(Long.parseLong(replay.strip()), outcomes, peaks);
      return;
    }
    long t0 = System.nanoTime();
    for (long seed = 1; seed <= SEEDS; seed++) {
      run(seed, outcomes, peaks);
    }
    long ms = (System.nanoTime() - t0) / 1_000_000;
    System.out.println("HandoverPropertyTest: " + SEEDS + " seeds x " + STEPS + " steps in " + ms
        + " ms; peak open handovers " + peaks[0] + ", peak per server " + peaks[1] + "; "
        + outcomes);

    // the generator reaches every rule, so the invariants above were really exercised
    for (String k : List.of(
        "StartHandover ok", "StartHandover NOT_FOUND", "StartHandover FAILED_PRECONDITION",
        "StartHandover INVALID_ARGUMENT", "StartHandover RESOURCE_EXHAUSTED",
        "HandoverReady ok", "HandoverReady ignored", "HandoverReady FAILED_PRECONDITION",
        "HandoverReady INVALID_ARGUMENT", "HandoverReady NOT_FOUND",
        "HandoverDrained ok", "HandoverDrained ignored", "HandoverDrained FAILED_PRECONDITION",
        "HandoverDrained INVALID_ARGUMENT",
        "AbortHandover ok from PREPARE", "AbortHandover ok from SWITCH", "AbortHandover ignored",
        "AbortHandover FAILED_PRECONDITION", "AbortHandover INVALID_ARGUMENT",
        "FinishAbort ok", "FinishAbort ignored", "FinishAbort FAILED_PRECONDITION",
        "ForceHandover ok", "ForceHandover ok over an open handover",
        "ForceHandover FAILED_PRECONDITION", "ForceHandover NOT_FOUND",
        "SplitRange ok", "SplitRange FAILED_PRECONDITION", "MergeRanges ok",
        "MergeRanges FAILED_PRECONDITION", "AssignRange ok", "AssignRange FAILED_PRECONDITION",
        "UpdateServer ok", "RemoveServer FAILED_PRECONDITION", "RemoveServer ok",
        "RegisterServer ok", "SetPinned ok", "report of an aborted attempt ignored")) {
      assertTrue(outcomes.getOrDefault(k, 0) > 0, "never saw " + k + ": " + outcomes);
    }
    assertEquals(TOTAL, peaks[0], "the cluster budget was never filled");
    assertEquals(PER, peaks[1], "no server ever reached its budget");
  }

  private static void run(long seed, Map<String, Integer> outcomes, int[] peaks) {
    Random rnd = new Random(seed);
    ClusterImage image = setUp(rnd, seed);
    List<Command> history = new ArrayList<>();
    // the identities (range start, handover epoch) of the attempts whose abort was cleared
    Set<List<Long>> abortedAttempts = new HashSet<>();
    for (int step = 0; step < STEPS; step++) {
      Command command = randomCommand(rnd, image, history);
      String ctx = "seed " + seed + " step " + step + " v" + image.version() + " ["
          + command.describe() + "] " + command;
      List<Long> named = identity(command);
      boolean ofAnAbortedAttempt = named != null && abortedAttempts.contains(named);
      long version = image.version() + 1 + (rnd.nextInt(5) == 0 ? rnd.nextInt(100) : 0);
      Expect expect = expect(image, command);
      String kind = command.getClass().getSimpleName();
      ClusterImage before = copyOf(image);

      MapDelta delta;
      try {
        delta = CommandProcessor.process(image, command, version);
      } catch (PlbException e) {
        assertFalse(expect.errors().isEmpty(), ctx + ": refused with " + e.code() + " ("
            + e.getMessage() + ") but the model " + (expect.ignored() ? "ignores" : "accepts")
            + " it");
        assertTrue(expect.errors().contains(e.code()), ctx + ": refused with " + e.code() + " ("
            + e.getMessage() + "), the model expects one of " + expect.errors());
        assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), ctx + ": no message");
        assertEquals(before, image, ctx + ": a refused command changed the image");
        if (ofAnAbortedAttempt) {
          assertEquals(ErrorCode.NOT_FOUND, e.code(), ctx
              + ": a report of an aborted attempt is refused only once its range is gone");
        }
        outcomes.merge(kind + " " + e.code(), 1, Integer::sum);
        continue;
      }
      assertTrue(expect.errors().isEmpty(),
          ctx + ": accepted (" + delta + "), the model expects a refusal with one of "
              + expect.errors());
      assertEquals(version, delta.version(), ctx);
      assertEquals(image.version(), delta.prevVersion(), ctx);
      assertEquals(delta, CommandProcessor.process(image, command, version),
          ctx + ": not deterministic");

      if (delta.isEmpty()) {
        assertTrue(expect.ignored(), ctx + ": ignored (" + delta.cause()
            + ") but the model expects it to write " + expect.entry());
        assertTrue(delta.cause().startsWith("ignored"), ctx + ": cause " + delta.cause());
        assertEquals(before, image, ctx + ": an ignored command changed the image");
        ClusterImage replayed = image.apply(delta);
        assertEquals(image.ranges(), replayed.ranges(), ctx + ": an ignored delta changes ranges");
        assertEquals(image.servers(), replayed.servers(), ctx);
        outcomes.merge(kind + " ignored", 1, Integer::sum);
        if (ofAnAbortedAttempt) {
          outcomes.merge("report of an aborted attempt ignored", 1, Integer::sum);
        }
        continue;
      }
      assertFalse(ofAnAbortedAttempt,
          ctx + ": a report of an aborted attempt was applied to a later one: " + delta);
      assertFalse(expect.ignored(), ctx + ": the model ignores it, but it wrote " + delta);
      assertEquals(command.describe(), delta.cause(), ctx);
      if (expect.entry() != null) {
        assertEquals(List.of(), delta.removedRangeStarts(), ctx);
        assertEquals(List.of(expect.entry()), delta.upsertedRanges(), ctx);
        assertEquals(List.of(), delta.removedServers(), ctx);
        assertEquals(List.of(), delta.upsertedServers(), ctx);
      }

      ClusterImage next;
      try {
        next = image.apply(delta);
      } catch (IllegalStateException e) {
        fail(ctx + ": the delta of an accepted command does not apply: " + e.getMessage(), e);
        return;
      }
      assertEquals(before, image, ctx + ": apply changed the old image");
      assertEquals(version, next.version(), ctx);
      checkTransition(image, next, command, ctx);
      checkImage(next, ctx, peaks);
      outcomes.merge(kind + " ok" + detail(image, command), 1, Integer::sum);
      if (command instanceof AbortHandover) {
        outcomes.merge(kind + " ok", 1, Integer::sum);
      }
      if ((command instanceof AbortHandover || command instanceof FinishAbort)
          && rangeAt(next, named.get(0)).handover() == null) {
        abortedAttempts.add(named); // this attempt is over; the next one has another identity
      }
      image = next;
    }
  }

  /** The handover {@code (range start, handover epoch)} a report names; null for other commands. */
  private static List<Long> identity(Command command) {
    if (command instanceof HandoverReady c) {
      return List.of(c.rangeStart(), c.handoverEpoch());
    } else if (command instanceof HandoverDrained c) {
      return List.of(c.rangeStart(), c.handoverEpoch());
    } else if (command instanceof AbortHandover c) {
      return List.of(c.rangeStart(), c.handoverEpoch());
    } else if (command instanceof FinishAbort c) {
      return List.of(c.rangeStart(), c.handoverEpoch());
    }
    return null;
  }

  private static String detail(ClusterImage image, Command command) {
    if (command instanceof AbortHandover c) {
      return " from " + rangeAt(image, c.rangeStart()).handover().phase();
    }
    if (command instanceof ForceHandover c && rangeAt(image, c.rangeStart()).handover() != null) {
      return " over an open handover";
    }
    return "";
  }

  // ---------------------------------------------------------------- set-up

  /** Six ACTIVE servers and about eight ranges, mostly assigned. */
  private static ClusterImage setUp(Random rnd, long seed) {
    ClusterImage img = ClusterImage.EMPTY;
    for (String id : POOL) {
      img = must(img, new RegisterServer(id, id + ".example:7000", null), seed);
    }
    int splits = 5 + rnd.nextInt(5);
    for (int i = 0; i < splits; i++) {
      RangeEntry r = widest(img);
      img = must(img, new SplitRange(r.start(), inside(rnd, r)), seed);
    }
    for (RangeEntry r : img.ranges()) {
      if (rnd.nextInt(8) != 0) {
        img = must(img, new AssignRange(r.start(), POOL[rnd.nextInt(POOL.length)], false), seed);
      }
    }
    return img;
  }

  private static ClusterImage must(ClusterImage img, Command c, long seed) {
    try {
      return img.apply(CommandProcessor.process(img, c, img.version() + 1));
    } catch (PlbException e) {
      throw new AssertionError("seed " + seed + ": set-up command " + c + " refused: "
          + e.getMessage(), e);
    }
  }

  private static RangeEntry widest(ClusterImage img) {
    RangeEntry best = img.range(0);
    for (RangeEntry r : img.ranges()) {
      if (width(r).compareTo(width(best)) > 0) {
        best = r;
      }
    }
    return best;
  }

  private static BigInteger width(RangeEntry r) {
    BigInteger end = r.end() == Ring.RING_END ? TWO_64 : Ring.unsigned(r.end());
    return end.subtract(Ring.unsigned(r.start()));
  }

  /** A point strictly inside {@code r}, which must be at least two wide. */
  private static long inside(Random rnd, RangeEntry r) {
    BigInteger w = width(r);
    BigInteger off = new BigInteger(64, rnd).mod(w.subtract(BigInteger.ONE)).add(BigInteger.ONE);
    return Ring.unsigned(r.start()).add(off).longValue();
  }

  // ---------------------------------------------------------------- generation

  private static Command randomCommand(Random rnd, ClusterImage img, List<Command> history) {
    int p = rnd.nextInt(100);
    Command c;
    if (p < 18) {
      c = randomStart(rnd, img);
    } else if (p < 50) {
      c = randomReport(rnd, img);
    } else if (p < 56 && !history.isEmpty()) {
      return history.get(rnd.nextInt(history.size())); // a duplicate, possibly very late
    } else if (p < 62) {
      c = randomForce(rnd, img);
    } else if (p < 71) {
      c = new UpdateServer(anyPoolId(rnd), null, null, randomState(rnd));
    } else if (p < 78 && img.rangeCount() < MAX_RANGES) {
      RangeEntry r = pickRange(rnd, img, 3);
      if (width(r).compareTo(BigInteger.TWO) < 0) {
        r = widest(img);
      }
      c = new SplitRange(r.start(), inside(rnd, r));
    } else if (p < 86 && img.rangeCount() > 1) {
      int i = img.indexOfStart(pickRange(rnd, img, 3).start());
      if (i == img.rangeCount() - 1) {
        i--;
      }
      c = new MergeRanges(img.range(i).start(), img.range(i + 1).start());
    } else if (p < 91) {
      c = new AssignRange(pickRange(rnd, img, 4).start(), anyPoolId(rnd), rnd.nextBoolean());
    } else if (p < 95) {
      List<RangeEntry> open = openHandovers(img);
      String id = !open.isEmpty() && rnd.nextInt(3) != 0
          ? open.get(rnd.nextInt(open.size())).handover().target() : anyPoolId(rnd);
      c = new RemoveServer(id);
    } else if (p < 97) {
      String id = anyPoolId(rnd);
      c = new RegisterServer(id, id + ".example:7000", null);
    } else {
      c = new SetPinned(pickRange(rnd, img, 3).start(), rnd.nextBoolean());
    }
    if (c instanceof StartHandover || c instanceof ForceHandover || isReport(c)) {
      if (history.size() < 64) {
        history.add(c);
      } else {
        history.set(rnd.nextInt(history.size()), c);
      }
    }
    return c;
  }

  private static boolean isReport(Command c) {
    return c instanceof HandoverReady || c instanceof HandoverDrained
        || c instanceof AbortHandover || c instanceof FinishAbort;
  }

  private static ServerState randomState(Random rnd) {
    int q = rnd.nextInt(10);
    return q < 5 ? ServerState.ACTIVE : q < 7 ? ServerState.DRAINING : ServerState.DOWN;
  }

  private static String anyPoolId(Random rnd) {
    return POOL[rnd.nextInt(POOL.length)];
  }

  private static String anyTarget(Random rnd, ClusterImage img) {
    int q = rnd.nextInt(40);
    if (q == 0) {
      return UNKNOWN;
    } else if (q == 1) {
      return MALFORMED;
    }
    if (rnd.nextInt(4) != 0) { // mostly an ACTIVE server, so moves can go ahead
      List<String> active = new ArrayList<>();
      for (QueueServerInfo s : img.servers().values()) {
        if (s.state() == ServerState.ACTIVE) {
          active.add(s.id());
        }
      }
      if (!active.isEmpty()) {
        return active.get(rnd.nextInt(active.size()));
      }
    }
    return anyPoolId(rnd);
  }

  /** A range; with probability 1/{@code openBias} one under handover, if there is one. */
  private static RangeEntry pickRange(Random rnd, ClusterImage img, int openBias) {
    List<RangeEntry> open = openHandovers(img);
    if (!open.isEmpty() && rnd.nextInt(openBias) == 0) {
      return open.get(rnd.nextInt(open.size()));
    }
    return img.range(rnd.nextInt(img.rangeCount()));
  }

  private static long maybeBogusStart(Random rnd, RangeEntry r) {
    return rnd.nextInt(40) == 0 ? r.start() + 1 + rnd.nextInt(3) : r.start();
  }

  private static StartHandover randomStart(Random rnd, ClusterImage img) {
    RangeEntry r = pickRange(rnd, img, 6);
    long end = r.end();
    int q = rnd.nextInt(40);
    if (q == 0) {
      end = r.end() + 1;
    } else if (q == 1) {
      end = img.range(rnd.nextInt(img.rangeCount())).end();
    }
    long epoch = r.epoch();
    q = rnd.nextInt(20);
    if (q == 0) {
      epoch++;
    } else if (q == 1) {
      epoch--;
    }
    int per = PER;
    int total = TOTAL;
    q = rnd.nextInt(50);
    if (q == 0) {
      per = rnd.nextInt(2) - 1; // 0 or -1
    } else if (q == 1) {
      total = rnd.nextInt(2) - 1;
    }
    return new StartHandover(maybeBogusStart(rnd, r), end, epoch, anyTarget(rnd, img), per,
        total);
  }

  private static Command randomReport(Random rnd, ClusterImage img) {
    RangeEntry r = pickRange(rnd, img, 4);
    long start = maybeBogusStart(rnd, r);
    long epoch;
    int q = rnd.nextInt(100);
    if (q < 70) {
      epoch = r.epoch() + 1;
    } else if (q < 82) {
      epoch = Math.max(1, r.epoch() - rnd.nextInt(3));
    } else if (q < 90) {
      epoch = r.epoch() + 2 + rnd.nextInt(3);
    } else if (q < 94) {
      epoch = -rnd.nextInt(2);
    } else {
      epoch = 1 + (long) rnd.nextInt((int) Math.min(r.epoch() + 1, 1000));
    }
    HandoverPhase phase = r.handover() == null ? null : r.handover().phase();
    int[] weights; // ready, drained, abort, finish
    if (phase == HandoverPhase.PREPARE) {
      weights = new int[] {50, 15, 25, 10};
    } else if (phase == HandoverPhase.SWITCH) {
      weights = new int[] {15, 45, 25, 15};
    } else if (phase == HandoverPhase.ABORT_SWITCH) {
      weights = new int[] {15, 20, 15, 50};
    } else {
      weights = new int[] {25, 25, 25, 25};
    }
    int w = rnd.nextInt(100);
    if (w < weights[0]) {
      return new HandoverReady(start, epoch);
    } else if (w < weights[0] + weights[1]) {
      return new HandoverDrained(start, epoch);
    } else if (w < weights[0] + weights[1] + weights[2]) {
      return new AbortHandover(start, epoch, "timeout");
    }
    return new FinishAbort(start, epoch);
  }

  private static ForceHandover randomForce(Random rnd, ClusterImage img) {
    List<RangeEntry> offDown = new ArrayList<>();
    for (RangeEntry r : img.ranges()) {
      QueueServerInfo o = r.isAssigned() ? img.server(r.owner()) : null;
      if (o != null && o.state() == ServerState.DOWN) {
        offDown.add(r);
      }
    }
    RangeEntry r = !offDown.isEmpty() && rnd.nextInt(10) < 7
        ? offDown.get(rnd.nextInt(offDown.size())) : pickRange(rnd, img, 3);
    long epoch = r.epoch() + (rnd.nextInt(8) == 0 ? (rnd.nextBoolean() ? 1 : -1) : 0);
    return new ForceHandover(maybeBogusStart(rnd, r), epoch, anyTarget(rnd, img));
  }

  // ---------------------------------------------------------------- the model

  private static List<RangeEntry> openHandovers(ClusterImage img) {
    List<RangeEntry> out = new ArrayList<>();
    for (RangeEntry r : img.ranges()) {
      if (r.handover() != null) {
        out.add(r);
      }
    }
    return out;
  }

  /** The range starting exactly at {@code start}, found by a linear scan; null if none. */
  private static RangeEntry rangeAt(ClusterImage img, long start) {
    for (RangeEntry r : img.ranges()) {
      if (r.start() == start) {
        return r;
      }
    }
    return null;
  }

  private static boolean validId(String id) {
    return id.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  }

  /** How many open handovers {@code id} takes part in, as source or target. */
  private static int involvement(ClusterImage img, String id) {
    int n = 0;
    for (RangeEntry r : openHandovers(img)) {
      if (r.owner().equals(id) || r.handover().target().equals(id)) {
        n++;
      }
    }
    return n;
  }

  /** Adds the refusals a target server may cause (a move or a forced move to it). */
  private static void targetErrors(ClusterImage img, String target, Set<ErrorCode> errs) {
    if (!validId(target)) {
      errs.add(ErrorCode.INVALID_ARGUMENT);
    } else if (img.server(target) == null) {
      errs.add(ErrorCode.NOT_FOUND);
    } else if (img.server(target).state() != ServerState.ACTIVE) {
      errs.add(ErrorCode.FAILED_PRECONDITION);
    }
  }

  private static RangeEntry withHandover(RangeEntry r, Handover h) {
    return new RangeEntry(r.start(), r.end(), r.owner(), r.epoch(), h, r.pinned());
  }

  /**
   * The range once its aborted handover is cleared: same owner, no slot, the next epoch — the
   * aborted attempt's handover epoch, so the next attempt is named by a new one.
   */
  private static RangeEntry cleared(RangeEntry r) {
    return new RangeEntry(r.start(), r.end(), r.owner(), r.epoch() + 1, null, r.pinned());
  }

  private static Expect expect(ClusterImage img, Command command) {
    Set<ErrorCode> errs = EnumSet.noneOf(ErrorCode.class);
    if (command instanceof StartHandover c) {
      RangeEntry r = rangeAt(img, c.rangeStart());
      if (r == null) {
        return Expect.refused(EnumSet.of(ErrorCode.NOT_FOUND));
      }
      if (r.end() != c.rangeEnd() || r.epoch() != c.expectedEpoch() || r.owner().isEmpty()
          || r.handover() != null || r.owner().equals(c.target())) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
      targetErrors(img, c.target(), errs);
      if (c.maxPerServer() < 1 || c.maxTotal() < 1) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      } else if (openHandovers(img).size() >= c.maxTotal()
          || (!r.owner().isEmpty() && involvement(img, r.owner()) >= c.maxPerServer())
          || involvement(img, c.target()) >= c.maxPerServer()) {
        errs.add(ErrorCode.RESOURCE_EXHAUSTED);
      }
      return errs.isEmpty()
          ? Expect.accepted(withHandover(r, new Handover(c.target(), HandoverPhase.PREPARE)))
          : Expect.refused(errs);
    }
    if (command instanceof HandoverReady c) {
      return report(img, c.rangeStart(), c.handoverEpoch(), HandoverPhase.PREPARE,
          r -> withHandover(r, new Handover(r.handover().target(), HandoverPhase.SWITCH)));
    }
    if (command instanceof HandoverDrained c) {
      return report(img, c.rangeStart(), c.handoverEpoch(), HandoverPhase.SWITCH,
          r -> new RangeEntry(r.start(), r.end(), r.handover().target(), r.epoch() + 1, null,
              r.pinned()));
    }
    if (command instanceof AbortHandover c) {
      RangeEntry r = rangeAt(img, c.rangeStart());
      HandoverPhase from = r == null || r.handover() == null ? null : r.handover().phase();
      if (from == HandoverPhase.SWITCH) {
        return report(img, c.rangeStart(), c.handoverEpoch(), HandoverPhase.SWITCH,
            x -> withHandover(x, new Handover(x.handover().target(),
                HandoverPhase.ABORT_SWITCH)));
      }
      return report(img, c.rangeStart(), c.handoverEpoch(), HandoverPhase.PREPARE,
          HandoverPropertyTest::cleared);
    }
    if (command instanceof FinishAbort c) {
      return report(img, c.rangeStart(), c.handoverEpoch(), HandoverPhase.ABORT_SWITCH,
          HandoverPropertyTest::cleared);
    }
    if (command instanceof ForceHandover c) {
      RangeEntry r = rangeAt(img, c.rangeStart());
      if (r == null) {
        return Expect.refused(EnumSet.of(ErrorCode.NOT_FOUND));
      }
      QueueServerInfo owner = r.owner().isEmpty() ? null : img.server(r.owner());
      if (r.epoch() != c.expectedEpoch() || owner == null
          || owner.state() != ServerState.DOWN) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
      targetErrors(img, c.target(), errs);
      return errs.isEmpty()
          ? Expect.accepted(
              new RangeEntry(r.start(), r.end(), c.target(), r.epoch() + 1, null, r.pinned()))
          : Expect.refused(errs);
    }
    // the other commands: only whether they are refused; their effect is checked generically
    if (command instanceof SplitRange c) {
      if (rangeAt(img, c.rangeStart()).handover() != null) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof MergeRanges c) {
      RangeEntry l = rangeAt(img, c.leftStart());
      RangeEntry r = rangeAt(img, c.rightStart());
      if (!l.owner().equals(r.owner()) || l.handover() != null || r.handover() != null) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof AssignRange c) {
      RangeEntry r = rangeAt(img, c.rangeStart());
      QueueServerInfo s = img.server(c.owner());
      if (s == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (s.state() != ServerState.ACTIVE) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
      if (r.handover() != null || r.owner().equals(c.owner())
          || (!r.owner().isEmpty() && !c.force())) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof UpdateServer c) {
      QueueServerInfo s = img.server(c.id());
      if (s == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (s.state() == c.state()) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      }
    } else if (command instanceof RemoveServer c) {
      if (img.server(c.id()) == null) {
        errs.add(ErrorCode.NOT_FOUND);
      }
      for (RangeEntry r : img.ranges()) {
        if (r.owner().equals(c.id())
            || (r.handover() != null && r.handover().target().equals(c.id()))) {
          errs.add(ErrorCode.FAILED_PRECONDITION);
        }
      }
    } else if (command instanceof RegisterServer c) {
      if (img.server(c.id()) != null) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof SetPinned c) {
      if (rangeAt(img, c.rangeStart()).pinned() == c.pinned()) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else {
      throw new AssertionError("unexpected command " + command);
    }
    return errs.isEmpty() ? Expect.accepted(null) : Expect.refused(errs);
  }

  /**
   * A report naming the handover {@code (start, handoverEpoch)}: refused when the range does not
   * exist, when the epoch is beyond epoch + 1 or below 1; applied when that very handover is open
   * in {@code phase}; otherwise ignored.
   */
  private static Expect report(ClusterImage img, long start, long handoverEpoch,
      HandoverPhase phase, UnaryOperator<RangeEntry> step) {
    RangeEntry r = rangeAt(img, start);
    if (r == null) {
      return Expect.refused(EnumSet.of(ErrorCode.NOT_FOUND));
    }
    if (handoverEpoch > r.epoch() + 1) {
      return Expect.refused(EnumSet.of(ErrorCode.FAILED_PRECONDITION));
    }
    if (handoverEpoch < 1) {
      return Expect.refused(EnumSet.of(ErrorCode.INVALID_ARGUMENT));
    }
    if (r.handover() != null && handoverEpoch == r.epoch() + 1 && r.handover().phase() == phase) {
      return Expect.accepted(step.apply(r));
    }
    return Expect.ignore();
  }

  // ---------------------------------------------------------------- checks

  /** Invariants of one image. */
  private static void checkImage(ClusterImage img, String ctx, int[] peaks) {
    assertDoesNotThrow(img::checkInvariants, ctx);
    assertCoversRing(img, ctx);
    List<RangeEntry> open = openHandovers(img);
    assertTrue(open.size() <= TOTAL,
        ctx + ": " + open.size() + " handovers open, the limit is " + TOTAL + ": " + open);
    peaks[0] = Math.max(peaks[0], open.size());
    for (String id : img.servers().keySet()) {
      int n = involvement(img, id);
      assertTrue(n <= PER, ctx + ": server " + id + " takes part in " + n
          + " handovers, the limit is " + PER + ": " + open);
      peaks[1] = Math.max(peaks[1], n);
    }
    for (RangeEntry r : open) {
      assertTrue(r.isAssigned(), ctx + ": unassigned range under handover " + r);
      assertFalse(r.owner().equals(r.handover().target()),
          ctx + ": range moving to its own owner " + r);
      assertTrue(r.handover().phase() != HandoverPhase.COMPLETE,
          ctx + ": COMPLETE is never committed as a phase " + r);
    }
  }

  /**
   * What may change between two consecutive images. Epochs, owners and handover slots are
   * piecewise constant over the ring, so comparing them at every range start of both images
   * compares them at every key.
   */
  private static void checkTransition(ClusterImage prev, ClusterImage next, Command c,
      String ctx) {
    TreeSet<Long> points = new TreeSet<>(Long::compareUnsigned);
    for (RangeEntry r : prev.ranges()) {
      points.add(r.start());
    }
    for (RangeEntry r : next.ranges()) {
      points.add(r.start());
    }
    TreeSet<Long> ownerChanged = new TreeSet<>(Long::compareUnsigned);
    for (long p : points) {
      RangeEntry a = prev.rangeFor(p);
      RangeEntry b = next.rangeFor(p);
      String at = ctx + " at " + Ring.hex(p) + ": " + a + " -> " + b;
      assertTrue(b.epoch() >= a.epoch(), at + ": a key's epoch went down");
      boolean sameBounds = a.start() == b.start() && a.end() == b.end();
      if (sameBounds) {
        assertTrue(b.epoch() - a.epoch() <= 1, at + ": the epoch jumped");
      }
      if (a.owner().equals(b.owner())) {
        if (b.epoch() != a.epoch()) {
          checkEpochBumpWithoutOwnerChange(prev, a, b, c, sameBounds, at);
        }
        continue;
      }
      ownerChanged.add(b.start());
      assertTrue(sameBounds, at + ": owner changed together with the bounds");
      assertEquals(a.epoch() + 1, b.epoch(), at + ": an ownership change must bump the epoch by 1");
      if (c instanceof HandoverDrained d) {
        assertEquals(d.rangeStart(), b.start(), at);
        assertNotNull(a.handover(), at + ": drained without a handover");
        assertEquals(HandoverPhase.SWITCH, a.handover().phase(), at);
        assertEquals(a.handover().target(), b.owner(), at + ": not moved to the target");
        assertEquals(d.handoverEpoch(), b.epoch(), at);
      } else if (c instanceof ForceHandover f) {
        assertEquals(f.rangeStart(), b.start(), at);
        assertEquals(f.target(), b.owner(), at);
        assertEquals(ServerState.DOWN, prev.server(a.owner()).state(),
            at + ": forced off an owner that is not DOWN");
        assertEquals(ServerState.ACTIVE, prev.server(b.owner()).state(), at);
      } else if (c instanceof AssignRange s) {
        assertEquals(s.rangeStart(), b.start(), at);
        assertEquals(s.owner(), b.owner(), at);
        assertTrue(a.handover() == null, at + ": assigned during a handover");
      } else {
        fail(at + ": the owner changed by a " + c.getClass().getSimpleName());
      }
      assertTrue(b.handover() == null, at + ": a new owner with a handover open");
    }
    assertTrue(ownerChanged.size() <= 1, ctx + ": owners changed in " + ownerChanged.size()
        + " ranges");

    // handover slots: one per range; created only by StartHandover, target fixed while open
    for (RangeEntry b : next.ranges()) {
      RangeEntry a = rangeAt(prev, b.start());
      boolean sameBounds = a != null && a.end() == b.end();
      if (b.handover() == null) {
        continue;
      }
      if (a == null || a.handover() == null || !sameBounds) {
        assertTrue(c instanceof StartHandover s && s.rangeStart() == b.start(),
            ctx + ": handover " + b + " appeared without a StartHandover (was " + a + ")");
        assertEquals(HandoverPhase.PREPARE, b.handover().phase(), ctx);
      } else {
        assertEquals(a.handover().target(), b.handover().target(),
            ctx + ": the target of an open handover changed: " + a + " -> " + b);
        assertEquals(a.owner(), b.owner(), ctx);
        assertEquals(a.epoch(), b.epoch(), ctx);
      }
    }
    // a handover ends only by abort (from PREPARE), finish of an abort, drain or force
    for (RangeEntry a : prev.ranges()) {
      if (a.handover() == null) {
        continue;
      }
      RangeEntry b = rangeAt(next, a.start());
      if (b != null && b.end() == a.end() && b.handover() != null) {
        continue;
      }
      String at = ctx + ": handover " + a + " ended as " + b;
      assertNotNull(b, at);
      assertEquals(a.end(), b.end(), at);
      HandoverPhase phase = a.handover().phase();
      boolean legal =
          (c instanceof AbortHandover x1 && x1.rangeStart() == a.start()
              && phase == HandoverPhase.PREPARE)
          || (c instanceof FinishAbort x2 && x2.rangeStart() == a.start()
              && phase == HandoverPhase.ABORT_SWITCH)
          || (c instanceof HandoverDrained x3 && x3.rangeStart() == a.start()
              && phase == HandoverPhase.SWITCH)
          || (c instanceof ForceHandover x4 && x4.rangeStart() == a.start());
      assertTrue(legal, at);
      if (!(c instanceof HandoverDrained) && !(c instanceof ForceHandover)) {
        assertEquals(cleared(a), b,
            at + ": clearing an abort must empty the slot and bump the epoch by one, nothing else");
      }
    }
  }

  /**
   * A key kept its owner but its epoch grew: either the aborted handover of its range was cleared
   * (the range's epoch bumped by exactly one, to the aborted attempt's handover epoch), or its
   * range was merged with one at a higher epoch (the merged range takes the larger epoch).
   */
  private static void checkEpochBumpWithoutOwnerChange(ClusterImage prev, RangeEntry a,
      RangeEntry b, Command c, boolean sameBounds, String at) {
    if (sameBounds) {
      assertNotNull(a.handover(), at + ": the epoch changed with no owner change and no handover");
      assertTrue(b.handover() == null, at + ": the epoch changed while the handover is open");
      HandoverPhase phase = a.handover().phase();
      boolean clearsAnAbort =
          (c instanceof AbortHandover x1 && x1.rangeStart() == a.start()
              && x1.handoverEpoch() == b.epoch() && phase == HandoverPhase.PREPARE)
          || (c instanceof FinishAbort x2 && x2.rangeStart() == a.start()
              && x2.handoverEpoch() == b.epoch() && phase == HandoverPhase.ABORT_SWITCH);
      assertTrue(clearsAnAbort, at + ": the epoch grew without an ownership change, by a "
          + c.getClass().getSimpleName() + " that clears no aborted handover of this range");
      assertEquals(a.epoch() + 1, b.epoch(), at + ": clearing an abort bumps the epoch by 1");
      return;
    }
    assertTrue(c instanceof MergeRanges, at + ": the epoch changed with the bounds by a "
        + c.getClass().getSimpleName());
    MergeRanges m = (MergeRanges) c;
    RangeEntry left = rangeAt(prev, m.leftStart());
    RangeEntry right = rangeAt(prev, m.rightStart());
    assertEquals(Math.max(left.epoch(), right.epoch()), b.epoch(),
        at + ": a merged range takes the larger epoch of its parts");
  }
}
