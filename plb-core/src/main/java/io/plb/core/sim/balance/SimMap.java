package io.plb.core.sim.balance;

import io.plb.core.keyspace.Ring;
import java.util.Arrays;

/**
 * The mutable shard map of one simulated strategy: sorted, slice-aligned ranges covering the
 * whole ring, each with its owner and the time it last moved, plus a per-slice owner table kept in
 * step so the simulator can route a slice's load in O(1).
 *
 * <p>Invariants (checked by {@link #checkInvariants}): {@code start[0] == 0}; starts strictly
 * increase and stay below 4096; every slice's owner is its range's owner.
 *
 * <p>Not thread-safe; owned by one simulation run.
 */
public final class SimMap implements SimMapView {
  private final int servers;
  private int n;
  private int[] start;
  private int[] owner;
  private long[] lastMoved;
  private final int[] sliceOwner = new int[Ring.SLICES];

  /**
   * {@code units} equal ranges, handed out in contiguous blocks: range i goes to server
   * {@code i × servers / units}, so with {@code units == servers} the map is one equal hash range
   * per server, and with more units it is the same split cut finer.
   */
  public SimMap(int servers, int units) {
    if (units < servers || units > Ring.SLICES || Integer.bitCount(units) != 1) {
      throw new IllegalArgumentException("units must be a power of two in [servers, 4096]");
    }
    this.servers = servers;
    this.n = units;
    this.start = new int[units];
    this.owner = new int[units];
    this.lastMoved = new long[units];
    int width = Ring.SLICES / units;
    for (int i = 0; i < units; i++) {
      start[i] = i * width;
      owner[i] = (int) ((long) i * servers / units);
      lastMoved[i] = Long.MIN_VALUE;
      Arrays.fill(sliceOwner, i * width, (i + 1) * width, owner[i]);
    }
  }

  @Override
  public int servers() {
    return servers;
  }

  @Override
  public int rangeCount() {
    return n;
  }

  @Override
  public int startSlice(int range) {
    return start[range];
  }

  @Override
  public int endSlice(int range) {
    return range + 1 < n ? start[range + 1] : Ring.SLICES;
  }

  @Override
  public int owner(int range) {
    return owner[range];
  }

  @Override
  public long lastMovedMillis(int range) {
    return lastMoved[range];
  }

  @Override
  public int indexOfStart(int startSlice) {
    int i = Arrays.binarySearch(start, 0, n, startSlice);
    return i >= 0 ? i : -1;
  }

  @Override
  public int indexOfSlice(int slice) {
    int i = Arrays.binarySearch(start, 0, n, slice);
    return i >= 0 ? i : -i - 2;
  }

  @Override
  public int ownerOfSlice(int slice) {
    return sliceOwner[slice];
  }

  /** Gives range {@code range} to {@code to}, stamping the move time. */
  void move(int range, int to, long nowMillis) {
    owner[range] = to;
    lastMoved[range] = nowMillis;
    Arrays.fill(sliceOwner, start[range], endSlice(range), to);
  }

  /** Cuts range {@code range} at {@code atSlice}; both halves keep its owner and move time. */
  void split(int range, int atSlice) {
    if (atSlice <= start[range] || atSlice >= endSlice(range)) {
      throw new IllegalArgumentException("split point outside the range");
    }
    if (n == start.length) {
      int cap = Math.min(Ring.SLICES, n * 2);
      start = Arrays.copyOf(start, cap);
      owner = Arrays.copyOf(owner, cap);
      lastMoved = Arrays.copyOf(lastMoved, cap);
    }
    System.arraycopy(start, range + 1, start, range + 2, n - range - 1);
    System.arraycopy(owner, range + 1, owner, range + 2, n - range - 1);
    System.arraycopy(lastMoved, range + 1, lastMoved, range + 2, n - range - 1);
    start[range + 1] = atSlice;
    owner[range + 1] = owner[range];
    lastMoved[range + 1] = lastMoved[range];
    n++;
  }

  /** Joins range {@code range} with the next; the later move time is kept. */
  void merge(int range) {
    if (range + 1 >= n || owner[range] != owner[range + 1]) {
      throw new IllegalArgumentException("merge needs a right neighbour of the same owner");
    }
    lastMoved[range] = Math.max(lastMoved[range], lastMoved[range + 1]);
    System.arraycopy(start, range + 2, start, range + 1, n - range - 2);
    System.arraycopy(owner, range + 2, owner, range + 1, n - range - 2);
    System.arraycopy(lastMoved, range + 2, lastMoved, range + 1, n - range - 2);
    n--;
  }

  /** Throws {@link IllegalStateException} if an invariant does not hold. */
  public void checkInvariants() {
    if (n < 1 || start[0] != 0) {
      throw new IllegalStateException("map does not start at slice 0");
    }
    for (int i = 0; i < n; i++) {
      if (i > 0 && start[i] <= start[i - 1]) {
        throw new IllegalStateException("starts not increasing at range " + i);
      }
      if (owner[i] < 0 || owner[i] >= servers) {
        throw new IllegalStateException("bad owner at range " + i);
      }
      for (int s = start[i]; s < endSlice(i); s++) {
        if (sliceOwner[s] != owner[i]) {
          throw new IllegalStateException("slice " + s + " owner out of step");
        }
      }
    }
  }
}
