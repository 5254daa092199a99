package io.plb.core.time;

/**
 * A source of monotonic nanoseconds, injected wherever PLB measures elapsed time, so tests and the
 * simulator can drive time themselves. {@link #SYSTEM} is the only place that reads the real clock.
 */
@FunctionalInterface
public interface Ticker {
  Ticker SYSTEM = System::nanoTime;

  long nanos();

  default long millis() {
    return nanos() / 1_000_000L;
  }
}
