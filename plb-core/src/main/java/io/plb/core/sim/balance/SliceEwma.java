package io.plb.core.sim.balance;

import io.plb.core.keyspace.Ring;
import java.util.Arrays;

/**
 * An exponentially weighted moving average of each slice's cost per minute — the reactive
 * estimate of current load. A range's estimate is the sum of its slices' (the average is linear).
 * The first observed minute initialises every slice.
 *
 * <p>Costs O(slices with load) per minute: values are stored divided by a common decay factor
 * that shrinks each minute (renormalised now and then), so quiet slices need no update.
 *
 * <p>Not thread-safe.
 */
public final class SliceEwma {
  private static final double RENORMALISE_BELOW = 1e-200;

  private final double alpha;
  private final double[] scaled = new double[Ring.SLICES];
  private double factor = 1; // value(s) = scaled[s] * factor
  private boolean started;
  private final boolean[] seen = new boolean[Ring.SLICES];
  private int[] seenSorted = new int[0];
  private boolean seenChanged;

  /** @param halfLifeMinutes minutes after which an observation's weight has halved */
  public SliceEwma(double halfLifeMinutes) {
    if (!(halfLifeMinutes > 0)) {
      throw new IllegalArgumentException("half-life must be > 0");
    }
    this.alpha = 1 - Math.pow(0.5, 1.0 / halfLifeMinutes);
  }

  public void observe(MinuteLoad load) {
    double take;
    if (started) {
      factor *= 1 - alpha;
      if (factor < RENORMALISE_BELOW) {
        for (int s = 0; s < Ring.SLICES; s++) {
          scaled[s] *= factor;
        }
        factor = 1;
      }
      take = alpha / factor;
    } else {
      take = 1;
      started = true;
    }
    for (int i = 0; i < load.count(); i++) {
      int s = load.slice(i);
      scaled[s] += take * load.cost(i);
      if (!seen[s]) {
        seen[s] = true;
        seenChanged = true;
      }
    }
  }

  /** The estimate for {@code slice}, cost per minute. */
  public double slice(int slice) {
    return scaled[slice] * factor;
  }

  /** Slices that have had load so far, ascending. */
  public int[] seenSlices() {
    if (seenChanged) {
      int n = 0;
      for (boolean b : seen) {
        n += b ? 1 : 0;
      }
      int[] out = new int[n];
      for (int s = 0, j = 0; s < Ring.SLICES; s++) {
        if (seen[s]) {
          out[j++] = s;
        }
      }
      seenSorted = out;
      seenChanged = false;
    }
    return seenSorted;
  }

  /**
   * The estimates of the ranges of {@code map} that hold any slice seen so far (others are 0),
   * cost per second, and each server's total. The returned object is reused by the next call.
   */
  public RangeLoads rangeLoads(SimMapView map) {
    int[] slices = seenSlices();
    RangeLoads r = loads;
    if (r == null || r.range.length < slices.length || r.server.length != map.servers()) {
      r = new RangeLoads(Math.max(16, slices.length), map.servers());
      loads = r;
    }
    r.count = 0;
    Arrays.fill(r.server, 0.0);
    int end = 0;
    for (int s : slices) {
      if (s >= end) {
        int range = map.indexOfSlice(s);
        end = map.endSlice(range);
        r.range[r.count] = range;
        r.rate[r.count] = 0;
        r.count++;
      }
      r.rate[r.count - 1] += scaled[s];
    }
    double perSecond = factor / 60.0;
    for (int i = 0; i < r.count; i++) {
      r.rate[i] *= perSecond;
      r.server[map.owner(r.range[i])] += r.rate[i];
    }
    return r;
  }

  private RangeLoads loads;

  /** Range estimates: {@code count} ranges (ascending index) with their rates; server totals. */
  public static final class RangeLoads {
    public int count;
    public final int[] range;
    public final double[] rate;
    public final double[] server;

    RangeLoads(int capacity, int servers) {
      this.range = new int[capacity];
      this.rate = new double[capacity];
      this.server = new double[servers];
    }
  }
}
