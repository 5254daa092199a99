package io.plb.core.time;

/**
 * Wall-clock time in microseconds since the epoch, injected wherever PLB stamps or ages a message
 * (acceptance times travel between servers, so they are wall-clock, not {@link Ticker} time).
 * {@link #SYSTEM} is the only place that reads the real wall clock.
 */
@FunctionalInterface
public interface WallClock {
  WallClock SYSTEM = () -> {
    java.time.Instant now = java.time.Instant.now();
    return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
  };

  long micros();
}
