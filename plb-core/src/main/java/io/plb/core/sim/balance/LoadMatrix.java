package io.plb.core.sim.balance;

import io.plb.core.keyspace.Ring;
import java.util.Arrays;

/**
 * A trace turned into load: for every minute of the simulated window, the cost and the messages
 * that arrive on each ring slice ({@link Ring#sliceOf}, 4096 slices), after each event's K messages
 * have been spread evenly over {@code spread} minutes from its minute. Built once per run and
 * shared, read-only, by every strategy (and every thread) of that run.
 *
 * <p>Storage is sparse by minute (compressed rows): a minute lists only the slices with load, in
 * ascending slice order. A message's cost is {@code 1 + size / 1024} (cost per message 1, per
 * byte 1/1024), so an event of {@code size} bytes carries {@code K × (1 + size/1024)} cost.
 *
 * <p>The matrix also fixes what every strategy is measured against: the per-server capacity
 * ({@code headroom × the busiest hour's aggregate cost rate / servers}; hours are UTC clock hours,
 * their rate the mean over the hour's minutes inside the window), the busy minutes, and the grid
 * of units the initial map is cut into.
 *
 * <p>Immutable after {@link #build}; thread-safe.
 */
public final class LoadMatrix {
  /** With automatic units, aim for at most this many non-empty units per server. */
  public static final int AUTO_UNITS_PER_SERVER = 32;

  private final SimConfig config;
  private final long startMillis;
  private final int minutes;
  private final int[] rowStart;
  private final short[] slices;
  private final float[] costs;
  private final float[] messages;
  private final double[] aggregateCost;
  private final int[] activeSlices;
  private final int units;
  private final double peakHourRate;
  private final double capacity;
  private final boolean[] busy;
  private final int busyMinutes;
  private final long events;
  private final double totalMessages;

  private LoadMatrix(SimConfig config, long startMillis, int minutes, int[] rowStart,
      short[] slices, float[] costs, float[] messages, double[] aggregateCost,
      int[] activeSlices, int units, double peakHourRate, boolean[] busy, long events,
      double totalMessages) {
    this.config = config;
    this.startMillis = startMillis;
    this.minutes = minutes;
    this.rowStart = rowStart;
    this.slices = slices;
    this.costs = costs;
    this.messages = messages;
    this.aggregateCost = aggregateCost;
    this.activeSlices = activeSlices;
    this.units = units;
    this.peakHourRate = peakHourRate;
    this.capacity = config.headroom() * peakHourRate / config.servers();
    this.busy = busy;
    int b = 0;
    for (boolean x : busy) {
      b += x ? 1 : 0;
    }
    this.busyMinutes = b;
    this.events = events;
    this.totalMessages = totalMessages;
  }

  /**
   * Spreads and aggregates the events of {@code trace} inside the configured window.
   *
   * @throws IllegalArgumentException when the window holds no event
   */
  public static LoadMatrix build(Trace trace, SimConfig config) {
    if (trace.size() == 0) {
      throw new IllegalArgumentException("trace " + trace.name() + " has no events");
    }
    final long minuteMs = 60_000L;
    long from = config.fromMillis() != SimConfig.UNSET
        ? Math.floorDiv(config.fromMillis(), minuteMs) * minuteMs
        : Math.floorDiv(trace.minMillis(), minuteMs) * minuteMs;
    long to = config.toMillis() != SimConfig.UNSET
        ? Math.floorDiv(config.toMillis() + minuteMs - 1, minuteMs) * minuteMs
        : (Math.floorDiv(trace.maxMillis(), minuteMs) + config.spreadMinutes()) * minuteMs;
    if (to <= from) {
      throw new IllegalArgumentException("the window [" + from + ", " + to + ") is empty");
    }
    long span = (to - from) / minuteMs;
    if (span > 10_000_000L) {
      throw new IllegalArgumentException("the window is " + span + " minutes; at most 10,000,000");
    }
    int m = (int) span;
    int spread = config.spreadMinutes();
    double k = config.scale();

    // Counting sort of the window's events by minute.
    int[] perMinute = new int[m + 1];
    int inWindow = 0;
    boolean[] seen = new boolean[Ring.SLICES];
    for (int i = 0; i < trace.size(); i++) {
      long t = trace.millis(i);
      if (t >= from && t < to) {
        perMinute[(int) ((t - from) / minuteMs) + 1]++;
        inWindow++;
        seen[Ring.sliceOf(trace.hash(i))] = true;
      }
    }
    if (inWindow == 0) {
      throw new IllegalArgumentException("trace " + trace.name() + " has no events in the window");
    }
    for (int i = 0; i < m; i++) {
      perMinute[i + 1] += perMinute[i];
    }
    int[] order = new int[inWindow];
    int[] fill = Arrays.copyOf(perMinute, m);
    for (int i = 0; i < trace.size(); i++) {
      long t = trace.millis(i);
      if (t >= from && t < to) {
        order[fill[(int) ((t - from) / minuteMs)]++] = i;
      }
    }
    int activeCount = 0;
    for (boolean s : seen) {
      activeCount += s ? 1 : 0;
    }
    int[] active = new int[activeCount];
    for (int s = 0, j = 0; s < Ring.SLICES; s++) {
      if (seen[s]) {
        active[j++] = s;
      }
    }

    // Rolling sums over the last `spread` minutes of raw events, per slice.
    double[] sumCost = new double[Ring.SLICES];
    int[] count = new int[Ring.SLICES];
    int[] rowStart = new int[m + 1];
    int cap = Math.max(1024, Math.min(inWindow * spread, 1 << 20));
    short[] sl = new short[cap];
    float[] co = new float[cap];
    float[] me = new float[cap];
    double[] aggregate = new double[m];
    int nz = 0;
    double totalMessages = 0;
    for (int minute = 0; minute < m; minute++) {
      for (int j = perMinute[minute]; j < perMinute[minute + 1]; j++) {
        int e = order[j];
        int s = Ring.sliceOf(trace.hash(e));
        sumCost[s] += k * (1.0 + trace.bytes(e) / 1024.0);
        count[s]++;
      }
      int old = minute - spread;
      if (old >= 0) {
        for (int j = perMinute[old]; j < perMinute[old + 1]; j++) {
          int e = order[j];
          int s = Ring.sliceOf(trace.hash(e));
          if (--count[s] == 0) {
            sumCost[s] = 0; // exact zero: no rounding residue once the slice is quiet
          } else {
            sumCost[s] -= k * (1.0 + trace.bytes(e) / 1024.0);
          }
        }
      }
      rowStart[minute] = nz;
      double agg = 0;
      for (int s : active) {
        if (count[s] > 0) {
          if (nz == sl.length) {
            int n = sl.length * 2;
            sl = Arrays.copyOf(sl, n);
            co = Arrays.copyOf(co, n);
            me = Arrays.copyOf(me, n);
          }
          double c = sumCost[s] / spread;
          double msgs = k * count[s] / spread;
          sl[nz] = (short) s;
          co[nz] = (float) c;
          me[nz] = (float) msgs;
          agg += co[nz];
          totalMessages += me[nz];
          nz++;
        }
      }
      aggregate[minute] = agg;
    }
    rowStart[m] = nz;

    // Busiest UTC clock hour (mean rate over its minutes inside the window).
    long firstMinute = from / minuteMs;
    double peak = 0;
    int minute = 0;
    while (minute < m) {
      long hour = Math.floorDiv(firstMinute + minute, 60);
      double sum = 0;
      int n = 0;
      while (minute < m && Math.floorDiv(firstMinute + minute, 60) == hour) {
        sum += aggregate[minute];
        n++;
        minute++;
      }
      peak = Math.max(peak, sum / (n * 60.0));
    }
    boolean[] busy = new boolean[m];
    for (int i = 0; i < m; i++) {
      busy[i] = aggregate[i] / 60.0 >= config.busyFraction() * peak;
    }
    int units = config.units() != 0 ? config.units() : autoUnits(active, config.servers());
    return new LoadMatrix(config, from, m, rowStart, Arrays.copyOf(sl, nz),
        Arrays.copyOf(co, nz), Arrays.copyOf(me, nz), aggregate, active, units, peak, busy,
        inWindow, totalMessages);
  }

