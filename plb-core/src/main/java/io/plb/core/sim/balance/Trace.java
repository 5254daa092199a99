package io.plb.core.sim.balance;

import java.util.Arrays;

/**
 * A load trace held in memory: events of (time, key hash, size), in the order they were read.
 * Columns are primitive arrays so that millions of events cost tens of megabytes and no objects.
 *
 * <p>Immutable once built; safe to share between threads.
 */
public final class Trace {
  private final String name;
  private final long[] millis;
  private final long[] hashes;
  private final int[] sizes;
  private final int count;
  private final int distinctKeys;
  private final long minMillis;
  private final long maxMillis;

  private Trace(String name, long[] millis, long[] hashes, int[] sizes, int count,
      int distinctKeys) {
    this.name = name;
    this.millis = millis;
    this.hashes = hashes;
    this.sizes = sizes;
    this.count = count;
    this.distinctKeys = distinctKeys;
    long lo = Long.MAX_VALUE;
    long hi = Long.MIN_VALUE;
    for (int i = 0; i < count; i++) {
      lo = Math.min(lo, millis[i]);
      hi = Math.max(hi, millis[i]);
    }
    this.minMillis = lo;
    this.maxMillis = hi;
  }

  public String name() {
    return name;
  }

  /** Number of events. */
  public int size() {
    return count;
  }

  public long millis(int i) {
    return millis[i];
  }

  /** The key's ring position ({@link io.plb.core.keyspace.KeyHash}). */
  public long hash(int i) {
    return hashes[i];
  }

  /** The message size in bytes. */
  public int bytes(int i) {
    return sizes[i];
  }

  /** Distinct keys, as counted by whoever built the trace (0 when unknown). */
  public int distinctKeys() {
    return distinctKeys;
  }

  /** The earliest event time; {@code Long.MAX_VALUE} for an empty trace. */
  public long minMillis() {
    return minMillis;
  }

  /** The latest event time; {@code Long.MIN_VALUE} for an empty trace. */
  public long maxMillis() {
    return maxMillis;
  }

  /** Collects events; not thread-safe. */
  public static final class Builder {
    private final String name;
    private long[] millis = new long[1024];
    private long[] hashes = new long[1024];
    private int[] sizes = new int[1024];
    private int count;

    public Builder(String name) {
      this.name = name;
    }

    public Builder add(long eventMillis, long hash, int bytes) {
      if (bytes < 0) {
        throw new IllegalArgumentException("negative size " + bytes);
      }
      if (count == millis.length) {
        int n = count * 2;
        millis = Arrays.copyOf(millis, n);
        hashes = Arrays.copyOf(hashes, n);
        sizes = Arrays.copyOf(sizes, n);
      }
      millis[count] = eventMillis;
      hashes[count] = hash;
      sizes[count] = bytes;
      count++;
      return this;
    }

    public int size() {
      return count;
    }

    public Trace build(int distinctKeys) {
      return new Trace(name, Arrays.copyOf(millis, count), Arrays.copyOf(hashes, count),
          Arrays.copyOf(sizes, count), count, distinctKeys);
    }
  }
}
