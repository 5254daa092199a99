package io.plb.core.command;

import io.plb.core.command.Command.AssignRange;
import io.plb.core.command.Command.MergeRanges;
import io.plb.core.command.Command.RegisterServer;
import io.plb.core.command.Command.RemoveServer;
import io.plb.core.command.Command.SetPinned;
import io.plb.core.command.Command.SplitRange;
import io.plb.core.command.Command.UpdateServer;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.List;

/**
 * Validates a {@link Command} against an image and computes the {@link MapDelta} it produces: a
 * pure function {@code (image, command, version) -> delta}, with no I/O, clock or randomness.
 *
 * <p>The leader calls it before proposing (so bad input never reaches the Raft log) and every
 * replica calls it again when applying (the state may have moved between the two); both give the
 * same answer for the same image, so a rejection at apply time is identical on every replica.
 */
public final class CommandProcessor {
  /** Capacity of a server registered without one. */
  public static final double DEFAULT_CAPACITY = 1.0;

  private CommandProcessor() {}

  /**
   * The delta {@code command} produces when applied to {@code image} as the entry at
   * {@code version}.
   *
   * @throws PlbException when the command is invalid or illegal in this state; nothing changes
   */
  public static MapDelta process(ClusterImage image, Command command, long version) {
    if (version <= image.version()) {
      throw new PlbException(
          ErrorCode.INTERNAL,
          "entry " + version + " does not follow map version " + image.version());
    }
    Builder out = new Builder(image.version(), version, command.describe(),
        Command.causeOf(command));
    if (command instanceof RegisterServer c) {
      register(image, c, out);
    } else if (command instanceof UpdateServer c) {
      update(image, c, out);
    } else if (command instanceof RemoveServer c) {
      remove(image, c, out);
    } else if (command instanceof SplitRange c) {
      split(image, c, out);
    } else if (command instanceof Command.SplitEvenly c) {
      splitEvenly(image, c, out);
    } else if (command instanceof MergeRanges c) {
      merge(image, c, out);
    } else if (command instanceof AssignRange c) {
      assign(image, c, out);
    } else if (command instanceof SetPinned c) {
      pin(image, c, out);
    } else if (command instanceof Command.StartHandover c) {
      Handovers.start(image, c, out::upsertRange);
    } else if (command instanceof Command.HandoverReady c) {
      Handovers.ready(image, c, out::upsertRange, out::ignore);
    } else if (command instanceof Command.HandoverDrained c) {
      Handovers.drained(image, c, out::upsertRange, out::ignore);
    } else if (command instanceof Command.AbortHandover c) {
      Handovers.abort(image, c, out::upsertRange, out::ignore);
    } else if (command instanceof Command.FinishAbort c) {
      Handovers.finishAbort(image, c, out::upsertRange, out::ignore);
    } else if (command instanceof Command.ExpireAbort c) {
      Handovers.expireAbort(image, c, out::upsertRange, out::ignore);
    } else if (command instanceof Command.ForceHandover c) {
      Handovers.force(image, c, out::upsertRange);
    } else if (command instanceof Command.AppendLoadSamples) {
      throw PlbException.invalid(
          "load samples change the load history, not the map: apply them with LoadHistory");
    } else if (command instanceof Command.SetBalancerPaused) {
      throw PlbException.invalid(
          "pausing the balancer changes its state, not the map: apply it with BalancerState");
    } else if (command instanceof Command.OpenProducer) {
      throw PlbException.invalid("opening a producer changes no state; its entry's index is all");
    } else {
      throw PlbException.invalid("unknown command " + command);
    }
    return out.build();
  }

  /** Validates without producing anything. @throws PlbException as {@link #process} would */
  public static void validate(ClusterImage image, Command command) {
    process(image, command, image.version() + 1);
  }

  private static void register(ClusterImage image, RegisterServer c, Builder out) {
    Limits.checkServerId(c.id());
    Limits.checkAddress(c.address());
    double capacity = c.capacity() == null ? DEFAULT_CAPACITY : c.capacity();
    Limits.checkCapacity(capacity);
    if (image.server(c.id()) != null) {
      throw PlbException.precondition("server " + c.id() + " is already registered");
    }
    out.upsertServer(new QueueServerInfo(c.id(), c.address(), capacity, ServerState.ACTIVE));
  }

