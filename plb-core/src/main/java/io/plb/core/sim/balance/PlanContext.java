package io.plb.core.sim.balance;

/**
 * What a strategy may know when it plans: the time, the map, each server's capacity and backlog,
 * the budgets (from the {@link SimConfig}) and how many moves the cluster window still allows.
 * Valid only during the {@link BalanceStrategy#plan} call.
 */
public final class PlanContext {
  private final long nowMillis;
  private final int minute;
  private final SimMapView map;
  private final double capacity;
  private final double[] backlog;
  private final SimConfig config;
  private final int windowMovesLeft;
  private final long[] recentMoves;
  private final java.util.function.IntPredicate inHold;

  PlanContext(long nowMillis, int minute, SimMapView map, double capacity, double[] backlog,
      SimConfig config, int windowMovesLeft, long[] recentMoves,
      java.util.function.IntPredicate inHold) {
    this.nowMillis = nowMillis;
    this.minute = minute;
    this.map = map;
    this.capacity = capacity;
    this.backlog = backlog;
    this.config = config;
    this.windowMovesLeft = windowMovesLeft;
    this.recentMoves = recentMoves;
    this.inHold = inHold;
  }

  /** Whether range {@code range} is in a handover's hold now (it cannot move, split or merge). */
  public boolean inHold(int range) {
    return inHold.test(range);
  }

  public long nowMillis() {
    return nowMillis;
  }

  /** Minutes since the window's start; the strategy has observed minutes 0..minute-1. */
  public int minute() {
    return minute;
  }

  public SimMapView map() {
    return map;
  }

  public int servers() {
    return map.servers();
  }

  /** Each server's capacity, cost per second. */
  public double capacity() {
    return capacity;
  }

  /** Queued cost on {@code server} not yet served. */
  public double backlog(int server) {
    return backlog[server];
  }

  public SimConfig config() {
    return config;
  }

  /** Moves the cluster may still start now without breaking the window budget. */
  public int windowMovesLeft() {
    return windowMovesLeft;
  }

  /** Start times of the moves inside the cluster budget's window, oldest first. */
  public long[] recentMoveMillis() {
    return recentMoves.clone();
  }

  /** Whether range {@code range} has dwelt long enough to move again. */
  public boolean dwellOver(int range) {
    long last = map.lastMovedMillis(range);
    return last == Long.MIN_VALUE || nowMillis - last >= config.minDwellMillis();
  }

  /** Moves this round may start: the per-round and the window budget, whichever is tighter. */
  public int roundMovesAllowed() {
    return Math.min(config.maxMovesPerRound(), windowMovesLeft);
  }
}
