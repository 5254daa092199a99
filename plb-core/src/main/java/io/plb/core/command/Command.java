package io.plb.core.command;

import io.plb.core.keyspace.Ring;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.LoadBucket;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ServerState;

/**
 * A change to PLB's replicated state, as it is written to the Raft log. Each variant but one is
 * applied to the map by {@link CommandProcessor}, which validates it against the current image
 * first; {@link AppendLoadSamples} is applied to the load history by
 * {@link io.plb.core.load.LoadHistory}, which validates it against the history's state.
 */
public sealed interface Command {

  /** A short text for logs and for the delta's {@code cause}. */
  String describe();

  record RegisterServer(String id, String address, Double capacity) implements Command {
    public String describe() {
      return "register server " + id + " at " + address;
    }
  }

  /** Null fields are left unchanged. */
  record UpdateServer(String id, String address, Double capacity, ServerState state)
      implements Command {
    public String describe() {
      return "update server " + id;
    }
  }

  record RemoveServer(String id) implements Command {
    public String describe() {
      return "remove server " + id;
    }
  }

  /**
   * Split the range starting at {@code rangeStart} so that a new range starts at {@code at}.
   * {@code cause} is set when the balancer decided it, null for an operator's split.
   */
  record SplitRange(long rangeStart, long at, ActionCause cause) implements Command {
    public SplitRange(long rangeStart, long at) {
      this(rangeStart, at, null);
    }

    public String describe() {
      return "split range at " + Ring.hex(at);
    }
  }

  /**
   * Split the range starting at {@code rangeStart} into {@code pieces} ranges of equal width (the
   * last takes the remainder). {@code maxPieces} is the proposing leader's
   * {@code map.maxSplitPieces}, carried in the entry so that every replica applies the same limit;
   * it is at most {@link Limits#MAX_SPLIT_PIECES}, which bounds the delta.
   */
  record SplitEvenly(long rangeStart, int pieces, int maxPieces) implements Command {
    public String describe() {
      return "split range at " + Ring.hex(rangeStart) + " into " + pieces + " pieces";
    }
  }

  /**
   * Merge the range starting at {@code leftStart} with the one starting at {@code rightStart},
   * which must follow it directly. {@code cause} as for {@link SplitRange}.
   */
  record MergeRanges(long leftStart, long rightStart, ActionCause cause) implements Command {
    public MergeRanges(long leftStart, long rightStart) {
      this(leftStart, rightStart, null);
    }

    public String describe() {
      return "merge ranges at " + Ring.hex(leftStart) + " and "
          + Ring.hex(rightStart);
    }
  }

  record AssignRange(long rangeStart, String owner, boolean force) implements Command {
    public String describe() {
      return "assign range at " + Ring.hex(rangeStart) + " to " + owner
          + (force ? " (forced)" : "");
    }
  }

  record SetPinned(long rangeStart, boolean pinned) implements Command {
    public String describe() {
      return (pinned ? "pin" : "unpin") + " range at "
          + Ring.hex(rangeStart);
    }
  }

  // ---------------------------------------------------------------- handover (DESIGN §5)
  // A handover of a range at epoch e is identified by (range start, e + 1): the epoch the range
  // gets when the move completes. Reports about another handover of the range are recognised as
  // late or duplicated and change nothing.

  /**
   * Opens a handover of the range {@code [rangeStart, rangeEnd)}, at {@code expectedEpoch}, to
   * {@code target}: phase PREPARE. The budgets are checked at apply time, so two leaders (or two
   * operators) cannot overrun them together. {@code cause} is set when the balancer decided the
   * move, null for an operator's.
   */
  record StartHandover(
      long rangeStart, long rangeEnd, long expectedEpoch, String target, int maxPerServer,
      int maxTotal, ActionCause cause) implements Command {
    public StartHandover(long rangeStart, long rangeEnd, long expectedEpoch, String target,
        int maxPerServer, int maxTotal) {
      this(rangeStart, rangeEnd, expectedEpoch, target, maxPerServer, maxTotal, null);
    }

    public String describe() {
      return "start handover of " + Ring.formatRange(rangeStart, rangeEnd) + " to " + target;
    }
  }

