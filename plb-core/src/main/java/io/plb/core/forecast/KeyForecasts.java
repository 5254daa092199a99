package io.plb.core.forecast;

import java.util.Collections;
import java.util.Map;
import java.util.NavigableSet;
import java.util.TreeMap;

/**
 * One {@link SeriesForecaster} per tracked hot key (identified by its 64-bit key hash), advanced
 * together one bucket at a time. The caller decides which keys are hot ({@link #track}, {@link
 * #untrack}); a key tracked mid-way starts with zeros before it. Refits are spread by key: a key
 * refits when {@code bucket mod refitEvery} equals a fixed mix of its hash.
 *
 * <p>Not thread-safe: one owner calls it. Pure and deterministic (keys are kept in hash order).
 */
public final class KeyForecasts {
  private final ForecasterConfig config;
  private final int maxKeys;
  private final TreeMap<Long, SeriesForecaster> keys = new TreeMap<>(Long::compareUnsigned);
  private long buckets;

  public KeyForecasts(ForecasterConfig config, int maxKeys) {
    if (config == null) {
      throw new IllegalArgumentException("config must not be null");
    }
    Checks.atLeast("maxKeys", maxKeys, 1);
    this.config = config;
    this.maxKeys = maxKeys;
  }

  public long buckets() {
    return buckets;
  }

  /** The tracked key hashes in unsigned order. */
  public NavigableSet<Long> keys() {
    return Collections.unmodifiableNavigableSet(keys.navigableKeySet());
  }

  /**
   * Starts forecasting {@code key}; it has seen zeros so far. No effect if already tracked.
   *
   * @throws IllegalArgumentException if {@code maxKeys} keys are tracked already
   */
  public void track(long key) {
    if (keys.containsKey(key)) {
      return;
    }
    if (keys.size() >= maxKeys) {
      throw new IllegalArgumentException(
          "already tracking maxKeys = " + maxKeys + " keys; untrack one first");
    }
    keys.put(key, new SeriesForecaster(config, phase(key), buckets));
  }

  public void untrack(long key) {
    keys.remove(key);
  }

  private int phase(long key) {
    long h = key * 0x9E3779B97F4A7C15L;
    h ^= h >>> 32;
    return (int) Math.floorMod(h, (long) config.refitEvery());
  }

  /**
   * Takes one bucket: the rate of each tracked key ({@code 0} for tracked keys not in the map).
   * All values are checked before any is applied.
   *
   * @throws IllegalArgumentException for a key that is not tracked or a NaN, infinite or negative
   *     rate
   */
  public void observe(Map<Long, Double> rates) {
    if (rates == null) {
      throw new IllegalArgumentException("rates must not be null");
    }
    for (Map.Entry<Long, Double> e : rates.entrySet()) {
      if (e.getKey() == null || !keys.containsKey(e.getKey())) {
        throw new IllegalArgumentException("key " + e.getKey() + " is not tracked");
      }
      Double v = e.getValue();
      if (v == null || !Double.isFinite(v) || v < 0) {
        throw new IllegalArgumentException(
            "rate of key " + e.getKey() + " must be a finite number >= 0, got " + v);
      }
    }
    for (Map.Entry<Long, SeriesForecaster> e : keys.entrySet()) {
      e.getValue().observe(rates.getOrDefault(e.getKey(), 0.0));
    }
    buckets++;
  }

  /** The forecaster of a tracked key, or null. */
  public SeriesForecaster series(long key) {
    return keys.get(key);
  }

  /** A tracked key's forecast. */
  public Forecast forecast(long key, int steps) {
    SeriesForecaster s = keys.get(key);
    if (s == null) {
      throw new IllegalArgumentException("key " + key + " is not tracked");
    }
    return s.forecast(steps);
  }
}
