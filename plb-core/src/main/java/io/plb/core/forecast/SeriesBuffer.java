package io.plb.core.forecast;

/**
 * The most recent observations of one series, equally spaced (one value per bucket), addressed by
 * absolute bucket index: index 0 is the first value ever appended, {@link #end()} the next one.
 * Only the last {@link #capacity()} values are held, as {@code float}s (a rate needs no more
 * precision, and a leader holds thousands of these).
 *
 * <p>Not thread-safe. Invariants: {@code start() = max(0, end() - capacity())}; every held value
 * is finite and {@code >= 0}.
 */
public final class SeriesBuffer {
  private final float[] values;
  private long end;

  public SeriesBuffer(int capacity) {
    this(capacity, 0);
  }

  /**
   * A buffer whose first {@code zeros} values (indices {@code 0 .. zeros - 1}) are zero: a series
   * that was idle until now, without appending each zero.
   */
  public SeriesBuffer(int capacity, long zeros) {
    Checks.atLeast("capacity", capacity, 1);
    Checks.atLeast("zeros", zeros, 0);
    this.values = new float[capacity];
    this.end = zeros;
  }

  /** A buffer holding exactly {@code history} (validated: finite, {@code >= 0}). */
  public static SeriesBuffer of(double[] history) {
    if (history == null) {
      throw new IllegalArgumentException("history must not be null");
    }
    SeriesBuffer b = new SeriesBuffer(Math.max(1, history.length));
    for (double v : history) {
      b.append(v);
    }
    return b;
  }

  /** Appends the next bucket's value; rejects NaN, infinities and negative values. */
  public void append(double value) {
    Checks.observation(value);
    values[(int) (end % values.length)] = (float) value;
    end++;
  }

  public int capacity() {
    return values.length;
  }

  /** Index of the oldest value still held. */
  public long start() {
    return Math.max(0, end - values.length);
  }

  /** Index of the next value to be appended (the number appended so far). */
  public long end() {
    return end;
  }

  /** The value at absolute index {@code t}, which must lie in {@code [start(), end())}. */
  public double get(long t) {
    if (t < start() || t >= end) {
      throw new IndexOutOfBoundsException(
          "index " + t + " is outside the held range [" + start() + ", " + end + ")");
    }
    return values[(int) (t % values.length)];
  }

  /** The values at {@code [from, to)} as a new array. */
  public double[] toArray(long from, long to) {
    if (from < start() || to > end || from > to) {
      throw new IndexOutOfBoundsException(
          "range [" + from + ", " + to + ") is outside the held range [" + start() + ", " + end
              + ")");
    }
    int n = (int) (to - from);
    double[] out = new double[n];
    int cap = values.length;
    int i = (int) (from % cap);
    for (int k = 0; k < n; k++) {
      out[k] = values[i];
      if (++i == cap) {
        i = 0;
      }
    }
    return out;
  }
}