  private static void update(ClusterImage image, UpdateServer c, Builder out) {
    QueueServerInfo current = existingServer(image, c.id());
    String address = current.address();
    if (c.address() != null) {
      Limits.checkAddress(c.address());
      address = c.address();
    }
    double capacity = current.capacity();
    if (c.capacity() != null) {
      Limits.checkCapacity(c.capacity());
      capacity = c.capacity();
    }
    ServerState state = c.state() == null ? current.state() : c.state();
    QueueServerInfo next = new QueueServerInfo(c.id(), address, capacity, state);
    if (next.equals(current)) {
      throw PlbException.invalid("update of server " + c.id() + " changes nothing");
    }
    out.upsertServer(next);
  }

  private static void remove(ClusterImage image, RemoveServer c, Builder out) {
    existingServer(image, c.id());
    List<RangeEntry> held = image.rangesOf(c.id());
    if (!held.isEmpty()) {
      throw PlbException.precondition(
          "server " + c.id() + " still owns or receives " + held.size()
              + " range(s), first " + held.get(0).rangeText() + "; move them away first");
    }
    out.removeServer(c.id());
  }

  private static void split(ClusterImage image, SplitRange c, Builder out) {
    RangeEntry r = existingRange(image, c.rangeStart());
    if (!Ring.strictlyInside(r.start(), r.end(), c.at())) {
      String where = c.at() == r.start() ? "at its start" : "outside it";
      throw PlbException.invalid(
          "split point " + Ring.hex(c.at()) + " is " + where + ": range " + r.rangeText()
              + " can only be split strictly inside");
    }
    requireNoHandover(r, "split");
    out.removeRange(r.start());
    out.upsertRange(r.withBounds(r.start(), c.at()));
    out.upsertRange(r.withBounds(c.at(), r.end()));
  }

  private static void splitEvenly(ClusterImage image, Command.SplitEvenly c, Builder out) {
    if (c.maxPieces() < 2 || c.maxPieces() > Limits.MAX_SPLIT_PIECES) {
      throw PlbException.invalid("the limit on split pieces must be 2.." + Limits.MAX_SPLIT_PIECES
          + ", got " + c.maxPieces());
    }
    if (c.pieces() < 2) {
      throw PlbException.invalid(
          "a split into pieces makes at least 2, got " + Integer.toUnsignedString(c.pieces()));
    }
    if (c.pieces() > c.maxPieces()) {
      throw new PlbException(ErrorCode.RESOURCE_EXHAUSTED, "a split makes at most "
          + c.maxPieces() + " pieces (map.maxSplitPieces), asked for " + c.pieces());
    }
    RangeEntry r = existingRange(image, c.rangeStart());
    // The width as an unsigned number (RING_END is 0, so end - start is right for the last range
    // too); the whole ring's, 2^64, does not fit: take 2^64 - 1, which only the last piece, the
    // one taking the remainder, can tell apart.
    long width = r.end() - r.start();
    if (width == 0) {
      width = -1L;
    }
    long step = Long.divideUnsigned(width, c.pieces());
    if (step == 0) {
      throw PlbException.invalid("range " + r.rangeText() + " is narrower than " + c.pieces()
          + " hashes: it cannot be split into that many pieces");
    }
    requireNoHandover(r, "split");
    out.removeRange(r.start());
    for (int i = 0; i < c.pieces(); i++) {
      long start = r.start() + i * step;
      long end = i + 1 == c.pieces() ? r.end() : start + step;
      out.upsertRange(r.withBounds(start, end));
    }
  }

  private static void merge(ClusterImage image, MergeRanges c, Builder out) {
    RangeEntry left = existingRange(image, c.leftStart());
    RangeEntry right = existingRange(image, c.rightStart());
    if (left.end() != right.start() || left.end() == Ring.RING_END) {
      throw PlbException.invalid(
          "ranges " + left.rangeText() + " and " + right.rangeText()
              + " are not adjacent (the first must end where the second starts)");
    }
    if (!left.owner().equals(right.owner())) {
      throw PlbException.precondition(
          "ranges " + left.rangeText() + " and " + right.rangeText()
              + " have different owners (" + ownerText(left) + ", " + ownerText(right)
              + "); move one first");
    }
    requireNoHandover(left, "merge");
    requireNoHandover(right, "merge");
    out.removeRange(left.start());
    out.removeRange(right.start());
    out.upsertRange(
        new RangeEntry(
            left.start(),
            right.end(),
            left.owner(),
            Math.max(left.epoch(), right.epoch()),
            null,
            left.pinned() || right.pinned()));
  }

