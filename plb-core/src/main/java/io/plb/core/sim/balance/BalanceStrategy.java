package io.plb.core.sim.balance;

import java.util.List;
import java.util.Map;

/**
 * A way of balancing that the simulator replays on a trace: it sees each minute's load after the
 * minute has passed ({@link #observe}) and, at every planning interval, returns the actions it
 * wants ({@link #plan}). It never sees the future — except the {@code oracle}, which is built with
 * the load matrix itself. The simulator applies the actions with their cost (the hold) and
 * enforces the same budgets on every strategy.
 *
 * <p>Called by one thread, in virtual time order: {@code observe(0), plan(1), observe(1), plan(2),
 * ...}. Deterministic: the same inputs give the same actions.
 */
public interface BalanceStrategy {
  /** The name reported in the results ({@code reactive-ewma:0.1}). */
  String name();

  /** The load of a minute that has just ended; the view is only valid during the call. */
  void observe(MinuteLoad load);

  /** The actions to take now, in order. */
  List<SimAction> plan(PlanContext context);

  /** Figures of the strategy's own to add to its results (e.g. forecast accuracy). */
  default Map<String, Object> report() {
    return Map.of();
  }
}
