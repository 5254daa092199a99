package io.plb.core.command;

import io.plb.core.command.Command.AbortHandover;
import io.plb.core.command.Command.FinishAbort;
import io.plb.core.command.Command.ForceHandover;
import io.plb.core.command.Command.HandoverDrained;
import io.plb.core.command.Command.HandoverReady;
import io.plb.core.command.Command.StartHandover;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.function.Consumer;

/**
 * The committed side of the hold handover (DESIGN §5): which phase change each report or decision
 * makes to a range's map entry. Pure; called by {@link CommandProcessor}.
 *
 * <p>Phases as committed in the map: no handover → PREPARE → SWITCH → (owner = target, epoch + 1,
 * no handover). An abort clears PREPARE, or turns SWITCH into ABORT_SWITCH, which is cleared by
 * {@link FinishAbort}; clearing an aborted handover also bumps the epoch (the owner stays), so
 * every attempt has an identity of its own. Every report names the handover by {@code (range start, handoverEpoch)}
 * with {@code handoverEpoch = epoch + 1}; a report for an earlier handover, or one whose step has
 * already been taken, is ignored — so every step is idempotent. A report for an epoch the range has
 * not reached is refused: no honest participant can hold it.
 */
final class Handovers {
  private Handovers() {}

  static void start(ClusterImage image, StartHandover c, Consumer<RangeEntry> upsert) {
    RangeEntry r = CommandProcessor.existingRange(image, c.rangeStart());
    if (r.end() != c.rangeEnd()) {
      throw PlbException.precondition(
          "range at " + Ring.hex(c.rangeStart()) + " is now " + r.rangeText()
              + ", not the range the move was planned for");
    }
    if (r.epoch() != c.expectedEpoch()) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is at epoch " + r.epoch() + ", not " + c.expectedEpoch()
              + ": it changed hands since the move was planned");
    }
    if (!r.isAssigned()) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " has no owner; assign it instead of moving it");
    }
    CommandProcessor.requireNoHandover(r, "move");
    Limits.checkServerId(c.target());
    QueueServerInfo target = CommandProcessor.existingServer(image, c.target());
    if (target.state() != ServerState.ACTIVE) {
      throw PlbException.precondition(
          "server " + c.target() + " is " + target.state() + "; only ACTIVE servers take ranges");
    }
    if (r.owner().equals(c.target())) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is already owned by " + c.target());
    }
    if (c.maxPerServer() < 1 || c.maxTotal() < 1) {
      throw PlbException.invalid("handover limits must be at least 1");
    }
    int total = 0;
    int atSource = 0;
    int atTarget = 0;
    for (RangeEntry e : image.ranges()) {
      if (e.handover() == null) {
        continue;
      }
      total++;
      if (involves(e, r.owner())) {
        atSource++;
      }
      if (involves(e, c.target())) {
        atTarget++;
      }
    }
    if (total >= c.maxTotal()) {
      throw new PlbException(ErrorCode.RESOURCE_EXHAUSTED,
          total + " handovers are open; the cluster allows " + c.maxTotal()
              + " at once (handover.maxTotal)");
    }
    if (atSource >= c.maxPerServer() || atTarget >= c.maxPerServer()) {
      String busy = atSource >= c.maxPerServer() ? r.owner() : c.target();
      throw new PlbException(ErrorCode.RESOURCE_EXHAUSTED,
          "server " + busy + " already takes part in " + c.maxPerServer()
              + " handovers (handover.maxPerServer)");
    }
    upsert.accept(withHandover(r, new Handover(c.target(), HandoverPhase.PREPARE)));
  }

  static void ready(ClusterImage image, HandoverReady c, Consumer<RangeEntry> upsert,
      Consumer<String> ignore) {
    RangeEntry r = reported(image, c.rangeStart(), c.handoverEpoch());
    if (!isOpen(r, c.handoverEpoch(), HandoverPhase.PREPARE)) {
      ignore.accept(lateness(r, c.handoverEpoch()));
      return;
    }
    upsert.accept(withHandover(r, new Handover(r.handover().target(), HandoverPhase.SWITCH)));
  }

  static void drained(ClusterImage image, HandoverDrained c, Consumer<RangeEntry> upsert,
      Consumer<String> ignore) {
    RangeEntry r = reported(image, c.rangeStart(), c.handoverEpoch());
    if (!isOpen(r, c.handoverEpoch(), HandoverPhase.SWITCH)) {
      ignore.accept(lateness(r, c.handoverEpoch()));
      return;
    }
    upsert.accept(
        new RangeEntry(r.start(), r.end(), r.handover().target(), c.handoverEpoch(), null,
            r.pinned()));
  }

  static void abort(ClusterImage image, AbortHandover c, Consumer<RangeEntry> upsert,
      Consumer<String> ignore) {
    RangeEntry r = reported(image, c.rangeStart(), c.handoverEpoch());
    if (isOpen(r, c.handoverEpoch(), HandoverPhase.PREPARE)) {
      upsert.accept(closed(r));
    } else if (isOpen(r, c.handoverEpoch(), HandoverPhase.SWITCH)) {
      upsert.accept(
          withHandover(r, new Handover(r.handover().target(), HandoverPhase.ABORT_SWITCH)));
    } else {
      ignore.accept(lateness(r, c.handoverEpoch()));
    }
  }

  static void finishAbort(ClusterImage image, FinishAbort c, Consumer<RangeEntry> upsert,
      Consumer<String> ignore) {
    RangeEntry r = reported(image, c.rangeStart(), c.handoverEpoch());
    if (!isOpen(r, c.handoverEpoch(), HandoverPhase.ABORT_SWITCH)) {
      ignore.accept(lateness(r, c.handoverEpoch()));
      return;
    }
    upsert.accept(closed(r));
  }

  /**
   * Ends an ABORT_SWITCH without the handback: same owner, epoch + 2. The handover's own epoch
   * ({@code epoch + 1}) is skipped, so the entry is neither the reversal's (which a target reads
   * as "the source has everything: discard") nor the handover's completion; both sides take it as
   * a range that moved on in versions they cannot account for, and hand what they hold to the
   * owner as late messages.
   */
  static void expireAbort(ClusterImage image, Command.ExpireAbort c, Consumer<RangeEntry> upsert,
      Consumer<String> ignore) {
    RangeEntry r = reported(image, c.rangeStart(), c.handoverEpoch());
    if (!isOpen(r, c.handoverEpoch(), HandoverPhase.ABORT_SWITCH)) {
      ignore.accept(lateness(r, c.handoverEpoch()));
      return;
    }
    upsert.accept(new RangeEntry(r.start(), r.end(), r.owner(), r.epoch() + 2, null,
        r.pinned()));
  }

  static void force(ClusterImage image, ForceHandover c, Consumer<RangeEntry> upsert) {
    RangeEntry r = CommandProcessor.existingRange(image, c.rangeStart());
    if (r.epoch() != c.expectedEpoch()) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is at epoch " + r.epoch() + ", not " + c.expectedEpoch());
    }
    QueueServerInfo owner = r.isAssigned() ? image.server(r.owner()) : null;
    if (owner == null || owner.state() != ServerState.DOWN) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " can be moved without a drain only off a DOWN server; its "
              + "owner is " + (owner == null ? "nobody" : owner.id() + " (" + owner.state() + ")"));
    }
    Limits.checkServerId(c.target());
    QueueServerInfo target = CommandProcessor.existingServer(image, c.target());
    if (target.state() != ServerState.ACTIVE) {
      throw PlbException.precondition(
          "server " + c.target() + " is " + target.state() + "; only ACTIVE servers take ranges");
    }
    upsert.accept(
        new RangeEntry(r.start(), r.end(), c.target(), r.epoch() + 1, null, r.pinned()));
  }

  // ---------------------------------------------------------------- helpers

  private static RangeEntry reported(ClusterImage image, long start, long handoverEpoch) {
    RangeEntry r = CommandProcessor.existingRange(image, start);
    if (handoverEpoch > r.epoch() + 1) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is at epoch " + r.epoch() + "; no handover with epoch "
              + handoverEpoch + " exists");
    }
    if (handoverEpoch < 1) {
      throw PlbException.invalid("handover epoch must be at least 1, got " + handoverEpoch);
    }
    return r;
  }

  private static boolean isOpen(RangeEntry r, long handoverEpoch, HandoverPhase phase) {
    return r.handover() != null && r.epoch() + 1 == handoverEpoch
        && r.handover().phase() == phase;
  }

  private static String lateness(RangeEntry r, long handoverEpoch) {
    if (handoverEpoch <= r.epoch()) {
      return "the handover with epoch " + handoverEpoch + " is over (range at epoch " + r.epoch()
          + ")";
    }
    return r.handover() == null ? "no handover is open on " + r.rangeText()
        : "the handover is in phase " + r.handover().phase();
  }

  private static boolean involves(RangeEntry e, String server) {
    return e.owner().equals(server) || e.handover().target().equals(server);
  }

  /**
   * The range after an aborted handover is cleared: same owner, next epoch. Bumping the epoch
   * gives the next attempt its own identity {@code (range, epoch + 1)}, so a late report of the
   * aborted attempt can never be taken for a report of the next one.
   */
  private static RangeEntry closed(RangeEntry r) {
    return new RangeEntry(r.start(), r.end(), r.owner(), r.epoch() + 1, null, r.pinned());
  }

  private static RangeEntry withHandover(RangeEntry r, Handover h) {
    return new RangeEntry(r.start(), r.end(), r.owner(), r.epoch(), h, r.pinned());
  }
}