  private static void assign(ClusterImage image, AssignRange c, Builder out) {
    RangeEntry r = existingRange(image, c.rangeStart());
    Limits.checkServerId(c.owner());
    QueueServerInfo server = existingServer(image, c.owner());
    if (server.state() != ServerState.ACTIVE) {
      throw PlbException.precondition(
          "server " + c.owner() + " is " + server.state() + "; only ACTIVE servers take ranges");
    }
    requireNoHandover(r, "assign");
    if (r.owner().equals(c.owner())) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is already owned by " + c.owner());
    }
    if (r.isAssigned() && !c.force()) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is owned by " + r.owner()
              + "; moving a range that carries traffic needs a handover "
              + "(assign with force only while setting a cluster up)");
    }
    out.upsertRange(r.withOwner(c.owner(), r.epoch() + 1));
  }

  private static void pin(ClusterImage image, SetPinned c, Builder out) {
    RangeEntry r = existingRange(image, c.rangeStart());
    if (r.pinned() == c.pinned()) {
      throw PlbException.precondition(
          "range " + r.rangeText() + " is already " + (c.pinned() ? "pinned" : "unpinned"));
    }
    out.upsertRange(r.withPinned(c.pinned()));
  }

  static QueueServerInfo existingServer(ClusterImage image, String id) {
    Limits.checkServerId(id);
    QueueServerInfo s = image.server(id);
    if (s == null) {
      throw PlbException.notFound("no queue server with id " + id);
    }
    return s;
  }

  static RangeEntry existingRange(ClusterImage image, long start) {
    int i = image.indexOfStart(start);
    if (i < 0) {
      RangeEntry containing = image.rangeFor(start);
      throw PlbException.notFound(
          "no range starts at " + Ring.hex(start) + "; it lies in range "
              + containing.rangeText());
    }
    return image.range(i);
  }

  static void requireNoHandover(RangeEntry r, String action) {
    if (r.handover() != null) {
      throw PlbException.precondition(
          "cannot " + action + " range " + r.rangeText() + " during its handover to "
              + r.handover().target() + " (" + r.handover().phase() + ")");
    }
  }

  private static String ownerText(RangeEntry r) {
    return r.isAssigned() ? r.owner() : "unassigned";
  }

  /** Collects the parts of one delta. */
  private static final class Builder {
    private final long prevVersion;
    private final long version;
    private final String cause;
    private final io.plb.core.map.ActionCause actionCause;
    private final ArrayList<Long> removedRanges = new ArrayList<>();
    private final ArrayList<RangeEntry> upsertedRanges = new ArrayList<>();
    private final ArrayList<String> removedServers = new ArrayList<>();
    private final ArrayList<QueueServerInfo> upsertedServers =
        new ArrayList<>();

    Builder(long prevVersion, long version, String cause,
        io.plb.core.map.ActionCause actionCause) {
      this.prevVersion = prevVersion;
      this.version = version;
      this.cause = cause;
      this.actionCause = actionCause;
    }

    void removeRange(long start) {
      removedRanges.add(start);
    }

    void upsertRange(RangeEntry r) {
      upsertedRanges.add(r);
    }

    void removeServer(String id) {
      removedServers.add(id);
    }

    void upsertServer(QueueServerInfo s) {
      upsertedServers.add(s);
    }

    private String ignoredBecause;

    /** The command is a late or duplicated report: it changes nothing. */
    void ignore(String why) {
      ignoredBecause = why;
    }

    MapDelta build() {
      return new MapDelta(
          version, prevVersion, removedRanges, upsertedRanges, removedServers, upsertedServers,
          ignoredBecause == null ? cause : "ignored " + cause + ": " + ignoredBecause,
          ignoredBecause == null ? actionCause : null);
    }
  }
}
