package io.plb.core.balancer;

import io.plb.core.command.Command.SetBalancerPaused;
import io.plb.core.error.PlbException;

/**
 * The balancer's replicated state: whether an operator paused it, and who. Kept by the state
 * machine beside the map (applying a change produces no map version), so a new leader obeys the
 * same setting. Immutable; {@link #apply} is the pure transition used by every replica.
 *
 * @param paused whether automatic actions are paused
 * @param by who paused or resumed it last (free text)
 * @param changedAtIndex the Raft index of the entry that set it; 0 if never set
 */
public record BalancerState(boolean paused, String by, long changedAtIndex) {
  /** Running, never paused. */
  public static final BalancerState INITIAL = new BalancerState(false, "", 0);

  /** Longest {@code by} text kept. */
  public static final int MAX_BY_LENGTH = 128;

  public BalancerState {
    by = by == null ? "" : by;
  }

  /**
   * The state after {@code c}, committed at {@code index}.
   *
   * @throws PlbException FAILED_PRECONDITION when it is already in that state; INVALID_ARGUMENT
   *     for a {@code by} text over {@link #MAX_BY_LENGTH} characters. Nothing changes.
   */
  public BalancerState apply(SetBalancerPaused c, long index) {
    String who = c.by() == null || c.by().isBlank() ? "operator" : c.by().strip();
    if (who.length() > MAX_BY_LENGTH) {
      throw PlbException.invalid("'by' is " + who.length() + " characters; at most "
          + MAX_BY_LENGTH);
    }
    if (c.paused() == paused) {
      throw PlbException.precondition("the balancer is already " + (paused ? "paused" : "running")
          + (by.isEmpty() ? "" : " (set by " + by + ")"));
    }
    return new BalancerState(c.paused(), who, index);
  }
}
