package io.plb.core.load;

/**
 * The load figures of one slice (or one server) over one period: counters of what arrived and
 * left, and two gauges of what waits.
 *
 * <ul>
 *   <li>{@code messagesIn}, {@code bytesIn}: messages accepted from producers and their payload
 *       bytes.
 *   <li>{@code messagesOut}, {@code bytesOut}: messages delivered to consumers (a redelivery counts
 *       again: it is work done) and their payload bytes.
 *   <li>{@code queueDepth}: messages queued, delivered ones not yet acknowledged included.
 *   <li>{@code oldestAgeMillis}: how long the oldest of them has waited since it was accepted.
 * </ul>
 *
 * <p>Two ways to combine figures: {@link #plus} for two sources over the same period (two servers
 * that both serve a slice during a handover) — counters and depth add, the age is the larger; and
 * {@link #then} for one source over consecutive periods — counters add, the gauges keep their peak.
 * Both are commutative and associative, so the result does not depend on the order reports arrive
 * in. Counters saturate at {@code Long.MAX_VALUE} instead of wrapping.
 *
 * <p>Immutable. Every figure is non-negative once {@link #problem()} is null.
 */
public record LoadFigures(
    long messagesIn,
    long bytesIn,
    long messagesOut,
    long bytesOut,
    long queueDepth,
    long oldestAgeMillis) {

  public static final LoadFigures ZERO = new LoadFigures(0, 0, 0, 0, 0, 0);

  /** Whether every figure is 0: a slice with such figures is left out of reports and history. */
  public boolean isZero() {
    return messagesIn == 0 && bytesIn == 0 && messagesOut == 0 && bytesOut == 0
        && queueDepth == 0 && oldestAgeMillis == 0;
  }

  /** Two sources over the same period: counters and depth add; the oldest age is the larger. */
  public LoadFigures plus(LoadFigures o) {
    return new LoadFigures(
        add(messagesIn, o.messagesIn),
        add(bytesIn, o.bytesIn),
        add(messagesOut, o.messagesOut),
        add(bytesOut, o.bytesOut),
        add(queueDepth, o.queueDepth),
        Math.max(oldestAgeMillis, o.oldestAgeMillis));
  }

  /** One source over this period and then the next: counters add; the gauges keep their peak. */
  public LoadFigures then(LoadFigures o) {
    return new LoadFigures(
        add(messagesIn, o.messagesIn),
        add(bytesIn, o.bytesIn),
        add(messagesOut, o.messagesOut),
        add(bytesOut, o.bytesOut),
        Math.max(queueDepth, o.queueDepth),
        Math.max(oldestAgeMillis, o.oldestAgeMillis));
  }

  /** What is wrong with these figures (a negative one), or null. */
  public String problem() {
    if (messagesIn < 0) {
      return "messages_in is negative (" + messagesIn + ")";
    }
    if (bytesIn < 0) {
      return "bytes_in is negative (" + bytesIn + ")";
    }
    if (messagesOut < 0) {
      return "messages_out is negative (" + messagesOut + ")";
    }
    if (bytesOut < 0) {
      return "bytes_out is negative (" + bytesOut + ")";
    }
    if (queueDepth < 0) {
      return "queue_depth is negative (" + queueDepth + ")";
    }
    if (oldestAgeMillis < 0) {
      return "oldest_age_millis is negative (" + oldestAgeMillis + ")";
    }
    return null;
  }

  /** Saturating addition of two non-negative counts. */
  static long add(long a, long b) {
    long s = a + b;
    return s < 0 ? Long.MAX_VALUE : s;
  }
}
