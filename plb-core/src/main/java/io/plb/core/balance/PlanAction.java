package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import java.util.Objects;

/**
 * One step of a {@link Plan}. Steps apply in order: a step may name a range that an earlier step
 * of the same plan created (a move of one half of a split, a merge of a range merged just before).
 */
public sealed interface PlanAction {
  Cause cause();

  /** One line for people. */
  String describe();

  /** Hand range {@code [rangeStart, rangeEnd)} from {@code from} to {@code to} (a handover). */
  record Move(long rangeStart, long rangeEnd, String from, String to, Cause cause)
      implements PlanAction {
    public Move {
      Objects.requireNonNull(from, "from");
      Objects.requireNonNull(to, "to");
      Objects.requireNonNull(cause, "cause");
    }

    @Override
    public String describe() {
      return "move " + Ring.formatRange(rangeStart, rangeEnd) + " " + from + " -> " + to + ": "
          + cause.detail();
    }
  }

  /** Split the range starting at {@code rangeStart} so that a new range starts at {@code at}. */
  record Split(long rangeStart, long at, Cause cause) implements PlanAction {
    public Split {
      Objects.requireNonNull(cause, "cause");
    }

    @Override
    public String describe() {
      return "split range at " + Ring.hex(rangeStart) + " at " + Ring.hex(at) + ": "
          + cause.detail();
    }
  }

  /** Merge the range starting at {@code leftStart} with the one starting at {@code rightStart}. */
  record Merge(long leftStart, long rightStart, Cause cause) implements PlanAction {
    public Merge {
      Objects.requireNonNull(cause, "cause");
    }

    @Override
    public String describe() {
      return "merge ranges at " + Ring.hex(leftStart) + " and " + Ring.hex(rightStart) + ": "
          + cause.detail();
    }
  }
}
