package io.plb.core.sim.balance;

/**
 * The load of one minute, per slice with load, as telemetry would report it: cost and messages
 * arriving in the minute. A reusable view into the {@link LoadMatrix}; valid only during the
 * {@link BalanceStrategy#observe} call it is passed to.
 */
public final class MinuteLoad {
  private final LoadMatrix matrix;
  private int minute;
  private int from;
  private int to;

  MinuteLoad(LoadMatrix matrix) {
    this.matrix = matrix;
  }

  MinuteLoad at(int m) {
    this.minute = m;
    this.from = matrix.rowStart(m);
    this.to = matrix.rowEnd(m);
    return this;
  }

  /** The minute's index from the window's start. */
  public int minute() {
    return minute;
  }

  /** The minute's start, epoch milliseconds. */
  public long startMillis() {
    return matrix.millisOf(minute);
  }

  /** Number of slices with load in the minute. */
  public int count() {
    return to - from;
  }

  /** The i-th slice with load (ascending). */
  public int slice(int i) {
    return matrix.slice(from + i);
  }

  /** Cost arriving on the i-th slice during the minute. */
  public double cost(int i) {
    return matrix.cost(from + i);
  }

  /** Messages arriving on the i-th slice during the minute. */
  public double messages(int i) {
    return matrix.messages(from + i);
  }

  /** Cost arriving on all slices during the minute. */
  public double aggregateCost() {
    return matrix.aggregateCost(minute);
  }
}
