package io.plb.core.command;

import static io.plb.core.map.MapFixtures.assertCoversRing;
import static io.plb.core.map.MapFixtures.copyOf;
import static io.plb.core.map.MapFixtures.range;
import static io.plb.core.map.MapFixtures.server;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command.AbortHandover;
import io.plb.core.command.Command.AssignRange;
import io.plb.core.command.Command.FinishAbort;
import io.plb.core.command.Command.ForceHandover;
import io.plb.core.command.Command.HandoverDrained;
import io.plb.core.command.Command.HandoverReady;
import io.plb.core.command.Command.MergeRanges;
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
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The committed side of the hold handover (DESIGN §5, {@link Handovers}): every phase change, every
 * refusal with its code and message, and every late or duplicated report that must be ignored.
 */
class HandoverRulesTest {
  private static final long MID = Long.MIN_VALUE; // 2^63
  private static final long Q3 = 0xC000_0000_0000_0000L; // 3 * 2^62
  private static final long Q3X = Q3 + 1000;
  private static final long V = 20L;
  private static final int PER = 2;
  private static final int TOTAL = 4;

  /**
   * Version 20. Servers a, b, c, e ACTIVE, d DRAINING, x DOWN. Ranges: R0 [0, 1000) a epoch 1 ·
   * R1 [1000, 2^63) a epoch 3, pinned · R2 [2^63, 3*2^62) b epoch 2 · R3 [3*2^62, +1000) x epoch 5
   * · R4 [3*2^62+1000, 2^64) unassigned.
   */
  private static ClusterImage base() {
    return ClusterImage.of(
        V,
        List.of(range(0L, 1000L, "a", 1), new RangeEntry(1000L, MID, "a", 3, null, true),
            range(MID, Q3, "b", 2), range(Q3, Q3X, "x", 5), range(Q3X, Ring.RING_END, "")),
        List.of(server("a"), server("b"), server("c"), server("e"),
            server("d", ServerState.DRAINING), server("x", ServerState.DOWN)));
  }

  // ---------------------------------------------------------------- helpers

  private static RangeEntry at(ClusterImage img, long start) {
    int i = img.indexOfStart(start);
    assertTrue(i >= 0, "no range at " + Ring.hex(start));
    return img.range(i);
  }

  /** A well-formed start of the range at {@code start} as it is now, with the default limits. */
  private static StartHandover start(ClusterImage img, long start, String target) {
    return start(img, start, target, PER, TOTAL);
  }

  private static StartHandover start(
      ClusterImage img, long start, String target, int perServer, int total) {
    RangeEntry r = at(img, start);
    return new StartHandover(r.start(), r.end(), r.epoch(), target, perServer, total);
  }

  /** The epoch that identifies the handover open (or about to open) on the range. */
  private static long hEpoch(ClusterImage img, long start) {
    return at(img, start).epoch() + 1;
  }

