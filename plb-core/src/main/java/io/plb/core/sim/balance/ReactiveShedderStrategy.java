package io.plb.core.sim.balance;

import java.util.ArrayList;
import java.util.List;

/**
 * Reactive balancing in the manner of Pulsar's transfer shedder: it acts when the standard
 * deviation of the servers' utilisation (EWMA load, half-life
 * {@value ReactiveEwmaStrategy#HALF_LIFE_MINUTES} min, over capacity) has exceeded
 * {@code threshold} for {@value #CONSECUTIVE} consecutive checks. It then moves, from the most to
 * the least loaded server, the largest ranges that fit together within half their difference,
 * skipping ranges moved in the last {@value #RECENT_MINUTES} minutes and ranges lighter than the
 * churn penalty, and cools down for {@value #COOL_DOWN_MINUTES} minutes after acting.
 *
 * <p>Not thread-safe; one instance per simulation run.
 */
public final class ReactiveShedderStrategy implements BalanceStrategy {
  public static final double DEFAULT_THRESHOLD = 0.15;
  public static final int CONSECUTIVE = 3;
  public static final int RECENT_MINUTES = 10;
  public static final int COOL_DOWN_MINUTES = 3;

  private final double threshold;
  private final String name;
  private final SliceEwma ewma = new SliceEwma(ReactiveEwmaStrategy.HALF_LIFE_MINUTES);
  private int over;
  private long coolUntil = Long.MIN_VALUE;

  public ReactiveShedderStrategy(double threshold) {
    if (!(threshold >= 0) || threshold > 10) {
      throw new IllegalArgumentException("reactive-shedder threshold must be 0..10, got "
          + threshold);
    }
    this.threshold = threshold;
    this.name = threshold == DEFAULT_THRESHOLD ? "reactive-shedder"
        : "reactive-shedder:" + Strategies.formatParameter(threshold);
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public void observe(MinuteLoad load) {
    ewma.observe(load);
  }

  @Override
  public List<SimAction> plan(PlanContext ctx) {
    SimMapView map = ctx.map();
    int servers = ctx.servers();
    double capacity = ctx.capacity();
    SliceEwma.RangeLoads loads = ewma.rangeLoads(map);
    double[] load = loads.server;
    double mean = 0;
    for (double l : load) {
      mean += l / capacity;
    }
    mean /= servers;
    double var = 0;
    for (double l : load) {
      double d = l / capacity - mean;
      var += d * d;
    }
    double std = Math.sqrt(var / servers);
    over = std > threshold ? over + 1 : 0;
    long now = ctx.nowMillis();
    if (now < coolUntil || over < CONSECUTIVE) {
      return List.of();
    }
    int hi = 0;
    int lo = 0;
    for (int s = 1; s < servers; s++) {
      if (load[s] > load[hi]) {
        hi = s;
      }
      if (load[s] < load[lo]) {
        lo = s;
      }
    }
    if (hi == lo) {
      return List.of();
    }
    double room = (load[hi] - load[lo]) / 2;
    double minGain = ctx.config().minMoveGain() * capacity;
    long recent = RECENT_MINUTES * 60_000L;
    List<Integer> candidates = new ArrayList<>();
    for (int k = 0; k < loads.count; k++) {
      int i = loads.range[k];
      long last = map.lastMovedMillis(i);
      boolean recentlyMoved = last != Long.MIN_VALUE && now - last < recent;
      if (map.owner(i) == hi && loads.rate[k] > minGain && !recentlyMoved && ctx.dwellOver(i)) {
        candidates.add(k);
      }
    }
    double[] rates = loads.rate;
    // Largest first; ties by position for determinism.
    candidates.sort((a, b) -> rates[a] != rates[b] ? Double.compare(rates[b], rates[a])
        : Integer.compare(a, b));
    int limit = Math.min(ctx.roundMovesAllowed(), ctx.config().maxMovesPerServer());
    List<SimAction> actions = new ArrayList<>();
    for (int k : candidates) {
      if (actions.size() >= limit) {
        break;
      }
      if (rates[k] <= room) {
        actions.add(new SimAction.Move(map.startSlice(loads.range[k]), lo));
        room -= rates[k];
      }
    }
    if (!actions.isEmpty()) {
      coolUntil = now + COOL_DOWN_MINUTES * 60_000L;
      over = 0;
    }
    return actions;
  }
}
