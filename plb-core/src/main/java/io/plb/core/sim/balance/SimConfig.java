package io.plb.core.sim.balance;

/**
 * The setting of one balance simulation; every strategy of a run shares it. Validated on
 * construction: a bad value is an {@link IllegalArgumentException} naming the command-line option.
 *
 * @param servers queue servers, all of equal capacity ({@code --servers})
 * @param headroom capacity per server = headroom × the busiest hour's aggregate cost rate /
 *     servers ({@code --headroom})
 * @param scale messages each trace event stands for, K ({@code --scale})
 * @param spreadMinutes an event's K messages arrive evenly over this many minutes from its minute
 *     ({@code --spread})
 * @param holdSeconds a moved range's arrivals during this time after the switch reach the target
 *     in one lump when it releases ({@code --hold}); 0 = moves are free
 * @param units the initial map: this many equal slice-aligned ranges (a power of two, 1..4096,
 *     at least {@code servers}), or 0 for automatic (see {@link LoadMatrix#autoUnits})
 *     ({@code --units})
 * @param fromMillis first instant simulated, or {@link #UNSET} for the first event's minute
 * @param toMillis instant the simulation stops (exclusive), or {@link #UNSET} for the last
 *     event's minute plus the spread
 * @param segmentSeconds the queue is advanced in segments of this length (divides 60)
 * @param overloadDelaySeconds a server is overloaded while its queueing delay exceeds this
 * @param busyFraction a minute is busy when the aggregate load is at least this fraction of the
 *     busiest hour's rate; max/mean utilisation is summarised over busy minutes only
 * @param minDwellMillis a range stays put at least this long after a move
 * @param maxMovesPerRound moves one planning round may start
 * @param maxMovesPerServer moves one server may take part in (as source or target) per round
 * @param maxMovesPerWindow moves the whole cluster may start within {@code moveWindowMillis}
 * @param moveWindowMillis the sliding window of {@code maxMovesPerWindow}
 * @param minMoveGain a reactive move must lower the larger of its two servers' loads by more than
 *     this fraction of capacity (the churn penalty)
 */
public record SimConfig(
    int servers,
    double headroom,
    double scale,
    int spreadMinutes,
    int holdSeconds,
    int units,
    long fromMillis,
    long toMillis,
    int segmentSeconds,
    double overloadDelaySeconds,
    double busyFraction,
    long minDwellMillis,
    int maxMovesPerRound,
    int maxMovesPerServer,
    int maxMovesPerWindow,
    long moveWindowMillis,
    double minMoveGain) {

  /** Marks a window bound left to the trace. */
  public static final long UNSET = Long.MIN_VALUE;

  public static final int MAX_SERVERS = 1024;

  public SimConfig {
    if (servers < 1 || servers > MAX_SERVERS) {
      throw new IllegalArgumentException("--servers must be 1.." + MAX_SERVERS + ", got " + servers);
    }
    if (!(headroom > 0) || headroom > 1000) {
      throw new IllegalArgumentException("--headroom must be a number > 0 (and at most 1000), got "
          + headroom);
    }
    if (!(scale > 0) || scale > 1e9) {
      throw new IllegalArgumentException("--scale must be a number > 0 (and at most 1e9), got "
          + scale);
    }
    if (spreadMinutes < 1 || spreadMinutes > 1440) {
      throw new IllegalArgumentException("--spread must be 1..1440 minutes, got " + spreadMinutes);
    }
    if (holdSeconds < 0 || holdSeconds > 3600) {
      throw new IllegalArgumentException("--hold must be 0..3600 seconds, got " + holdSeconds);
    }
    if (units != 0 && (units < 1 || units > io.plb.core.keyspace.Ring.SLICES
        || Integer.bitCount(units) != 1)) {
      throw new IllegalArgumentException(
          "--units must be auto or a power of two 1..4096, got " + units);
    }
    if (units != 0 && units < servers) {
      throw new IllegalArgumentException("--units (" + units + ") must be at least --servers ("
          + servers + "): every server starts with a range");
    }
    if (fromMillis != UNSET && toMillis != UNSET && toMillis <= fromMillis) {
      throw new IllegalArgumentException("--to must be after --from");
    }
    if (segmentSeconds < 1 || 60 % segmentSeconds != 0) {
      throw new IllegalArgumentException("segment must divide 60 seconds, got " + segmentSeconds);
    }
    if (!(overloadDelaySeconds > 0)) {
      throw new IllegalArgumentException("overload delay must be > 0 s");
    }
    if (!(busyFraction >= 0) || busyFraction > 1) {
      throw new IllegalArgumentException("busy fraction must be 0..1");
    }
    if (minDwellMillis < 0 || moveWindowMillis < 0) {
      throw new IllegalArgumentException("dwell and move window must be >= 0");
    }
    if (maxMovesPerRound < 0 || maxMovesPerServer < 0 || maxMovesPerWindow < 0) {
      throw new IllegalArgumentException("move budgets must be >= 0");
    }
    if (!(minMoveGain >= 0) || minMoveGain > 1) {
      throw new IllegalArgumentException("minimum move gain must be 0..1 of capacity");
    }
  }

  /**
   * The benchmark setting: 8 servers, headroom 1.3, K 1000, 15 min spread, 30 s hold, automatic
   * units, 30 s queue segments, overload above 1 s of delay, busy minutes at ≥ 50 % of the peak
   * hour, 10 min dwell, ≤ 4 moves per round and ≤ 2 per server, ≤ 4 moves per 10 min for the
   * cluster, and a 2 % churn penalty.
   */
  public static SimConfig defaults() {
    return new SimConfig(8, 1.3, 1000, 15, 30, 0, UNSET, UNSET, 30, 1.0, 0.5,
        600_000L, 4, 2, 4, 600_000L, 0.02);
  }

  public SimConfig withServers(int v) {
    return new SimConfig(v, headroom, scale, spreadMinutes, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withHeadroom(double v) {
    return new SimConfig(servers, v, scale, spreadMinutes, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withScale(double v) {
    return new SimConfig(servers, headroom, v, spreadMinutes, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withSpreadMinutes(int v) {
    return new SimConfig(servers, headroom, scale, v, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withHoldSeconds(int v) {
    return new SimConfig(servers, headroom, scale, spreadMinutes, v, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withUnits(int v) {
    return new SimConfig(servers, headroom, scale, spreadMinutes, holdSeconds, v, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withWindow(long from, long to) {
    return new SimConfig(servers, headroom, scale, spreadMinutes, holdSeconds, units, from,
        to, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, minMoveGain);
  }

  public SimConfig withBudgets(long dwellMillis, int perRound, int perServer, int perWindow,
      long windowMillis) {
    return new SimConfig(servers, headroom, scale, spreadMinutes, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, dwellMillis,
        perRound, perServer, perWindow, windowMillis, minMoveGain);
  }

  public SimConfig withMinMoveGain(double v) {
    return new SimConfig(servers, headroom, scale, spreadMinutes, holdSeconds, units, fromMillis,
        toMillis, segmentSeconds, overloadDelaySeconds, busyFraction, minDwellMillis,
        maxMovesPerRound, maxMovesPerServer, maxMovesPerWindow, moveWindowMillis, v);
  }
}
