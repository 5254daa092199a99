package io.plb.core.command;

import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;

/**
 * A change to PLB's replicated state, as it is written to the Raft log. Each variant is applied by
 * {@link CommandProcessor}, which validates it against the current image first.
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

  /** Split the range starting at {@code rangeStart} so that a new range starts at {@code at}. */
  record SplitRange(long rangeStart, long at) implements Command {
    public String describe() {
      return "split range at " + Ring.hex(at);
    }
  }

  /**
   * Merge the range starting at {@code leftStart} with the one starting at {@code rightStart},
   * which must follow it directly.
   */
  record MergeRanges(long leftStart, long rightStart) implements Command {
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
}
