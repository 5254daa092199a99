package io.plb.core.sim.balance;

/**
 * What a strategy asks the simulator to do with the map. Ranges are named by their start slice,
 * which stays valid while the map changes within a round. The simulator validates every action
 * (range exists, budgets, dwell, same owner for a merge) and counts the ones it refuses.
 */
public sealed interface SimAction {

  /** Hand the range starting at {@code startSlice} to server {@code to} (with the hold). */
  record Move(int startSlice, int to) implements SimAction {}

  /** Cut the range starting at {@code startSlice} in two at slice {@code atSlice}. */
  record Split(int startSlice, int atSlice) implements SimAction {}

  /** Join the range starting at {@code leftStartSlice} with the next one (same owner only). */
  record Merge(int leftStartSlice) implements SimAction {}
}
