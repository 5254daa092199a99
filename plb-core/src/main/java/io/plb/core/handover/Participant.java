package io.plb.core.handover;

import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The hold rules of one queue server (DESIGN §5, rules C1–C3): where each arriving message goes,
 * and what the server must do as the map moves a range's handover along. Pure and deterministic:
 * the queue-server agent feeds it map versions, arrivals and transfer events, and carries out the
 * {@link Action}s it returns against its durable store. The deterministic simulation drives the
 * same class.
 *
 * <p>Thread model: not thread-safe. The agent calls it under the one lock that also guards its
 * store's range state, which makes "seal and take the hold buffer" one step (C1): once
 * {@link #onBacklogEmpty} has returned the transfer, every later {@link #place} of the range is
 * refused.
 *
 * <p>Buffers a server keeps per handover {@code (range, handoverEpoch)}:
 * <ul>
 *   <li>source: {@link Buffer#HOLD} (arrivals after it saw SWITCH), {@link Buffer#POST_ABORT}
 *       (arrivals after an abort, tagged at or after the abort's version) and
 *       {@link Buffer#RETURNED} (what the target handed back after an abort);
 *   <li>target: {@link Buffer#PREFIX} (the source's transfer) and {@link Buffer#HELD} (arrivals
 *       while it is the target).
 * </ul>
 * Released buffers go to the server's deliverable queue in the order the {@link Action.Release}
 * lists them, behind whatever the queue already holds for each key.
 */
public final class Participant {

  /** Where an arriving message goes. */
  public enum Placement {
    /** The deliverable queue: the server owns the range. */
    QUEUE,
    /** The source's hold buffer (SWITCH, not yet sealed). */
    HOLD,
    /** The target's held queue (SWITCH). */
    HELD,
    /** The source after an abort from SWITCH, before the target's handback arrived. */
    POST_ABORT,
    /** Not this server's to take: answer WRONG_OWNER with {@link Decision#version()}. */
    REFUSE,
    /**
     * The message was routed under a map this server has not applied yet: wait for
     * {@link Decision#version()} (C2). Also a source that restarted into an aborted handover it
     * never saw in SWITCH: wait for the next version, until the target's handback is in.
     */
    WAIT
  }

  /** The buffers of one handover. */
  public enum Buffer { HOLD, HELD, PREFIX, POST_ABORT, RETURNED }

  /** Which way a transfer goes. */
  public enum Direction {
    /** Source to target: the sealed hold buffer. */
    FORWARD,
    /** Target to source after an abort: everything the target held. */
    REVERSE
  }

  /**
   * A placement decision.
   *
   * @param rangeStart the range the message falls in
   * @param handoverEpoch the handover the buffer belongs to (0 for QUEUE and REFUSE)
   * @param version the server's map version (for WRONG_OWNER) or the version to wait for (WAIT)
   */
  public record Decision(Placement placement, long rangeStart, long handoverEpoch, long version) {}

  /** Work for the agent. */
  public sealed interface Action {
    long rangeStart();

    long handoverEpoch();

    /** Tell the leader the held queue is open (PREPARE → SWITCH). */
    record ReportReady(long rangeStart, long handoverEpoch) implements Action {}

    /** Call {@link #onBacklogEmpty} once the range's pre-switch backlog is fully acknowledged. */
    record AwaitBacklog(long rangeStart, long handoverEpoch) implements Action {}

    /**
     * Send these buffers, in this order, to {@code to}; then call {@link #onTransferAcked} or
     * {@link #onTransferRefused}. The range is already sealed here. Sent even when empty.
     */
    record Transfer(long rangeStart, long handoverEpoch, Direction direction, String to,
        List<Buffer> buffers) implements Action {}

    /** Tell the leader the source is drained (SWITCH → COMPLETE). */
    record ReportDrained(long rangeStart, long handoverEpoch) implements Action {}

    /** Tell the leader the aborted handover is reversed (ABORT_SWITCH → cleared). */
    record ReportReversed(long rangeStart, long handoverEpoch) implements Action {}

    /** Move these buffers, in this order, to the deliverable queue. */
    record Release(long rangeStart, long handoverEpoch, List<Buffer> buffers) implements Action {}

    /** Delete these buffers: their messages now live on the other server. */
    record Discard(long rangeStart, long handoverEpoch, List<Buffer> buffers) implements Action {}

    /**
     * This server lost the range without handing it over (it was declared DOWN and the range was
     * moved by a forced handover), or cannot tell how its handover ended (it missed the versions
     * that ended it): send every message it still holds for the range — queue and buffers — to
     * the current owner as late messages, or back into its own queue, marked late, if it owns
     * the range again.
     */
    record Orphaned(long rangeStart, long handoverEpoch) implements Action {}
  }

  /** What to do with an arriving transfer. */
  public enum TransferVerdict {
    /** Store it durably (PREFIX on a target, RETURNED on a source), then acknowledge. */
    ACCEPT,
    /** Refuse it: the handover it belongs to is over or was reversed. */
    REFUSE,
    /** It was sent under a map this server has not applied yet: wait for that version (C2). */
    WAIT,
    /** This server already stored it (a resend after a lost ack): acknowledge, store nothing. */
    DUPLICATE
  }

  /**
   * What this server knows of one handover it takes part in; persisted by the agent.
   * {@code bufferTransferred} means, on a source, that the target acknowledged our hold buffer
   * and, on a target, that the source acknowledged our handback after an abort.
   *
   * <p>{@code switchVersion} is, on a source, the first map version at which it saw this
   * handover in SWITCH (0 if it first saw it aborted): the bound of rule C3. On a target it is
   * the first map version at which it saw this handover (in PREPARE, normally): its held queue
   * takes only messages tagged at or after it (rule C5). Every message routed under this
   * handover's SWITCH is, since the target reports ready only after seeing PREPARE. Taking the
   * first version the target saw SWITCH at instead breaks order after a restart: a target that
   * first sees SWITCH in the full map it gets on restart would refuse a message routed under that
   * SWITCH and accept the producer's next one, tagged later. A side persisted by an older build
   * may hold 0: a target then sets it at SWITCH, a source counts as one that never saw SWITCH.
   */
  public record Side(
      long rangeStart,
      long handoverEpoch,
      boolean source,
      String peer,
      boolean sealed,
      boolean bufferTransferred,
      boolean prefixStored,
      long abortVersion,
      boolean returned,
      long switchVersion) {

    Side with(boolean sealed, boolean bufferTransferred, boolean prefixStored, long abortVersion,
        boolean returned) {
      return new Side(rangeStart, handoverEpoch, source, peer, sealed, bufferTransferred,
          prefixStored, abortVersion, returned, switchVersion);
    }

    Side switchedAt(long version) {
      return new Side(rangeStart, handoverEpoch, source, peer, sealed, bufferTransferred,
          prefixStored, abortVersion, returned, version);
    }
  }

  private final String me;
  private ClusterImage image = ClusterImage.EMPTY;
  private final Map<Long, Side> sides = new HashMap<>();

  public Participant(String serverId) {
    this.me = serverId;
  }

  /** Restores what the agent persisted (after a restart), before the first {@link #onMap}. */
  public void restore(List<Side> persisted) {
    for (Side s : persisted) {
      sides.put(s.rangeStart(), s);
    }
  }

  /** The open handovers this server takes part in, for the agent to persist. */
  public List<Side> sides() {
    return new ArrayList<>(sides.values());
  }

  public Side side(long rangeStart) {
    return sides.get(rangeStart);
  }

  public long version() {
    return image.version();
  }

  // ---------------------------------------------------------------- arrivals

  /**
   * Where a message of ring position {@code hash}, sent by producer session {@code producer}
   * and routed under map {@code tag}, goes.
   *
   * <p>Besides C1–C3 this applies a refusal fence per producer session: once this server has
   * refused a message of a range from a producer at version V, it refuses every message of that
   * range from that producer tagged below V. A producer's pipelined messages can share a tag, so
   * without the fence the first could be refused and a later one accepted once the reason for
   * refusing had passed — an aborted handover cleared, a range come back — and the resent first
   * would land behind it. The producer resends at V or later, so the fence never refuses a
   * resend; other producers are not affected.
   *
   * <p>A fence only has to outlive the messages of its session that could still arrive tagged
   * below V, and those all travel on the session's publish streams to this server, in order: once
   * every such stream has ended here, whatever the producer had not got an answer for comes again
   * on a new stream, in its sequence order, so the refused message comes before anything it had
   * sent after it. The agent then drops the session's fences ({@link #dropFences}); a restart,
   * which ends every stream, keeps none.
   */
  public Decision place(long hash, long tag, String producer) {
    if (tag > image.version()) {
      return new Decision(Placement.WAIT, 0, 0, tag); // C2
    }
    RangeEntry r = image.rangeFor(hash);
    if (tag < fenceOf(producer, hash)) {
      return refuse(r);
    }
    Decision d = decide(r, tag);
    if (d.placement() == Placement.REFUSE) {
      raiseFence(producer, r.start(), r.end(), image.version());
    }
    return d;
  }

  private Decision decide(RangeEntry r, long tag) {
    Side side = sides.get(r.start());
    if (r.handover() == null) {
      return r.owner().equals(me) ? queue(r) : refuse(r);
    }
    long he = r.epoch() + 1;
    HandoverPhase phase = r.handover().phase();
    if (r.owner().equals(me)) {
      switch (phase) {
        case PREPARE:
          return queue(r);
        case SWITCH:
          return side != null && side.sealed() ? refuse(r)
              : new Decision(Placement.HOLD, r.start(), he, image.version());
        case ABORT_SWITCH:
          // C3: refuse what was routed under the pre-abort map. Tags from the SWITCH commit to
          // the abort were routed to the target and never reach us, so the first version at
          // which we saw SWITCH separates the two as well as the abort's own version does — and
          // unlike the version at which we first saw the abort, it is exact after a restart
          // that skipped versions (refusing a message routed after the abort would let the
          // producer's next one overtake it). A source that never saw SWITCH cannot tell them
          // apart. It holds every arrival (WAIT, re-examined at each new version) until the
          // handback is in: from then on the target, sealed, refuses, so nothing sent later can
          // come back ahead of what we take. Refusing instead would not do: the refusal fence
          // refuses by tag, and a pipelined later message can carry the same tag.
          if (side == null) {
            return refuse(r);
          }
          if (side.switchVersion() > 0 && tag < side.switchVersion()) {
            return refuse(r);
          }
          if (side.switchVersion() == 0 && !side.returned()) {
            return new Decision(Placement.WAIT, r.start(), he, image.version() + 1);
          }
          return side.returned() ? queue(r)
              : new Decision(Placement.POST_ABORT, r.start(), he, image.version());
        default:
          return refuse(r);
      }
    }
    // C5: only messages routed under this handover's SWITCH, so none tagged before we first saw
    // this handover. One tagged earlier was routed under an older entry — a previous, aborted
    // attempt to move the range here — and may overtake a message the producer sent later to the
    // source, which will reach us in the prefix.
    if (r.handover().target().equals(me) && phase == HandoverPhase.SWITCH
        && side != null && !side.sealed() && side.switchVersion() > 0
        && tag >= side.switchVersion()) {
      return new Decision(Placement.HELD, r.start(), he, image.version());
    }
    return refuse(r);
  }

  /**
   * A refusal fence: messages of {@code producer} in {@code [start, end)} tagged below
   * {@code version} are refused.
   */
  public record Fence(String producer, long start, long end, long version) {}

  private final Map<String, List<Fence>> fences = new HashMap<>();

  private long fenceOf(String producer, long hash) {
    List<Fence> list = fences.get(producer);
    long v = 0;
    if (list != null) {
      for (Fence f : list) {
        if (io.plb.core.keyspace.Ring.contains(f.start(), f.end(), hash)) {
          v = Math.max(v, f.version());
        }
      }
    }
    return v;
  }

  private void raiseFence(String producer, long start, long end, long version) {
    List<Fence> list = fences.computeIfAbsent(producer, k -> new ArrayList<>());
    list.removeIf(f -> f.start() == start && f.end() == end && f.version() <= version);
    list.add(new Fence(producer, start, end, version));
  }

  /** The refusal fences. */
  public List<Fence> fences() {
    List<Fence> out = new ArrayList<>();
    for (List<Fence> list : fences.values()) {
      out.addAll(list);
    }
    return out;
  }

  /**
   * Drops every refusal fence of producer session {@code producer}: call it once no message of
   * the session sent before its refusals can still arrive (see {@link #place}). True if it had
   * any.
   */
  public boolean dropFences(String producer) {
    return fences.remove(producer) != null;
  }

  /** Producer sessions holding refusal fences here. */
  public int fencedProducers() {
    return fences.size();
  }

  private Decision queue(RangeEntry r) {
    return new Decision(Placement.QUEUE, r.start(), 0, image.version());
  }

  private Decision refuse(RangeEntry r) {
    return new Decision(Placement.REFUSE, r.start(), 0, image.version());
  }

  // ---------------------------------------------------------------- map versions

  /** A new applied map version. Returns what the agent must do, in order. */
  public List<Action> onMap(ClusterImage next) {
    List<Action> out = new ArrayList<>();
    image = next;
    // Handovers that ended, or changed under us.
    for (Side s : new ArrayList<>(sides.values())) {
      int i = next.indexOfStart(s.rangeStart());
      RangeEntry r = i < 0 ? null : next.range(i);
      boolean stillOpen = r != null && r.handover() != null && r.epoch() + 1 == s.handoverEpoch();
      if (stillOpen) {
        continue;
      }
      sides.remove(s.rangeStart());
      long he = s.handoverEpoch();
      // Only an entry at exactly the handover's epoch says how it ended. A server that was down
      // sees just the latest map and may have missed that version: the range may have been
      // forced away and moved on since. What we hold is then sent on as late, never dropped.
      boolean atEnd = r != null && r.epoch() == he;
      if (s.source()) {
        if (s.bufferTransferred()) {
          // The target stored our hold buffer durably: it delivers it, hands it back or sends it
          // on itself.
          out.add(new Action.Discard(s.rangeStart(), he, List.of(Buffer.HOLD)));
        }
        boolean completed = atEnd && r.owner().equals(s.peer()) && s.abortVersion() == 0
            && s.bufferTransferred();
        // We report the reversal only after releasing everything, and it clears the handover.
        boolean reversed = r != null && r.owner().equals(me) && s.returned();
        if (!completed && !reversed) {
          // Moved without our drain or reversal (a forced handover while we were DOWN, maybe
          // moved back since): what we hold goes to the owner as late messages.
          out.add(new Action.Orphaned(s.rangeStart(), he));
        }
      } else {
        // The range that now holds the handover's start: its own, or — once merged into its left
        // neighbour (both ours; a merge takes the larger epoch) — the merged one.
        RangeEntry now = r != null ? r : next.rangeFor(s.rangeStart());
        if (now.owner().equals(me) && now.epoch() >= he) {
          if (s.abortVersion() > 0) {
            // Forced to us after we began handing everything back: the source may have stored
            // the handback and delivered it before it went down, so what we still hold may be
            // a second copy. Late, like everything else a force leaves behind.
            out.add(new Action.Orphaned(s.rangeStart(), he));
          } else {
            // COMPLETE (or a forced handover to us), perhaps versions ago: the prefix first,
            // then what we held. (Nothing moves a range away from a target that has not seen
            // its handover end, except a forced handover — which makes what we hold late anyway.)
            out.add(new Action.Release(s.rangeStart(), he, List.of(Buffer.PREFIX, Buffer.HELD)));
          }
        } else if (atEnd && r.owner().equals(s.peer())) {
          // Aborted: from PREPARE nothing was held; after a reversal the source has confirmed,
          // by reporting it, that it stored everything we handed back.
          out.add(new Action.Discard(s.rangeStart(), he, List.of(Buffer.PREFIX, Buffer.HELD)));
        } else {
          // Forced to a third server, or ended in versions we did not see: what we hold may be
          // the only copy of acknowledged messages.
          out.add(new Action.Orphaned(s.rangeStart(), he));
        }
      }
    }
    // Handovers we take part in.
    for (RangeEntry r : next.ranges()) {
      if (r.handover() == null) {
        continue;
      }
      long he = r.epoch() + 1;
      HandoverPhase phase = r.handover().phase();
      Side s = sides.get(r.start());
      if (s != null && s.handoverEpoch() != he) {
        s = null;
      }
      if (r.owner().equals(me)) {
        if (s == null && phase != HandoverPhase.PREPARE) {
          s = new Side(r.start(), he, true, r.handover().target(), false, false, false, 0, false,
              phase == HandoverPhase.SWITCH ? next.version() : 0);
          sides.put(r.start(), s);
          if (phase == HandoverPhase.SWITCH) {
            out.add(new Action.AwaitBacklog(r.start(), he));
          }
        }
        if (s != null && phase == HandoverPhase.ABORT_SWITCH && s.abortVersion() == 0) {
          sides.put(r.start(), s.with(s.sealed(), s.bufferTransferred(), s.prefixStored(),
              next.version(), s.returned()));
        }
      } else if (r.handover().target().equals(me)) {
        if (s == null) {
          s = new Side(r.start(), he, false, r.owner(), false, false, false, 0, false,
              next.version());
          sides.put(r.start(), s);
          out.add(new Action.ReportReady(r.start(), he));
        }
        if (phase == HandoverPhase.SWITCH && s.switchVersion() == 0) {
          s = s.switchedAt(next.version());
          sides.put(r.start(), s);
        }
        if (phase == HandoverPhase.ABORT_SWITCH && !s.sealed()) {
          // Run the protocol backwards: seal, and hand everything back to the source.
          sides.put(r.start(), s.with(true, s.bufferTransferred(), s.prefixStored(),
              next.version(), s.returned()));
          out.add(new Action.Transfer(r.start(), he, Direction.REVERSE, r.owner(),
              List.of(Buffer.PREFIX, Buffer.HELD)));
        }
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- source side

  /**
   * The range's pre-switch backlog is fully acknowledged by consumers. C1: seal the range and
   * take the hold buffer in one step, then send it (even empty).
   */
  public List<Action> onBacklogEmpty(long rangeStart) {
    Side s = sides.get(rangeStart);
    RangeEntry r = current(rangeStart);
    if (s == null || !s.source() || s.sealed() || r == null || r.handover() == null
        || r.handover().phase() != HandoverPhase.SWITCH) {
      return List.of();
    }
    sides.put(rangeStart, s.with(true, false, false, 0, false));
    return List.of(new Action.Transfer(rangeStart, s.handoverEpoch(), Direction.FORWARD,
        s.peer(), List.of(Buffer.HOLD)));
  }

  /** The other server stored our transfer durably. */
  public List<Action> onTransferAcked(long rangeStart, long handoverEpoch, Direction direction) {
    Side s = sides.get(rangeStart);
    if (s == null || s.handoverEpoch() != handoverEpoch) {
      return List.of();
    }
    if (direction == Direction.FORWARD) {
      if (s.returned()) {
        return List.of(); // the ack lost a race with the handback; the leader has moved on
      }
      sides.put(rangeStart, s.with(true, true, s.prefixStored(), s.abortVersion(), s.returned()));
      return List.of(new Action.ReportDrained(rangeStart, handoverEpoch));
    }
    // The source has everything we held: our copies go.
    if (s.bufferTransferred()) {
      return List.of();
    }
    sides.put(rangeStart, s.with(s.sealed(), true, s.prefixStored(), s.abortVersion(),
        s.returned()));
    return List.of(new Action.Discard(rangeStart, handoverEpoch,
        List.of(Buffer.PREFIX, Buffer.HELD)));
  }

  /**
   * The target refused our forward transfer: it has already reversed the handover. We keep the
   * hold buffer and proceed as on abort.
   */
  public List<Action> onTransferRefused(long rangeStart, long handoverEpoch) {
    return List.of();
  }

  // ---------------------------------------------------------------- receiving transfers

  /**
   * Whether to accept a transfer sent under map {@code tag}; the agent stores an accepted one
   * durably, then acknowledges it. Transfers carry message ids, and the agent drops ids it already
   * holds, so a transfer stored twice (a lost acknowledgement) delivers nothing twice.
   */
  public TransferVerdict acceptTransfer(long rangeStart, long handoverEpoch, Direction direction,
      long tag) {
    if (tag > image.version()) {
      return TransferVerdict.WAIT;
    }
    Side s = sides.get(rangeStart);
    if (s == null || s.handoverEpoch() != handoverEpoch) {
      return TransferVerdict.REFUSE;
    }
    if (direction == Direction.FORWARD) {
      if (s.source() || s.sealed()) {
        return TransferVerdict.REFUSE; // a target that reversed refuses
      }
      return s.prefixStored() ? TransferVerdict.DUPLICATE : TransferVerdict.ACCEPT;
    }
    if (!s.source() || s.abortVersion() == 0) {
      return TransferVerdict.REFUSE;
    }
    return s.returned() ? TransferVerdict.DUPLICATE : TransferVerdict.ACCEPT;
  }

  /**
   * An accepted transfer is stored (as {@link Buffer#PREFIX} on a target, {@link Buffer#RETURNED}
   * on a source). On a source this finishes the reversal: release in order, then report.
   */
  public List<Action> onTransferStored(long rangeStart, long handoverEpoch, Direction direction) {
    Side s = sides.get(rangeStart);
    if (s == null || s.handoverEpoch() != handoverEpoch) {
      return List.of();
    }
    if (direction == Direction.FORWARD) {
      sides.put(rangeStart, s.with(s.sealed(), s.bufferTransferred(), true, s.abortVersion(),
          s.returned()));
      return List.of();
    }
    if (s.returned()) {
      return List.of(new Action.ReportReversed(rangeStart, handoverEpoch));
    }
    sides.put(rangeStart, s.with(false, s.bufferTransferred(), s.prefixStored(),
        s.abortVersion(), true));
    // The backlog is already in the queue; then our hold buffer (unless the target had it and
    // just returned it), the target's handback, and what arrived after the abort.
    if (s.bufferTransferred()) {
      // The target had our hold buffer as its prefix and returned it first.
      return List.of(
          new Action.Discard(rangeStart, handoverEpoch, List.of(Buffer.HOLD)),
          new Action.Release(rangeStart, handoverEpoch,
              List.of(Buffer.RETURNED, Buffer.POST_ABORT)),
          new Action.ReportReversed(rangeStart, handoverEpoch));
    }
    return List.of(
        new Action.Release(rangeStart, handoverEpoch,
            List.of(Buffer.HOLD, Buffer.RETURNED, Buffer.POST_ABORT)),
        new Action.ReportReversed(rangeStart, handoverEpoch));
  }

  /**
   * The reports and transfers still owed, for the agent to send again on a timer: calls get lost,
   * and every one of them is idempotent, keyed by {@code (range, handoverEpoch)}. A resent
   * transfer carries the same buffers (frozen once sealed), and the receiver acknowledges one it
   * already stored without storing it again.
   */
  public List<Action> resend() {
    List<Action> out = new ArrayList<>();
    for (Side s : sides.values()) {
      RangeEntry r = current(s.rangeStart());
      if (r == null || r.handover() == null || r.epoch() + 1 != s.handoverEpoch()) {
        continue;
      }
      HandoverPhase phase = r.handover().phase();
      long he = s.handoverEpoch();
      if (s.source()) {
        if (phase == HandoverPhase.SWITCH && !s.sealed()) {
          // Still waiting for the backlog (again after a restart, which forgets the wait).
          out.add(new Action.AwaitBacklog(s.rangeStart(), he));
        } else if (phase == HandoverPhase.SWITCH && s.sealed() && !s.bufferTransferred()) {
          out.add(new Action.Transfer(s.rangeStart(), he, Direction.FORWARD, s.peer(),
              List.of(Buffer.HOLD)));
        } else if (phase == HandoverPhase.SWITCH && s.bufferTransferred()) {
          out.add(new Action.ReportDrained(s.rangeStart(), he));
        } else if (phase == HandoverPhase.ABORT_SWITCH && s.returned()) {
          out.add(new Action.ReportReversed(s.rangeStart(), he));
        }
      } else {
        if (phase == HandoverPhase.PREPARE && !s.sealed()) {
          out.add(new Action.ReportReady(s.rangeStart(), he));
        } else if (phase == HandoverPhase.ABORT_SWITCH && s.sealed() && !s.bufferTransferred()) {
          out.add(new Action.Transfer(s.rangeStart(), he, Direction.REVERSE, s.peer(),
              List.of(Buffer.PREFIX, Buffer.HELD)));
        }
      }
    }
    return out;
  }

  private RangeEntry current(long rangeStart) {
    int i = image.indexOfStart(rangeStart);
    return i < 0 ? null : image.range(i);
  }
}
