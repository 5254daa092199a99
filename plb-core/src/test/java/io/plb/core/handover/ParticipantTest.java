package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.Participant.Placement;
import io.plb.core.handover.Participant.TransferVerdict;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.ServerState;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The hold rules step by step, for a source S and a target T of the one range [0, 2^64).
 * Scenario tests; the seeded simulation checks the rules together under random schedules.
 */
class ParticipantTest {
  private static final long H = 12345; // a hash in the range
  private ClusterImage image;
  private Participant s;
  private Participant t;

  private void commit(Command c) {
    MapDelta d = CommandProcessor.process(image, c, image.version() + 1);
    image = image.apply(d);
  }

  private long epoch() {
    return image.range(0).epoch();
  }

  @BeforeEach
  void setUp() {
    image = ClusterImage.EMPTY;
    commit(new Command.RegisterServer("S", "s:1", 1.0));
    commit(new Command.RegisterServer("T", "t:1", 1.0));
    commit(new Command.AssignRange(0, "S", false));
    s = new Participant("S");
    t = new Participant("T");
    s.onMap(image);
    t.onMap(image);
  }

  private long startAndSwitch() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    assertEquals(List.of(new Action.ReportReady(0, he)), t.onMap(image));
    assertEquals(List.of(), s.onMap(image));
    assertEquals(Placement.QUEUE, s.place(H, image.version(), "p").placement(),
        "PREPARE: the source still takes the range");
    assertEquals(Placement.REFUSE, t.place(H, image.version(), "p").placement());
    commit(new Command.HandoverReady(0, he));
    assertEquals(List.of(new Action.AwaitBacklog(0, he)), s.onMap(image));
    t.onMap(image);
    return he;
  }

  @Test
  void forwardHandover() {
    long he = startAndSwitch();
    long tag = image.version();
    assertEquals(Placement.HOLD, s.place(H, tag - 1, "p").placement(),
        "an arrival after SWITCH goes to the hold buffer, whatever its tag");
    assertEquals(Placement.HELD, t.place(H, tag, "p").placement());

    List<Action> seal = s.onBacklogEmpty(0);
    assertEquals(List.of(new Action.Transfer(0, he, Direction.FORWARD, "T", List.of(Buffer.HOLD))),
        seal);
    assertEquals(Placement.REFUSE, s.place(H, tag, "p").placement(), "C1: sealed");
    assertEquals(List.of(), s.onBacklogEmpty(0), "sealing happens once");

    assertEquals(TransferVerdict.ACCEPT, t.acceptTransfer(0, he, Direction.FORWARD, tag));
    assertEquals(List.of(), t.onTransferStored(0, he, Direction.FORWARD));
    assertEquals(List.of(new Action.ReportDrained(0, he)),
        s.onTransferAcked(0, he, Direction.FORWARD));

    commit(new Command.HandoverDrained(0, he));
    assertEquals(List.of(new Action.Release(0, he, List.of(Buffer.PREFIX, Buffer.HELD))),
        t.onMap(image), "the target releases the prefix, then what it held");
    assertEquals(List.of(new Action.Discard(0, he, List.of(Buffer.HOLD))), s.onMap(image));
    assertEquals(Placement.QUEUE, t.place(H, image.version(), "p").placement());
    assertEquals(Placement.REFUSE, s.place(H, image.version(), "p").placement());
  }

  @Test
  void messagesRoutedUnderANewerMapWait() {
    long he = startAndSwitch();
    var d = t.place(H, image.version() + 3, "p");
    assertEquals(Placement.WAIT, d.placement(), "C2");
    assertEquals(image.version() + 3, d.version());
    assertEquals(TransferVerdict.WAIT,
        t.acceptTransfer(0, he, Direction.FORWARD, image.version() + 1));
  }

  @Test
  void abortFromPrepareDiscardsTheEmptyHeldQueue() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    t.onMap(image);
    s.onMap(image);
    commit(new Command.AbortHandover(0, he, "test"));
    assertEquals(List.of(new Action.Discard(0, he, List.of(Buffer.PREFIX, Buffer.HELD))),
        t.onMap(image));
    assertEquals(List.of(), s.onMap(image));
    assertEquals(Placement.QUEUE, s.place(H, image.version(), "p").placement());
  }

  @Test
  void abortFromSwitchBeforeTheSealRunsBackwards() {
    long he = startAndSwitch();
    // Routed under PREPARE, to the source. (Under SWITCH a router sends to the target.)
    long preAbortTag = image.version() - 1;
    assertEquals(Placement.HOLD, s.place(H, preAbortTag, "p").placement());
    commit(new Command.AbortHandover(0, he, "test"));
    long abortVersion = image.version();
    assertEquals(List.of(), s.onMap(image));
    List<Action> reverse = t.onMap(image);
    assertEquals(List.of(new Action.Transfer(0, he, Direction.REVERSE, "S",
        List.of(Buffer.PREFIX, Buffer.HELD))), reverse);
    assertEquals(Placement.REFUSE, t.place(H, abortVersion, "p").placement(), "T sealed");
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p1").placement(),
        "C3: routed under the pre-abort map");
    assertEquals(Placement.POST_ABORT, s.place(H, abortVersion, "p2").placement());
    assertEquals(TransferVerdict.REFUSE, t.acceptTransfer(0, he, Direction.FORWARD, abortVersion),
        "a target that reversed refuses the forward transfer");

    assertEquals(TransferVerdict.ACCEPT, s.acceptTransfer(0, he, Direction.REVERSE, abortVersion));
    assertEquals(List.of(
        new Action.Release(0, he, List.of(Buffer.HOLD, Buffer.RETURNED, Buffer.POST_ABORT)),
        new Action.ReportReversed(0, he)), s.onTransferStored(0, he, Direction.REVERSE));
    assertEquals(Placement.QUEUE, s.place(H, abortVersion, "p2").placement());
    assertEquals(List.of(new Action.Discard(0, he, List.of(Buffer.PREFIX, Buffer.HELD))),
        t.onTransferAcked(0, he, Direction.REVERSE));

    commit(new Command.FinishAbort(0, he));
    assertEquals(he, epoch(), "clearing the abort bumps the epoch");
    s.onMap(image);
    t.onMap(image);
    assertEquals(Placement.QUEUE, s.place(H, image.version(), "p2").placement());
  }

  /**
   * The ABORT_SWITCH deadline: the leader ends the abort without the handback (epoch + 2). The
   * target, whose held messages the source never got, must not read that as the reversal it
   * discards after: it hands them on as late messages, and so does the source with what it held.
   * With a plain FinishAbort (epoch + 1) the target would discard them — the test fails so.
   */
  @Test
  void anAbortEndedAtItsDeadlineKeepsWhatBothSidesHeldAsLate() {
    long he = startAndSwitch();
    assertEquals(Placement.HELD, t.place(H, image.version(), "p").placement());
    s.onBacklogEmpty(0);
    commit(new Command.AbortHandover(0, he, "target down"));
    s.onMap(image);
    // The target is down: it never sees the abort, and its handback never comes.
    assertEquals(Placement.POST_ABORT, s.place(H, image.version(), "p2").placement());
    commit(new Command.ExpireAbort(0, he, "deadline"));
    assertEquals(he + 1, epoch(), "past the handover's own epoch");
    assertEquals("S", image.range(0).owner());
    assertEquals(List.of(new Action.Orphaned(0, he)), s.onMap(image),
        "the source takes back what it held, as late");
    assertEquals(Placement.QUEUE, s.place(H, image.version(), "p3").placement());
    assertEquals(List.of(new Action.Orphaned(0, he)), t.onMap(image),
        "the returning target hands on what it held instead of discarding it");
    assertEquals(TransferVerdict.REFUSE, s.acceptTransfer(0, he, Direction.REVERSE,
        image.version()), "a handback after the deadline is refused");
  }

  @Test
  void abortAfterTheSourceTransferredGetsItsBufferBackFirst() {
    long he = startAndSwitch();
    s.onBacklogEmpty(0);
    long tag = image.version();
    assertEquals(TransferVerdict.ACCEPT, t.acceptTransfer(0, he, Direction.FORWARD, tag));
    t.onTransferStored(0, he, Direction.FORWARD);
    s.onTransferAcked(0, he, Direction.FORWARD);
    commit(new Command.AbortHandover(0, he, "test"));
    s.onMap(image);
    t.onMap(image);
    s.acceptTransfer(0, he, Direction.REVERSE, image.version());
    assertEquals(List.of(
        new Action.Discard(0, he, List.of(Buffer.HOLD)),
        new Action.Release(0, he, List.of(Buffer.RETURNED, Buffer.POST_ABORT)),
        new Action.ReportReversed(0, he)), s.onTransferStored(0, he, Direction.REVERSE));
  }

  @Test
  void theRefusalFenceOutlivesTheAbortAndIsPerProducer() {
    long he = startAndSwitch();
    long preAbortTag = image.version() - 1; // routed under PREPARE, to the source
    commit(new Command.AbortHandover(0, he, "test"));
    s.onMap(image);
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p1").placement());
    s.acceptTransfer(0, he, Direction.REVERSE, image.version());
    s.onTransferStored(0, he, Direction.REVERSE);
    commit(new Command.FinishAbort(0, he));
    s.onMap(image);
    // p1's second pipelined message, routed with the same old tag, arrives after the clear.
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p1").placement(),
        "the fence keeps refusing what was routed before p1's refusal");
    assertEquals(Placement.QUEUE, s.place(H, preAbortTag, "p2").placement(),
        "another producer, never refused, is not fenced");
    assertEquals(Placement.QUEUE, s.place(H, image.version(), "p1").placement(),
        "p1's resends, tagged at the refusal's version or later, are taken");
    assertTrue(s.fences().stream().anyMatch(f -> f.producer().equals("p1")));
  }

  @Test
  void droppedFencesRefuseNothingAndOnlyTheirSessionsAreDropped() {
    long he = startAndSwitch();
    long preAbortTag = image.version() - 1;
    commit(new Command.AbortHandover(0, he, "test"));
    s.onMap(image);
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p1").placement());
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p2").placement());
    assertEquals(2, s.fencedProducers());
    s.acceptTransfer(0, he, Direction.REVERSE, image.version());
    s.onTransferStored(0, he, Direction.REVERSE);
    commit(new Command.FinishAbort(0, he));
    s.onMap(image);
    assertTrue(s.dropFences("p1"));
    assertFalse(s.dropFences("p1"), "nothing left to drop");
    assertEquals(1, s.fencedProducers());
    // p1's streams have all ended: anything of it arrives on a new stream, in its order.
    assertEquals(Placement.QUEUE, s.place(H, preAbortTag, "p1").placement());
    assertEquals(Placement.REFUSE, s.place(H, preAbortTag, "p2").placement(),
        "p2's fence stands");
  }

  @Test
  void sidesSurviveARestart() {
    long he = startAndSwitch();
    s.onBacklogEmpty(0);
    Participant restarted = new Participant("S");
    restarted.restore(s.sides());
    restarted.onMap(image);
    assertEquals(Placement.REFUSE, restarted.place(H, image.version(), "p").placement(),
        "still sealed after a restart");
    assertEquals(List.of(new Action.ReportDrained(0, he)),
        restarted.onTransferAcked(0, he, Direction.FORWARD));
  }

  @Test
  void whatIsStillOwedIsSentAgainAndDuplicatesAreAcknowledged() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    t.onMap(image);
    s.onMap(image);
    assertEquals(List.of(new Action.ReportReady(0, he)), t.resend(), "a lost ready is resent");
    commit(new Command.HandoverReady(0, he));
    t.onMap(image);
    s.onMap(image);
    assertEquals(List.of(), t.resend());
    s.onBacklogEmpty(0);
    assertEquals(List.of(new Action.Transfer(0, he, Direction.FORWARD, "T", List.of(Buffer.HOLD))),
        s.resend(), "an unacknowledged transfer is resent");
    long tag = image.version();
    assertEquals(TransferVerdict.ACCEPT, t.acceptTransfer(0, he, Direction.FORWARD, tag));
    t.onTransferStored(0, he, Direction.FORWARD);
    assertEquals(TransferVerdict.DUPLICATE, t.acceptTransfer(0, he, Direction.FORWARD, tag),
        "the resend after a lost ack is acknowledged, not stored twice");
    s.onTransferAcked(0, he, Direction.FORWARD);
    assertEquals(List.of(new Action.ReportDrained(0, he)), s.resend(), "a lost drained is resent");
    commit(new Command.HandoverDrained(0, he));
    s.onMap(image);
    t.onMap(image);
    assertEquals(List.of(), s.resend());
    assertEquals(List.of(), t.resend());
  }

  // ---------------------------------------------------------------- crashes and forced moves

  /** A server restarted with what it persisted, seeing {@code latest} as its first map. */
  private static Participant restarted(Participant before, String id, ClusterImage latest,
      List<Action> expected) {
    Participant p = new Participant(id);
    p.restore(before.sides());
    assertEquals(expected, p.onMap(latest));
    return p;
  }

  private void down(String id) {
    commit(new Command.UpdateServer(id, null, null, ServerState.DOWN));
  }

  private void active(String id) {
    commit(new Command.UpdateServer(id, null, null, ServerState.ACTIVE));
  }

  @Test
  void aTargetForcedPastSendsOnWhatItHeldInsteadOfDroppingIt() {
    commit(new Command.RegisterServer("U", "u:1", 1.0));
    long he = startAndSwitch();
    assertEquals(Placement.HELD, t.place(H, image.version(), "p").placement());
    down("S");
    down("T");
    commit(new Command.ForceHandover(0, epoch(), "U"));
    // Before: Discard(PREFIX, HELD) — the only copy of an acknowledged message.
    assertEquals(List.of(new Action.Orphaned(0, he)), t.onMap(image));
  }

  @Test
  void aTargetThatMissedTheEndOfItsHandoverStillReleasesIt() {
    long he = startAndSwitch();
    assertEquals(Placement.HELD, t.place(H, image.version(), "p").placement());
    s.onBacklogEmpty(0);
    t.acceptTransfer(0, he, Direction.FORWARD, image.version());
    t.onTransferStored(0, he, Direction.FORWARD);
    s.onTransferAcked(0, he, Direction.FORWARD);
    ClusterImage atCrash = image;
    commit(new Command.HandoverDrained(0, he)); // T is down and does not see it
    commit(new Command.StartHandover(0, 0, epoch(), "S", 2, 4));
    commit(new Command.AbortHandover(0, epoch() + 1, "S not ready"));
    assertEquals(he + 1, epoch());
    t.onMap(atCrash);
    // Before: Discard(PREFIX, HELD), since the epoch is no longer the handover's.
    restarted(t, "T", image,
        List.of(new Action.Release(0, he, List.of(Buffer.PREFIX, Buffer.HELD))));
  }

  /**
   * A target down from before its handover completed until after its range was merged into its
   * left neighbour (also its own): no range starts where the handover's did, but the merged one
   * covers it and is the target's, so it releases what it held as the completed handover's —
   * not as orphaned late messages (found by the seeded simulation, broken-stream seed 2,473).
   */
  @Test
  void aTargetWhoseCompletedRangeWasMergedAwayStillReleasesIt() {
    long m = 1L << 62;
    commit(new Command.SplitRange(0, m, null));
    s.onMap(image);
    t.onMap(image);
    commit(new Command.StartHandover(m, 0, image.range(1).epoch(), "T", 2, 4));
    long he = image.range(1).epoch() + 1;
    t.onMap(image);
    commit(new Command.HandoverReady(m, he));
    s.onMap(image);
    t.onMap(image);
    assertEquals(Placement.HELD, t.place(m + 5, image.version(), "p").placement());
    s.onBacklogEmpty(m);
    t.acceptTransfer(m, he, Direction.FORWARD, image.version());
    t.onTransferStored(m, he, Direction.FORWARD);
    commit(new Command.HandoverDrained(m, he)); // T is down from here
    commit(new Command.AssignRange(0, "T", true));
    commit(new Command.MergeRanges(0, m, null));
    assertEquals(1, image.rangeCount());
    // Before: Orphaned(m, he), and what T held came back as late.
    restarted(t, "T", image,
        List.of(new Action.Release(m, he, List.of(Buffer.PREFIX, Buffer.HELD))));
  }

  /**
   * A target that began handing everything back after an abort from SWITCH, whose source then
   * went DOWN and the range was forced to it: the source may have stored the handback and
   * delivered it, so what the target still holds goes late, not into its queue as if the
   * handover had completed (the seeded simulation found the second copy delivered unflagged,
   * crash seed 1,623).
   */
  @Test
  void aTargetForcedTheRangeAfterItHandedBackSendsWhatItHeldLate() {
    long he = startAndSwitch();
    assertEquals(Placement.HELD, t.place(H, image.version(), "p").placement());
    commit(new Command.AbortHandover(0, he, "test"));
    assertEquals(List.of(new Action.Transfer(0, he, Direction.REVERSE, "S",
        List.of(Buffer.PREFIX, Buffer.HELD))), t.onMap(image));
    down("S");
    commit(new Command.ForceHandover(0, epoch(), "T"));
    // Before: Release(PREFIX, HELD), unmarked, of what S may have delivered already.
    assertEquals(List.of(new Action.Orphaned(0, he)), t.onMap(image));
  }

  @Test
  void aTargetThatMissedBeingForcedPastSendsOnWhatItHeld() {
    commit(new Command.RegisterServer("U", "u:1", 1.0));
    long he = startAndSwitch();
    t.place(H, image.version(), "p");
    down("S");
    commit(new Command.ForceHandover(0, epoch(), "T")); // to T, which has crashed meanwhile
    down("T");
    commit(new Command.ForceHandover(0, epoch(), "U"));
    assertEquals(he + 1, epoch());
    restarted(t, "T", image, List.of(new Action.Orphaned(0, he)));
  }

  @Test
  void aSourceForcedAwayAfterAnAbortSendsOnWhatArrivedSince() {
    long he = startAndSwitch();
    s.onBacklogEmpty(0);
    t.acceptTransfer(0, he, Direction.FORWARD, image.version());
    t.onTransferStored(0, he, Direction.FORWARD);
    s.onTransferAcked(0, he, Direction.FORWARD);
    commit(new Command.AbortHandover(0, he, "test"));
    s.onMap(image);
    assertEquals(Placement.POST_ABORT, s.place(H, image.version(), "p").placement());
    down("S");
    commit(new Command.ForceHandover(0, epoch(), "T"));
    // Before: only Discard(HOLD) — the message in POST_ABORT stayed in the store for good.
    assertEquals(List.of(new Action.Discard(0, he, List.of(Buffer.HOLD)),
        new Action.Orphaned(0, he)), s.onMap(image));
  }

  @Test
  void aSourceForcedAwayAndBackSendsOnItsHoldBuffer() {
    long he = startAndSwitch();
    assertEquals(Placement.HOLD, s.place(H, image.version() - 1, "p").placement());
    ClusterImage atCrash = image;
    down("S");
    commit(new Command.ForceHandover(0, epoch(), "T"));
    active("S");
    down("T");
    commit(new Command.ForceHandover(0, epoch(), "S"));
    s.onMap(atCrash);
    // Before: nothing, taken for a finished reversal — the hold buffer stayed for good.
    restarted(s, "S", image, List.of(new Action.Orphaned(0, he)));
  }

  @Test
  void c5AfterARestartTakesWhatWasRoutedUnderTheSwitch() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    t.onMap(image); // T persists its side in PREPARE, reports ready, and crashes
    commit(new Command.HandoverReady(0, he));
    long switchTag = image.version();
    commit(new Command.RegisterServer("U", "u:1", 1.0)); // T restarts at a later version
    Participant t2 = restarted(t, "T", image, List.of());
    // Before: the first version T saw SWITCH at was the bound; a message routed under the
    // SWITCH was refused and the producer's next one, tagged later, taken ahead of it.
    assertEquals(Placement.HELD, t2.place(H, switchTag, "p").placement());
    assertEquals(Placement.REFUSE, t2.place(H, switchTag - 2, "q").placement(),
        "C5 still refuses what was routed before this handover");
  }

  @Test
  void c3AfterARestartTakesWhatWasRoutedAfterTheAbort() {
    long he = startAndSwitch(); // S saw SWITCH and persisted its side
    long prepareTag = image.version() - 1;
    commit(new Command.AbortHandover(0, he, "test"));
    long abortTag = image.version();
    commit(new Command.RegisterServer("U", "u:1", 1.0)); // S restarts at a later version
    Participant s2 = restarted(s, "S", image, List.of());
    // Before: the first version S saw the abort at was the bound; the same reordering.
    assertEquals(Placement.POST_ABORT, s2.place(H, abortTag, "p").placement());
    assertEquals(Placement.REFUSE, s2.place(H, prepareTag, "q").placement(), "C3");
  }

  @Test
  void aSourceThatNeverSawTheSwitchHoldsArrivalsUntilTheHandback() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    t.onMap(image);
    commit(new Command.HandoverReady(0, he));
    t.onMap(image);
    commit(new Command.AbortHandover(0, he, "test")); // S was down through all of it
    Participant s2 = restarted(s, "S", image, List.of());
    var d = s2.place(H, image.version(), "p");
    assertEquals(Placement.WAIT, d.placement(), "cannot tell a pre-abort tag from a later one");
    assertEquals(image.version() + 1, d.version());
    assertEquals(TransferVerdict.ACCEPT,
        s2.acceptTransfer(0, he, Direction.REVERSE, image.version()));
    s2.onTransferStored(0, he, Direction.REVERSE);
    assertEquals(Placement.QUEUE, s2.place(H, image.version(), "p").placement(),
        "once the handback is in, the sealed target refuses, and order needs no C3");
  }
}