  /** The target has opened its held queue: PREPARE becomes SWITCH. */
  record HandoverReady(long rangeStart, long handoverEpoch) implements Command {
    public String describe() {
      return "handover of range at " + Ring.hex(rangeStart) + " ready (epoch " + handoverEpoch
          + ")";
    }
  }

  /**
   * The source has sealed the range and the target has acknowledged its transfer: the target owns
   * the range at {@code handoverEpoch} (COMPLETE).
   */
  record HandoverDrained(long rangeStart, long handoverEpoch) implements Command {
    public String describe() {
      return "handover of range at " + Ring.hex(rangeStart) + " complete (epoch " + handoverEpoch
          + ")";
    }
  }

  /**
   * Aborts a handover: from PREPARE it is cleared; from SWITCH the protocol runs backwards
   * (phase ABORT_SWITCH) until {@link FinishAbort}.
   */
  record AbortHandover(long rangeStart, long handoverEpoch, String reason) implements Command {
    public String describe() {
      return "abort handover of range at " + Ring.hex(rangeStart) + " (epoch " + handoverEpoch
          + "): " + reason;
    }
  }

  /** The source has taken back everything the target held: the aborted handover is cleared. */
  record FinishAbort(long rangeStart, long handoverEpoch) implements Command {
    public String describe() {
      return "aborted handover of range at " + Ring.hex(rangeStart) + " reversed (epoch "
          + handoverEpoch + ")";
    }
  }

  /**
   * The leader ends an ABORT_SWITCH that has not been reversed by its deadline
   * ({@code handover.abortSwitchTimeout}): the owner stays and the epoch grows by two, past the
   * handover's own epoch, so neither side can read the entry as a reversal or an abort it took
   * part in; each hands on what it still holds as late messages (docs/design.md §5 "The
   * ABORT_SWITCH deadline").
   */
  record ExpireAbort(long rangeStart, long handoverEpoch, String reason) implements Command {
    public String describe() {
      return "aborted handover of range at " + Ring.hex(rangeStart) + " (epoch " + handoverEpoch
          + ") ended without its handback: " + reason;
    }
  }

  /**
   * Moves a range off a DOWN owner without a drain (a forced handover): the target owns it at once
   * at the next epoch, and any handover in progress is dropped.
   */
  record ForceHandover(long rangeStart, long expectedEpoch, String target) implements Command {
    public String describe() {
      return "forced handover of range at " + Ring.hex(rangeStart) + " to " + target;
    }
  }

  // ---------------------------------------------------------------- balancer (DESIGN §8)

  /**
   * Pauses or resumes the leader's balancer. Committed state, not part of the map: applying it
   * produces no new map version, and every later leader obeys it.
   */
  record SetBalancerPaused(boolean paused, String by) implements Command {
    public String describe() {
      return (paused ? "pause" : "resume") + " the balancer" + (by == null || by.isEmpty()
          ? "" : " (" + by + ")");
    }
  }

  // ---------------------------------------------------------------- producers (DESIGN §5)

  /**
   * A producer instance with an id the application chose opens: the entry's own Raft index is
   * its epoch. It changes no state at all; the log's order is what makes a restarted instance's
   * epoch higher than every earlier one's.
   */
  record OpenProducer(String producer) implements Command {
    public String describe() {
      return "open producer " + producer;
    }
  }

  /** The automatic cause a command carries, or null (an operator's command, a report). */
  static ActionCause causeOf(Command c) {
    if (c instanceof StartHandover x) {
      return x.cause();
    } else if (c instanceof SplitRange x) {
      return x.cause();
    } else if (c instanceof MergeRanges x) {
      return x.cause();
    }
    return null;
  }

  // ---------------------------------------------------------------- load history (DESIGN §6)

  /**
   * One fine bucket of the cluster's load, summed by the leader from the queue servers' reports,
   * with the history layout the leader used. It changes the load history, not the map: applying it
   * produces no new map version.
   */
  record AppendLoadSamples(HistoryLayout layout, LoadBucket bucket) implements Command {
    public String describe() {
      return bucket == null ? "append load samples"
          : "append load samples of the bucket at " + bucket.startMillis() + " ms ("
              + bucket.slices().size() + " slices, " + bucket.servers().size() + " servers)";
    }
  }
}
