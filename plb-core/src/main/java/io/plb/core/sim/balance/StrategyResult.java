package io.plb.core.sim.balance;

import java.util.Map;

/**
 * What one strategy achieved on one trace: the summary figures, the log of its moves, and
 * per-minute series for plots. Immutable (the arrays are not copied; do not modify them).
 *
 * @param name the strategy
 * @param overloadSeconds time a server's queueing delay exceeded the threshold, summed over servers
 * @param p99DelaySeconds 99th percentile of queueing delay over messages
 * @param p50MaxMean median of max/mean server utilisation over busy minutes
 * @param p99MaxMean 99th percentile of the same
 * @param moves ranges handed to another server
 * @param splits ranges cut in two
 * @param merges neighbouring ranges joined
 * @param rejected actions the simulator refused (over budget, unknown range, ...)
 * @param loadMoved sum over moves of the moved range's load in the minute of the move, in server
 *     capacities
 * @param heldMessages messages that arrived during a hold and reached the target in its lump
 * @param holdSecondsMean mean estimated hold per move: the larger of the hold and the source's
 *     queueing delay when the move started (the source must deliver the range's earlier messages
 *     before the target may)
 * @param holdSecondsMax the largest such estimate
 * @param delayedMessages messages that waited longer than the overload threshold
 * @param messages messages served in the window
 * @param extra the strategy's own figures (forecast accuracy, ...)
 * @param moveLog every move, in order
 * @param series per-minute series
 */
public record StrategyResult(
    String name,
    double overloadSeconds,
    double p99DelaySeconds,
    double p50MaxMean,
    double p99MaxMean,
    int moves,
    int splits,
    int merges,
    int rejected,
    double loadMoved,
    double heldMessages,
    double holdSecondsMean,
    double holdSecondsMax,
    double delayedMessages,
    double messages,
    Map<String, Object> extra,
    MoveLog moveLog,
    Series series) {

  /** The moves of a run as columns; {@code size()} entries. */
  public record MoveLog(long[] millis, int[] startSlice, int[] endSlice, int[] from, int[] to,
      double[] load) {
    public int size() {
      return millis.length;
    }
  }

  /**
   * Per-minute series: {@code utilisation[server][minute]} (offered cost / capacity),
   * {@code maxMean[minute]} (max/mean utilisation; NaN when no load), {@code busy[minute]} and
   * {@code overloadSeconds[minute]} (summed over servers).
   */
  public record Series(long startMillis, float[][] utilisation, float[] maxMean,
      boolean[] busy, float[] overloadSeconds) {}
}