  private static PlbException reject(
      ClusterImage image, Command command, ErrorCode code, String... fragments) {
    ClusterImage before = copyOf(image);
    PlbException e = assertThrows(PlbException.class,
        () -> CommandProcessor.process(image, command, image.version() + 1),
        command.describe());
    assertEquals(code, e.code(), command.describe() + ": " + e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f),
          command.describe() + ": message '" + e.getMessage() + "' does not mention '" + f + "'");
    }
    PlbException again = assertThrows(PlbException.class,
        () -> CommandProcessor.validate(image, command));
    assertEquals(code, again.code());
    assertEquals(e.getMessage(), again.getMessage());
    assertEquals(before, image, "a rejected command changed the image");
    return e;
  }

  /** Processes and applies an accepted command of any kind. */
  private static ClusterImage accept(ClusterImage image, Command command) {
    long version = image.version() + 1;
    MapDelta delta = CommandProcessor.process(image, command, version);
    assertEquals(delta, CommandProcessor.process(image, command, version), "not deterministic");
    assertFalse(delta.isEmpty(), command.describe() + ": accepted command changed nothing");
    assertEquals(command.describe(), delta.cause());
    assertEquals(version, delta.version());
    assertEquals(image.version(), delta.prevVersion());
    ClusterImage next = image.apply(delta);
    assertCoversRing(next, command.describe());
    return next;
  }

  /**
   * Processes and applies a handover command that must rewrite exactly the entry at
   * {@code start} into {@code expected}, leaving every other range and every server alone.
   */
  private static ClusterImage step(ClusterImage image, Command command, RangeEntry expected) {
    MapDelta delta = CommandProcessor.process(image, command, image.version() + 1);
    assertEquals(List.of(), delta.removedRangeStarts(), command.describe());
    assertEquals(List.of(expected), delta.upsertedRanges(), command.describe());
    assertEquals(List.of(), delta.removedServers(), command.describe());
    assertEquals(List.of(), delta.upsertedServers(), command.describe());
    ClusterImage next = accept(image, command);
    assertEquals(image.rangeCount(), next.rangeCount());
    for (int i = 0; i < next.rangeCount(); i++) {
      RangeEntry r = next.range(i);
      assertEquals(r.start() == expected.start() ? expected : image.range(i), r,
          command.describe());
    }
    assertEquals(image.servers(), next.servers());
    return next;
  }

  /** A late or duplicated report: recognised, ignored, nothing changes. */
  private static MapDelta ignored(ClusterImage image, Command command, String... fragments) {
    ClusterImage before = copyOf(image);
    long version = image.version() + 1;
    MapDelta d = CommandProcessor.process(image, command, version);
    assertTrue(d.isEmpty(), command.describe() + ": expected to be ignored, got " + d);
    assertTrue(d.cause().startsWith("ignored"), d.cause());
    assertTrue(d.cause().startsWith("ignored " + command.describe() + ": "), d.cause());
    for (String f : fragments) {
      assertTrue(d.cause().contains(f),
          command.describe() + ": cause '" + d.cause() + "' does not mention '" + f + "'");
    }
    assertEquals(version, d.version());
    assertEquals(image.version(), d.prevVersion());
    assertEquals(d, CommandProcessor.process(image, command, version), "not deterministic");
    assertEquals(before, image, "an ignored report changed the image");
    // even a replica that applied it would see the same map
    ClusterImage replayed = image.apply(d);
    assertEquals(image.ranges(), replayed.ranges());
    assertEquals(image.servers(), replayed.servers());
    return d;
  }

  private static RangeEntry with(RangeEntry r, String target, HandoverPhase phase) {
    return new RangeEntry(r.start(), r.end(), r.owner(), r.epoch(),
        target == null ? null : new Handover(target, phase), r.pinned());
  }

  /** base() with R2 (b, epoch 2) moving to c, in {@code phase}. */
  private static ClusterImage r2MovingToC(HandoverPhase phase) {
    ClusterImage img = accept(base(), start(base(), MID, "c"));
    if (phase == HandoverPhase.PREPARE) {
      return img;
    }
    img = accept(img, new HandoverReady(MID, 3));
    if (phase == HandoverPhase.SWITCH) {
      return img;
    }
    if (phase == HandoverPhase.ABORT_SWITCH) {
      return accept(img, new AbortHandover(MID, 3, "drain timeout"));
    }
    return accept(img, new HandoverDrained(MID, 3)); // "COMPLETE": c owns R2 at epoch 3
  }

  // ================================================================ StartHandover

  @Test
  void startOpensPrepareAndChangesNothingElse() {
    ClusterImage img = base();
    RangeEntry r2 = at(img, MID);
    ClusterImage next = step(img, start(img, MID, "c"), with(r2, "c", HandoverPhase.PREPARE));
    RangeEntry moving = at(next, MID);
    assertEquals("b", moving.owner());
    assertEquals(2, moving.epoch());
    assertEquals(new Handover("c", HandoverPhase.PREPARE), moving.handover());
    assertTrue(next.rangesOf("c").contains(moving), "the target receives the range");
    assertTrue(next.rangesOf("b").contains(moving), "the source still owns it");
  }

  @Test
  void startKeepsThePinAndTheEpoch() {
    ClusterImage img = base();
    RangeEntry r1 = at(img, 1000L);
    step(img, start(img, 1000L, "e"), with(r1, "e", HandoverPhase.PREPARE));
  }

  @Test
  void startOfARangeThatDoesNotStartThere() {
    ClusterImage img = base();
    reject(img, new StartHandover(500L, 1000L, 1, "c", PER, TOTAL), ErrorCode.NOT_FOUND,
        "no range starts at " + Ring.hex(500L), at(img, 0L).rangeText());
    reject(img, new StartHandover(MID + 1, Q3, 2, "c", PER, TOTAL), ErrorCode.NOT_FOUND,
        Ring.hex(MID + 1), at(img, MID).rangeText());
    reject(img, new StartHandover(-1L, Ring.RING_END, 0, "c", PER, TOTAL), ErrorCode.NOT_FOUND,
        Ring.hex(-1L));
  }

  @Test
  void startWhenTheRangeEndIsNotThePlannedOne() {
    ClusterImage img = base();
    reject(img, new StartHandover(0L, 2000L, 1, "c", PER, TOTAL), ErrorCode.FAILED_PRECONDITION,
        "is now " + at(img, 0L).rangeText(), "not the range the move was planned for");
    // planned before a split: the range at MID is now shorter
    StartHandover planned = start(img, MID, "c");
    ClusterImage split = accept(img, new SplitRange(MID, MID + 100));
    reject(split, planned, ErrorCode.FAILED_PRECONDITION,
        "is now " + Ring.formatRange(MID, MID + 100), "not the range the move was planned for");
    // planned before a merge: the range at 0 is now longer
    StartHandover planned0 = start(img, 0L, "c");
    ClusterImage merged = accept(img, new MergeRanges(0L, 1000L));
    reject(merged, planned0, ErrorCode.FAILED_PRECONDITION, "not the range the move was planned");
  }

  @Test
  void startAtAnEpochTheRangeIsNotAt() {
    ClusterImage img = base();
    reject(img, new StartHandover(1000L, MID, 2, "c", PER, TOTAL), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 3, not 2", "changed hands");
    reject(img, new StartHandover(1000L, MID, 4, "c", PER, TOTAL), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 3, not 4");
    // planned before a completed move
    StartHandover planned = start(img, MID, "e");
    reject(r2MovingToC(HandoverPhase.COMPLETE), planned, ErrorCode.FAILED_PRECONDITION,
        "is at epoch 3, not 2");
  }

  @Test
  void startOfAnUnassignedRange() {
    ClusterImage img = base();
    reject(img, start(img, Q3X, "c"), ErrorCode.FAILED_PRECONDITION, "has no owner",
        "assign it instead");
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class, names = {"PREPARE", "SWITCH", "ABORT_SWITCH"})
  void startWhileAHandoverOfTheRangeIsOpen(HandoverPhase phase) {
    ClusterImage img = r2MovingToC(phase);
    reject(img, start(img, MID, "e"), ErrorCode.FAILED_PRECONDITION, "cannot move range",
        "during its handover to c", phase.name());
    reject(img, start(img, MID, "c"), ErrorCode.FAILED_PRECONDITION, "during its handover");
  }

  @Test
  void startToAnUnknownOrMalformedTarget() {
    ClusterImage img = base();
    reject(img, start(img, MID, "zz"), ErrorCode.NOT_FOUND, "no queue server with id zz");
    reject(img, start(img, MID, ""), ErrorCode.INVALID_ARGUMENT, "server id is missing");
    reject(img, start(img, MID, "no/such"), ErrorCode.INVALID_ARGUMENT, "server id 'no/such'");
  }

  @Test
  void startToADrainingOrDownTarget() {
    ClusterImage img = base();
    reject(img, start(img, MID, "d"), ErrorCode.FAILED_PRECONDITION, "server d is DRAINING",
        "only ACTIVE servers take ranges");
    reject(img, start(img, MID, "x"), ErrorCode.FAILED_PRECONDITION, "server x is DOWN",
        "only ACTIVE servers take ranges");
  }

  @Test
  void startToTheCurrentOwner() {
    ClusterImage img = base();
    reject(img, start(img, MID, "b"), ErrorCode.FAILED_PRECONDITION, "already owned by b");
  }

  @Test
  void startWithLimitsBelowOne() {
    ClusterImage img = base();
    for (int[] l : new int[][] {{0, 4}, {2, 0}, {0, 0}, {-1, 4}, {2, -1},
        {Integer.MIN_VALUE, Integer.MIN_VALUE}}) {
      reject(img, start(img, MID, "c", l[0], l[1]), ErrorCode.INVALID_ARGUMENT,
          "handover limits must be at least 1");
    }
    // 1 is enough
    accept(img, start(img, MID, "c", 1, 1));
  }

  @Test
  void theClusterBudgetCountsEveryOpenHandover() {
    ClusterImage img = base();
    img = accept(img, start(img, 0L, "c")); // a -> c, PREPARE
    img = accept(img, start(img, MID, "e")); // b -> e
    img = accept(img, new HandoverReady(MID, 3));
    img = accept(img, new AbortHandover(MID, 3, "t")); // ABORT_SWITCH still counts
    assertEquals(HandoverPhase.ABORT_SWITCH, at(img, MID).handover().phase());
    // R1: a -> b; a takes part in one, b in one: only the cluster budget is in the way
    reject(img, start(img, 1000L, "b", 5, 2), ErrorCode.RESOURCE_EXHAUSTED,
        "2 handovers are open; the cluster allows 2 at once (handover.maxTotal)");
    reject(img, start(img, 1000L, "b", 5, 1), ErrorCode.RESOURCE_EXHAUSTED,
        "2 handovers are open; the cluster allows 1 at once");
    accept(img, start(img, 1000L, "b", 5, 3));
    // a finished handover frees its slot
    ClusterImage done = accept(img, new FinishAbort(MID, 3));
    accept(done, start(done, 1000L, "b", 5, 2));
    ClusterImage full = accept(img, start(img, 1000L, "b", 5, 3));
    reject(full, start(full, Q3, "e", 5, 3), ErrorCode.RESOURCE_EXHAUSTED, "3 handovers");
    full = accept(full, new HandoverReady(0L, 2));
    full = accept(full, new HandoverDrained(0L, 2));
    accept(full, start(full, Q3, "e", 5, 3));
  }

  @Test
  void thePerServerBudgetAtTheSource() {
    ClusterImage img = base();
    img = accept(img, start(img, 0L, "c")); // a -> c
    reject(img, start(img, 1000L, "e", 1, TOTAL), ErrorCode.RESOURCE_EXHAUSTED,
        "server a already takes part in 1 handovers (handover.maxPerServer)");
    ClusterImage two = accept(img, start(img, 1000L, "e", 2, TOTAL));
    // a is now in two; a third from a is refused at 2 but not at 3
    ClusterImage three = accept(two, new SplitRange(Q3X, Q3X + 10));
    three = accept(three, new AssignRange(Q3X, "a", false));
    reject(three, start(three, Q3X, "b", 2, TOTAL), ErrorCode.RESOURCE_EXHAUSTED,
        "server a already takes part in 2 handovers");
    accept(three, start(three, Q3X, "b", 3, TOTAL));
  }

  @Test
  void thePerServerBudgetAtTheTarget() {
    ClusterImage img = base();
    img = accept(img, start(img, 0L, "c")); // a -> c
    reject(img, start(img, MID, "c", 1, TOTAL), ErrorCode.RESOURCE_EXHAUSTED,
        "server c already takes part in 1 handovers (handover.maxPerServer)");
    accept(img, start(img, MID, "c", 2, TOTAL));
  }

  @Test
  void aServersRolesAsSourceAndTargetAddUp() {
    ClusterImage img = base();
    img = accept(img, start(img, 0L, "c")); // a is a source
    reject(img, start(img, MID, "a", 1, TOTAL), ErrorCode.RESOURCE_EXHAUSTED, "server a");
    img = accept(img, start(img, MID, "a", 2, TOTAL)); // a is now also a target
    // a DOWN source x moving to c: c is the target of one, so at 1 it is refused for c
    reject(img, start(img, Q3, "c", 1, TOTAL), ErrorCode.RESOURCE_EXHAUSTED, "server c");
    reject(img, start(img, Q3, "a", 2, TOTAL), ErrorCode.RESOURCE_EXHAUSTED, "server a");
  }

  // ================================================================ the happy paths

  @Test
  void aFullHandoverMovesTheRangeAtTheNextEpoch() {
    ClusterImage img = base();
    RangeEntry r1 = at(img, 1000L); // a, epoch 3, pinned
    img = step(img, start(img, 1000L, "c"), with(r1, "c", HandoverPhase.PREPARE));
    img = step(img, new HandoverReady(1000L, 4), with(r1, "c", HandoverPhase.SWITCH));
    img = step(img, new HandoverDrained(1000L, 4),
        new RangeEntry(1000L, MID, "c", 4, null, true));
    RangeEntry moved = at(img, 1000L);
    assertEquals("c", moved.owner());
    assertEquals(4, moved.epoch());
    assertNull(moved.handover());
    assertTrue(moved.pinned(), "the pin is kept");

    // the next move of the range is identified by the next epoch
    RangeEntry now = at(img, 1000L);
    img = step(img, start(img, 1000L, "a"), with(now, "a", HandoverPhase.PREPARE));
    ignored(img, new HandoverReady(1000L, 4), "is over");
    img = step(img, new HandoverReady(1000L, 5), with(now, "a", HandoverPhase.SWITCH));
    img = step(img, new HandoverDrained(1000L, 5), new RangeEntry(1000L, MID, "a", 5, null,
        true));
    // the old owner may now leave: c owns nothing and receives nothing
    assertTrue(img.rangesOf("c").isEmpty());
    accept(img, new RemoveServer("c"));
  }

  @Test
  void abortFromPrepareClearsTheHandoverAndBumpsTheEpoch() {
    ClusterImage img = r2MovingToC(HandoverPhase.PREPARE);
    StartHandover plannedBefore = start(base(), MID, "e"); // planned at epoch 2
    img = step(img, new AbortHandover(MID, 3, "prepare timeout"),
        new RangeEntry(MID, Q3, "b", 3, null, false));
    assertEquals("b", at(img, MID).owner(), "owner unchanged");
    assertEquals(3, at(img, MID).epoch(), "the aborted attempt's epoch is used up");
    assertNull(at(img, MID).handover());
    assertTrue(img.rangesOf("c").isEmpty());
    // a move planned before the abort is stale; the next attempt is identified by epoch 4
    reject(img, plannedBefore, ErrorCode.FAILED_PRECONDITION, "is at epoch 3, not 2");
    img = accept(img, start(img, MID, "e"));
    assertEquals(4, hEpoch(img, MID));
    step(img, new HandoverReady(MID, 4),
        new RangeEntry(MID, Q3, "b", 3, new Handover("e", HandoverPhase.SWITCH), false));
  }

  @Test
  void abortKeepsThePin() {
    ClusterImage img = base();
    RangeEntry r1 = at(img, 1000L); // a, epoch 3, pinned
    img = step(img, start(img, 1000L, "c"), with(r1, "c", HandoverPhase.PREPARE));
    step(img, new AbortHandover(1000L, 4, "t"),
        new RangeEntry(1000L, MID, "a", 4, null, true));
  }

  @Test
  void everyAbortedAttemptUsesUpOneEpoch() {
    ClusterImage img = base(); // R2: b, epoch 2
    for (int attempt = 1; attempt <= 4; attempt++) {
      img = accept(img, start(img, MID, attempt % 2 == 0 ? "c" : "e"));
      long h = hEpoch(img, MID);
      assertEquals(2 + attempt, h, "attempt " + attempt);
      if (attempt % 2 == 0) { // aborted in PREPARE
        img = accept(img, new AbortHandover(MID, h, "prepare timeout"));
      } else { // aborted in SWITCH, then reversed
        img = accept(img, new HandoverReady(MID, h));
        img = accept(img, new AbortHandover(MID, h, "drain timeout"));
        assertEquals(2 + attempt - 1, at(img, MID).epoch(), "ABORT_SWITCH keeps the epoch");
        img = accept(img, new FinishAbort(MID, h));
      }
      assertEquals(new RangeEntry(MID, Q3, "b", h, null, false), at(img, MID));
    }
    // a completed move after the aborts still bumps by exactly one
    img = accept(img, start(img, MID, "c"));
    img = accept(img, new HandoverReady(MID, 7));
    img = accept(img, new HandoverDrained(MID, 7));
    assertEquals(new RangeEntry(MID, Q3, "c", 7, null, false), at(img, MID));
  }

  @Test
  void abortFromSwitchRunsTheProtocolBackwardsUntilFinishAbort() {
    ClusterImage img = r2MovingToC(HandoverPhase.SWITCH);
    RangeEntry original = at(base(), MID);
    img = step(img, new AbortHandover(MID, 3, "drain timeout"),
        with(original, "c", HandoverPhase.ABORT_SWITCH));
    assertEquals("b", at(img, MID).owner());
    assertEquals(2, at(img, MID).epoch());
    assertEquals(List.of(at(img, MID)), img.rangesOf("c"), "c still takes part until it is over");
    img = step(img, new FinishAbort(MID, 3), new RangeEntry(MID, Q3, "b", 3, null, false));
    assertEquals("b", at(img, MID).owner(), "owner unchanged");
    assertEquals(3, at(img, MID).epoch(), "the aborted attempt's epoch is used up");
    assertNull(at(img, MID).handover());
    assertTrue(img.rangesOf("c").isEmpty());
    // the range may be moved again, at the next epoch; a move planned at the old one is stale
    reject(img, start(base(), MID, "e"), ErrorCode.FAILED_PRECONDITION, "is at epoch 3, not 2");
    img = accept(img, start(img, MID, "e"));
    assertEquals(4, hEpoch(img, MID));
  }

  @Test
  void theAbortReasonIsInTheCause() {
    ClusterImage img = r2MovingToC(HandoverPhase.PREPARE);
    MapDelta d = CommandProcessor.process(img, new AbortHandover(MID, 3, "target gone quiet"),
        img.version() + 1);
    assertTrue(d.cause().contains("target gone quiet"), d.cause());
    assertTrue(d.cause().contains("epoch 3"), d.cause());
  }

  // ================================================================ late and duplicate reports

  @Test
  void readyTwiceIsIgnored() {
    ClusterImage img = r2MovingToC(HandoverPhase.SWITCH);
    ignored(img, new HandoverReady(MID, 3), "the handover is in phase SWITCH");
  }

  @Test
  void readyDuringAbortSwitchIsIgnored() {
    ignored(r2MovingToC(HandoverPhase.ABORT_SWITCH), new HandoverReady(MID, 3),
        "phase ABORT_SWITCH");
  }

  @Test
  void readyAfterAnAbortFromPrepareIsIgnored() {
    ClusterImage img = accept(r2MovingToC(HandoverPhase.PREPARE),
        new AbortHandover(MID, 3, "t"));
    ignored(img, new HandoverReady(MID, 3),
        "the handover with epoch 3 is over (range at epoch 3)");
    // the next attempt's identity is not open yet
    ignored(img, new HandoverReady(MID, 4), "no handover is open on " + at(img, MID).rangeText());
  }

  @Test
  void readyAfterCompletionIsIgnored() {
    ignored(r2MovingToC(HandoverPhase.COMPLETE), new HandoverReady(MID, 3),
        "the handover with epoch 3 is over (range at epoch 3)");
  }

  @Test
  void drainedBeforeReadyIsIgnored() {
    ignored(r2MovingToC(HandoverPhase.PREPARE), new HandoverDrained(MID, 3), "phase PREPARE");
  }

  @Test
  void drainedAfterCompletionIsIgnored() {
    ClusterImage img = r2MovingToC(HandoverPhase.COMPLETE);
    ignored(img, new HandoverDrained(MID, 3), "the handover with epoch 3 is over");
    // also once the next handover of the range is open
    img = accept(img, start(img, MID, "e"));
    img = accept(img, new HandoverReady(MID, 4));
    ignored(img, new HandoverDrained(MID, 3), "is over");
  }

  @Test
  void drainedDuringAbortSwitchIsIgnored() {
    ignored(r2MovingToC(HandoverPhase.ABORT_SWITCH), new HandoverDrained(MID, 3),
        "the handover is in phase ABORT_SWITCH");
  }

  @Test
  void drainedAfterTheAbortIsFinishedIsIgnored() {
    ClusterImage img = accept(r2MovingToC(HandoverPhase.ABORT_SWITCH), new FinishAbort(MID, 3));
    ignored(img, new HandoverDrained(MID, 3),
        "the handover with epoch 3 is over (range at epoch 3)");
  }

  @Test
  void abortAfterCompletionIsIgnored() {
    ignored(r2MovingToC(HandoverPhase.COMPLETE), new AbortHandover(MID, 3, "late"),
        "the handover with epoch 3 is over");
  }

  @Test
  void abortTwiceIsIgnored() {
    ClusterImage img = r2MovingToC(HandoverPhase.ABORT_SWITCH);
    ignored(img, new AbortHandover(MID, 3, "again"), "phase ABORT_SWITCH");
    ClusterImage cleared = accept(r2MovingToC(HandoverPhase.PREPARE),
        new AbortHandover(MID, 3, "t"));
    ignored(cleared, new AbortHandover(MID, 3, "again"),
        "the handover with epoch 3 is over (range at epoch 3)");
  }

  @Test
  void finishAbortTwiceIsIgnored() {
    ClusterImage img = accept(r2MovingToC(HandoverPhase.ABORT_SWITCH), new FinishAbort(MID, 3));
    ignored(img, new FinishAbort(MID, 3), "the handover with epoch 3 is over (range at epoch 3)");
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class, names = {"PREPARE", "SWITCH", "COMPLETE"})
  void finishAbortWithoutAnAbortIsIgnored(HandoverPhase phase) {
    ignored(r2MovingToC(phase), new FinishAbort(MID, 3));
  }

  @Test
  void reportsWithNoHandoverOpenAreIgnored() {
    ClusterImage img = base();
    for (Command c : reports(1000L, 4)) {
      ignored(img, c, "no handover is open on " + at(img, 1000L).rangeText());
    }
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class)
  void reportsWithAnOlderEpochAreIgnored(HandoverPhase phase) {
    // R1 is at epoch 3 (4 after COMPLETE); whatever is open, reports for epochs <= 3 are over
    ClusterImage img = base();
    img = accept(img, start(img, 1000L, "c"));
    if (phase != HandoverPhase.PREPARE) {
      img = accept(img, new HandoverReady(1000L, 4));
    }
    if (phase == HandoverPhase.ABORT_SWITCH) {
      img = accept(img, new AbortHandover(1000L, 4, "t"));
    } else if (phase == HandoverPhase.COMPLETE) {
      img = accept(img, new HandoverDrained(1000L, 4));
    }
    long epoch = at(img, 1000L).epoch();
    for (long old = 1; old <= epoch; old++) {
      for (Command c : reports(1000L, old)) {
        ignored(img, c, "the handover with epoch " + old + " is over (range at epoch " + epoch
            + ")");
      }
    }
  }

  @ParameterizedTest
  @ValueSource(longs = {4, 5, 102, Long.MAX_VALUE})
  void reportsForAnEpochTheRangeHasNotReachedAreRefused(long e) {
    ClusterImage img = r2MovingToC(HandoverPhase.SWITCH); // R2 at epoch 2, handover epoch 3
    for (Command c : reports(MID, e)) {
      reject(img, c, ErrorCode.FAILED_PRECONDITION,
          "is at epoch 2; no handover with epoch " + e + " exists");
    }
    ClusterImage fresh = base(); // R4 unassigned at epoch 0: only epoch 1 can be named
    for (Command c : reports(Q3X, 2)) {
      reject(fresh, c, ErrorCode.FAILED_PRECONDITION, "is at epoch 0");
    }
  }

  @ParameterizedTest
  @ValueSource(longs = {0, -1, Long.MIN_VALUE})
  void reportsWithAnEpochBelowOneAreInvalid(long e) {
    for (ClusterImage img : List.of(base(), r2MovingToC(HandoverPhase.SWITCH))) {
      for (long start : new long[] {MID, Q3X}) {
        for (Command c : reports(start, e)) {
          reject(img, c, ErrorCode.INVALID_ARGUMENT,
              "handover epoch must be at least 1, got " + e);
        }
      }
    }
  }

  @Test
  void reportsForAPointThatStartsNoRangeAreNotFound() {
    ClusterImage img = r2MovingToC(HandoverPhase.SWITCH);
    for (Command c : reports(MID + 1, 3)) {
      reject(img, c, ErrorCode.NOT_FOUND, "no range starts at " + Ring.hex(MID + 1),
          at(img, MID).rangeText());
    }
  }

  @Test
  void reportsForARangeThatWasMergedAwayAreNotFound() {
    // R0 [0,1000) a epoch 1 and R1 [1000,2^63) a epoch 3: split R1, start moving its left part
    // [1000,2000) to c and abort (epoch 4), then merge R0 with it
    ClusterImage img = base();
    img = accept(img, new SplitRange(1000L, 2000L));
    img = accept(img, start(img, 1000L, "c"));
    img = accept(img, new AbortHandover(1000L, 4, "t"));
    assertEquals(new RangeEntry(1000L, 2000L, "a", 4, null, true), at(img, 1000L));
    img = accept(img, new MergeRanges(0L, 1000L));
    // the merged range takes the larger epoch: the aborted attempt's
    assertEquals(new RangeEntry(0L, 2000L, "a", 4, null, true), at(img, 0L));
    for (Command c : reports(1000L, 4)) {
      reject(img, c, ErrorCode.NOT_FOUND, "no range starts at " + Ring.hex(1000L));
    }
    // the merged range's own epoch covers the old reports of its left part
    for (Command c : reports(0L, 2)) {
      ignored(img, c, "is over");
    }
    // ... and the aborted attempt's epoch, so the merged range's first move is identified by 5
    for (Command c : reports(0L, 4)) {
      ignored(img, c, "the handover with epoch 4 is over (range at epoch 4)");
    }
    assertEquals(5, hEpoch(accept(img, start(img, 0L, "c")), 0L));
  }

  private static List<Command> reports(long start, long epoch) {
    return List.of(new HandoverReady(start, epoch), new HandoverDrained(start, epoch),
        new AbortHandover(start, epoch, "late"), new FinishAbort(start, epoch));
  }

  // ================================================================ ForceHandover

  @Test
  void forceMovesARangeOffADownOwnerAtTheNextEpoch() {
    ClusterImage img = accept(base(), new SetPinned(Q3, true));
    img = step(img, new ForceHandover(Q3, 5, "c"), new RangeEntry(Q3, Q3X, "c", 6, null, true));
    assertTrue(img.rangesOf("x").isEmpty());
    accept(img, new RemoveServer("x"));
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class, names = {"PREPARE", "SWITCH", "ABORT_SWITCH"})
  void forceClearsAnOpenHandoverAndBumpsTheEpoch(HandoverPhase phase) {
    ClusterImage img = r2MovingToC(phase);
    img = accept(img, new UpdateServer("b", null, null, ServerState.DOWN));
    // the forced move may go to the handover's target or elsewhere
    for (String target : List.of("c", "e")) {
      ClusterImage forced = step(img, new ForceHandover(MID, 2, target),
          new RangeEntry(MID, Q3, target, 3, null, false));
      for (Command c : reports(MID, 3)) {
        ignored(forced, c, "the handover with epoch 3 is over (range at epoch 3)");
      }
      for (Command c : reports(MID, 2)) {
        ignored(forced, c, "is over");
      }
      // the slot is free again and b may be removed
      assertTrue(forced.rangesOf("b").isEmpty());
      accept(forced, new RemoveServer("b"));
      if (target.equals("e")) {
        assertTrue(forced.rangesOf("c").isEmpty());
        accept(forced, new RemoveServer("c"));
      }
      // a new move of the range is identified by epoch 4
      ClusterImage again = accept(forced, start(forced, MID, "a"));
      again = accept(again, new HandoverReady(MID, 4));
      assertEquals(HandoverPhase.SWITCH, at(again, MID).handover().phase());
    }
  }

  @Test
  void forceOnlyOffADownOwner() {
    ClusterImage img = base();
    reject(img, new ForceHandover(MID, 2, "c"), ErrorCode.FAILED_PRECONDITION,
        "only off a DOWN server", "owner is b (ACTIVE)");
    reject(img, new ForceHandover(Q3X, 0, "c"), ErrorCode.FAILED_PRECONDITION,
        "only off a DOWN server", "owner is nobody");
    ClusterImage draining = accept(img, new UpdateServer("b", null, null, ServerState.DRAINING));
    reject(draining, new ForceHandover(MID, 2, "c"), ErrorCode.FAILED_PRECONDITION,
        "owner is b (DRAINING)");
    // with a handover open, an ACTIVE owner still cannot be bypassed
    reject(r2MovingToC(HandoverPhase.SWITCH), new ForceHandover(MID, 2, "c"),
        ErrorCode.FAILED_PRECONDITION, "owner is b (ACTIVE)");
  }

  @Test
  void forceOnlyAtTheExpectedEpoch() {
    ClusterImage img = base();
    reject(img, new ForceHandover(Q3, 4, "c"), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 5, not 4");
    reject(img, new ForceHandover(Q3, 6, "c"), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 5, not 6");
    // a duplicated force: the second one finds the range at the next epoch
    ClusterImage forced = accept(img, new ForceHandover(Q3, 5, "c"));
    reject(forced, new ForceHandover(Q3, 5, "e"), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 6, not 5");
    reject(forced, new ForceHandover(Q3, 5, "c"), ErrorCode.FAILED_PRECONDITION,
        "is at epoch 6, not 5");
  }

  @Test
  void forceOnlyToAnActiveKnownTarget() {
    ClusterImage img = base();
    reject(img, new ForceHandover(Q3, 5, "d"), ErrorCode.FAILED_PRECONDITION,
        "server d is DRAINING", "only ACTIVE");
    reject(img, new ForceHandover(Q3, 5, "x"), ErrorCode.FAILED_PRECONDITION, "server x is DOWN");
    reject(img, new ForceHandover(Q3, 5, "zz"), ErrorCode.NOT_FOUND,
        "no queue server with id zz");
    reject(img, new ForceHandover(Q3, 5, ""), ErrorCode.INVALID_ARGUMENT, "server id");
    reject(img, new ForceHandover(Q3, 5, "a b"), ErrorCode.INVALID_ARGUMENT, "server id");
    reject(img, new ForceHandover(Q3 + 1, 5, "c"), ErrorCode.NOT_FOUND,
        "no range starts at " + Ring.hex(Q3 + 1));
  }

  // ================================================================ what a handover blocks

  /** base() with R2 split in two halves owned by b, the left one moving to c in {@code phase}. */
  private static ClusterImage leftHalfMoving(HandoverPhase phase) {
    ClusterImage img = accept(base(), new SplitRange(MID, MID + 100));
    img = accept(img, start(img, MID, "c"));
    if (phase != HandoverPhase.PREPARE) {
      img = accept(img, new HandoverReady(MID, 3));
    }
    if (phase == HandoverPhase.ABORT_SWITCH) {
      img = accept(img, new AbortHandover(MID, 3, "t"));
    }
    return img;
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class, names = {"PREPARE", "SWITCH", "ABORT_SWITCH"})
  void aRangeUnderHandoverCannotBeSplitMergedOrAssigned(HandoverPhase phase) {
    ClusterImage img = leftHalfMoving(phase);
    reject(img, new SplitRange(MID, MID + 50), ErrorCode.FAILED_PRECONDITION,
        "cannot split range", "during its handover to c", phase.name());
    reject(img, new MergeRanges(MID, MID + 100), ErrorCode.FAILED_PRECONDITION,
        "cannot merge range", "during its handover to c");
    for (String owner : List.of("a", "c", "e")) {
      reject(img, new AssignRange(MID, owner, true), ErrorCode.FAILED_PRECONDITION,
          "cannot assign range", "during its handover");
      reject(img, new AssignRange(MID, owner, false), ErrorCode.FAILED_PRECONDITION,
          "cannot assign range");
    }
    // its neighbour is free: it can be split, and its pieces merged again
    ClusterImage right = accept(img, new SplitRange(MID + 100, MID + 200));
    accept(right, new MergeRanges(MID + 100, MID + 200));
  }

  @ParameterizedTest
  @EnumSource(value = HandoverPhase.class, names = {"PREPARE", "SWITCH", "ABORT_SWITCH"})
  void theTargetAndTheSourceOfAnOpenHandoverCannotBeRemoved(HandoverPhase phase) {
    ClusterImage img = leftHalfMoving(phase);
    assertTrue(base().rangesOf("c").isEmpty(), "c owns nothing");
    reject(img, new RemoveServer("c"), ErrorCode.FAILED_PRECONDITION,
        "server c still owns or receives 1 range(s)", Ring.formatRange(MID, MID + 100));
    reject(img, new RemoveServer("b"), ErrorCode.FAILED_PRECONDITION,
        "server b still owns or receives");
    // a target that went DOWN meanwhile is still part of the handover
    ClusterImage down = accept(img, new UpdateServer("c", null, null, ServerState.DOWN));
    reject(down, new RemoveServer("c"), ErrorCode.FAILED_PRECONDITION, "server c");
  }

  @Test
  void aFinishedHandoverUnblocksEverything() {
    ClusterImage img = leftHalfMoving(HandoverPhase.SWITCH);
    ClusterImage done = accept(img, new HandoverDrained(MID, 3));
    accept(done, new SplitRange(MID, MID + 50));
    accept(done, new AssignRange(MID, "e", true));
    ClusterImage aborted = accept(accept(img, new AbortHandover(MID, 3, "t")),
        new FinishAbort(MID, 3));
    accept(aborted, new MergeRanges(MID, MID + 100));
    accept(aborted, new RemoveServer("c"));
    // after completion the left half is c's: merging with b's right half is a different-owner
    // merge, refused for that reason
    reject(done, new MergeRanges(MID, MID + 100), ErrorCode.FAILED_PRECONDITION,
        "different owners");
  }

  // ================================================================ handover identity
  // The class Javadoc of Handovers promises that "a report for an earlier handover ... is
  // ignored". Clearing an aborted handover (AbortHandover from PREPARE, FinishAbort after
  // ABORT_SWITCH) bumps the range's epoch, owner unchanged, so the next handover of the range
  // opens under a new identity (range start, epoch + 1), and a late or retried report of the
  // aborted attempt names an epoch that is over: it is ignored, never taken for a report of the
  // next attempt. The epochs are read from the image, so each step names the attempt it means.

  @Test
  void aLateReadyOfAnAbortedAttemptDoesNotSwitchTheNextAttempt() {
    ClusterImage img = base();
    img = accept(img, start(img, MID, "c")); // attempt 1: b -> c
    long attempt1 = hEpoch(img, MID);
    HandoverReady lateReadyFromC = new HandoverReady(MID, attempt1);
    img = accept(img, new AbortHandover(MID, attempt1, "prepare timeout"));
    img = accept(img, start(img, MID, "e")); // attempt 2: b -> e; e has not opened its queue
    long attempt2 = hEpoch(img, MID);
    assertEquals(attempt1 + 1, attempt2, "each attempt has an identity of its own");
    assertEquals(HandoverPhase.PREPARE, at(img, MID).handover().phase());
    // c's ready for the aborted attempt would send routers to e before e is ready
    ignored(img, lateReadyFromC, "the handover with epoch " + attempt1 + " is over (range at epoch "
        + attempt1 + ")");
    // e's own ready still switches attempt 2
    step(img, new HandoverReady(MID, attempt2),
        new RangeEntry(MID, Q3, "b", attempt1, new Handover("e", HandoverPhase.SWITCH), false));
  }

  @Test
  void aRetriedDrainedOfAnAbortedAttemptDoesNotCompleteTheNextAttempt() {
    ClusterImage img = base();
    img = accept(img, start(img, MID, "c")); // attempt 1: b -> c
    long attempt1 = hEpoch(img, MID);
    img = accept(img, new HandoverReady(MID, attempt1));
    // b drains to c and reports; the leader's drain timeout commits the abort first
    HandoverDrained drainedToC = new HandoverDrained(MID, attempt1);
    img = accept(img, new AbortHandover(MID, attempt1, "drain timeout"));
    ignored(img, drainedToC, "ABORT_SWITCH");
    img = accept(img, new FinishAbort(MID, attempt1));
    ignored(img, drainedToC, "the handover with epoch " + attempt1 + " is over");
    img = accept(img, start(img, MID, "e")); // attempt 2: b -> e
    long attempt2 = hEpoch(img, MID);
    assertEquals(attempt1 + 1, attempt2, "each attempt has an identity of its own");
    img = accept(img, new HandoverReady(MID, attempt2));
    assertEquals(HandoverPhase.SWITCH, at(img, MID).handover().phase());
    // b has not sealed nor transferred anything to e yet; the retried report arrives. Applied,
    // it would make e the owner before b's hold buffer reached e
    ignored(img, drainedToC, "the handover with epoch " + attempt1 + " is over (range at epoch "
        + attempt1 + ")");
    assertEquals("b", at(img, MID).owner());
    // b's own drained for attempt 2 completes it
    step(img, new HandoverDrained(MID, attempt2), new RangeEntry(MID, Q3, "e", attempt2, null,
        false));
  }

  @Test
  void aLateFinishAbortOfAnAbortedAttemptDoesNotEndTheNextAbort() {
    ClusterImage img = r2MovingToC(HandoverPhase.ABORT_SWITCH); // attempt 1: b -> c, aborted
    long attempt1 = hEpoch(img, MID);
    FinishAbort finish1 = new FinishAbort(MID, attempt1);
    img = accept(img, finish1);
    img = accept(img, start(img, MID, "e")); // attempt 2: b -> e
    long attempt2 = hEpoch(img, MID);
    assertEquals(attempt1 + 1, attempt2, "each attempt has an identity of its own");
    img = accept(img, new HandoverReady(MID, attempt2));
    img = accept(img, new AbortHandover(MID, attempt2, "drain timeout"));
    // e has not handed anything back to b yet; a duplicate of attempt 1's FinishAbort arrives.
    // Applied, it would let b accept R before e handed back what it holds
    ignored(img, finish1, "the handover with epoch " + attempt1 + " is over (range at epoch "
        + attempt1 + ")");
    assertEquals(new Handover("e", HandoverPhase.ABORT_SWITCH), at(img, MID).handover());
    // attempt 2's own FinishAbort ends it, and uses up its epoch in turn
    step(img, new FinishAbort(MID, attempt2), new RangeEntry(MID, Q3, "b", attempt2, null,
        false));
  }
}