  /**
   * The finest power-of-two grid of slice-aligned units (4096 down to the smallest grid with at
   * least one unit per server) in which at most {@value #AUTO_UNITS_PER_SERVER} × servers units
   * carry load: fine enough to balance, coarse enough that one move shifts a visible share of a
   * server's load. On the flight traces with 8 servers this gives 4096 (origin, 219 non-empty
   * slices) and 256 (route).
   */
  public static int autoUnits(int[] activeSlices, int servers) {
    int minBits = 32 - Integer.numberOfLeadingZeros(Math.max(1, servers) - 1);
    for (int bits = Ring.SLICE_BITS; bits > minBits; bits--) {
      int shift = Ring.SLICE_BITS - bits;
      int nonEmpty = 0;
      int last = -1;
      for (int s : activeSlices) {
        int u = s >>> shift;
        if (u != last) {
          nonEmpty++;
          last = u;
        }
      }
      if (nonEmpty <= AUTO_UNITS_PER_SERVER * servers) {
        return 1 << bits;
      }
    }
    return 1 << minBits;
  }

  public SimConfig config() {
    return config;
  }

  /** The first instant of the window (minute-aligned, epoch milliseconds). */
  public long startMillis() {
    return startMillis;
  }

  /** Number of minutes in the window. */
  public int minutes() {
    return minutes;
  }

  /** The epoch milliseconds at the start of {@code minute}. */
  public long millisOf(int minute) {
    return startMillis + minute * 60_000L;
  }

  /** Index of the first entry of {@code minute}'s row. */
  public int rowStart(int minute) {
    return rowStart[minute];
  }

  /** Index after the last entry of {@code minute}'s row. */
  public int rowEnd(int minute) {
    return rowStart[minute + 1];
  }

  /** The slice of entry {@code i}. */
  public int slice(int i) {
    return slices[i];
  }

  /** The cost arriving in entry {@code i}'s minute on its slice. */
  public double cost(int i) {
    return costs[i];
  }

  /** The messages arriving in entry {@code i}'s minute on its slice. */
  public double messages(int i) {
    return messages[i];
  }

  /** Cost arriving in {@code minute} over all slices. */
  public double aggregateCost(int minute) {
    return aggregateCost[minute];
  }

  /** Slices with any load in the window, ascending. */
  public int[] activeSlices() {
    return activeSlices.clone();
  }

  /** Number of stored (minute, slice) entries. */
  public int entries() {
    return rowStart[minutes];
  }

  /** The initial map's number of equal ranges. */
  public int units() {
    return units;
  }

  /** The busiest hour's aggregate cost rate, per second. */
  public double peakHourRate() {
    return peakHourRate;
  }

  /** Each server's capacity: cost it serves per second. */
  public double capacity() {
    return capacity;
  }

  public boolean busy(int minute) {
    return busy[minute];
  }

  public int busyMinutes() {
    return busyMinutes;
  }

  /** Trace events inside the window. */
  public long events() {
    return events;
  }

  /** Messages arriving inside the window (events × K, less what the spread pushes past its end). */
  public double totalMessages() {
    return totalMessages;
  }
}
