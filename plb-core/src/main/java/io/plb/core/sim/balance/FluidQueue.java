package io.plb.core.sim.balance;

/**
 * One server's queue as a fluid: work (cost) arrives at a piecewise-constant rate and in lumps,
 * and is served at the server's capacity; the backlog carries over from one piece to the next.
 * A message arriving at time t waits {@code backlog(t) / capacity} (FIFO).
 *
 * <p>Within a piece of constant rate the backlog is linear in time (until it empties), so both
 * the time spent with a delay above the overload threshold and the distribution of delays over
 * the messages that arrive are computed exactly (percentiles to the {@link DelayHistogram}'s
 * resolution).
 *
 * <p>Not thread-safe; one per simulated server.
 */
public final class FluidQueue {
  private final double capacity;
  private final double overloadDelay;
  private final DelayHistogram delays;
  private double backlog;
  private double overloadSeconds;
  private double delayedMessages;
  private double messages;

  /**
   * @param capacity cost served per second, > 0
   * @param overloadDelay delay in seconds above which the server counts as overloaded
   * @param delays where the delays of arriving messages are recorded (may be shared by servers)
   */
  public FluidQueue(double capacity, double overloadDelay, DelayHistogram delays) {
    if (!(capacity > 0)) {
      throw new IllegalArgumentException("capacity must be > 0, got " + capacity);
    }
    this.capacity = capacity;
    this.overloadDelay = overloadDelay;
    this.delays = delays;
  }

  /** Work that arrives at once: it joins the queue behind the backlog. */
  public void addLump(double cost, double msgs) {
    if (cost <= 0 && msgs <= 0) {
      return;
    }
    double d0 = backlog / capacity;
    double d1 = (backlog + cost) / capacity;
    recordUniform(d0, d1, msgs);
    backlog += cost;
  }

  /**
   * Runs the queue for {@code seconds} while cost arrives at {@code costRate} per second and
   * messages at {@code msgRate} per second.
   */
  public void advance(double seconds, double costRate, double msgRate) {
    if (seconds <= 0) {
      return;
    }
    double slope = costRate - capacity;
    if (backlog <= 0 && slope <= 0) {
      backlog = 0;
      recordUniform(0, 0, msgRate * seconds);
      return;
    }
    if (slope >= 0) {
      double b1 = backlog + slope * seconds;
      linear(backlog, b1, seconds, msgRate);
      backlog = b1;
      return;
    }
    double toEmpty = backlog / -slope;
    if (toEmpty >= seconds) {
      double b1 = Math.max(0, backlog + slope * seconds);
      linear(backlog, b1, seconds, msgRate);
      backlog = b1;
    } else {
      linear(backlog, 0, toEmpty, msgRate);
      recordUniform(0, 0, msgRate * (seconds - toEmpty));
      backlog = 0;
    }
  }

  private void linear(double b0, double b1, double seconds, double msgRate) {
    double level = overloadDelay * capacity;
    overloadSeconds += timeAbove(b0, b1, seconds, level);
    recordUniform(b0 / capacity, b1 / capacity, msgRate * seconds);
  }

  /** Time a linear function from {@code b0} to {@code b1} over {@code seconds} is above level. */
  static double timeAbove(double b0, double b1, double seconds, double level) {
    boolean above0 = b0 > level;
    boolean above1 = b1 > level;
    if (above0 && above1) {
      return seconds;
    }
    if (!above0 && !above1) {
      return 0;
    }
    double cross = (level - b0) / (b1 - b0) * seconds;
    return above0 ? cross : seconds - cross;
  }

  private void recordUniform(double d0, double d1, double mass) {
    if (mass <= 0) {
      return;
    }
    messages += mass;
    delays.addUniform(d0, d1, mass);
    double lo = Math.min(d0, d1);
    double hi = Math.max(d0, d1);
    if (lo > overloadDelay) {
      delayedMessages += mass;
    } else if (hi > overloadDelay) {
      delayedMessages += mass * (hi - overloadDelay) / (hi - lo);
    }
  }

  /** Queued cost not yet served. */
  public double backlog() {
    return backlog;
  }

  /** The delay a message arriving now would see, in seconds. */
  public double delay() {
    return backlog / capacity;
  }

  public double capacity() {
    return capacity;
  }

  /** Seconds so far with a delay above the overload threshold. */
  public double overloadSeconds() {
    return overloadSeconds;
  }

  /** Messages so far that waited more than the overload threshold. */
  public double delayedMessages() {
    return delayedMessages;
  }

  /** Messages so far. */
  public double messages() {
    return messages;
  }
}
