package io.plb.core.sim.balance;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Reactive balancing on current load, in the manner of Dicer: each range's load is an EWMA of its
 * recent minutes (half-life {@value #HALF_LIFE_MINUTES} min). Every planning round, if some
 * server's estimated load is more than {@code threshold × capacity} away from the mean, it moves
 * ranges greedily: each step takes the move that most lowers the larger of its two servers'
 * loads, among moves whose source is above the band or whose target is below it; a move must
 * gain more than the churn penalty ({@link SimConfig#minMoveGain} × capacity). It stops when no
 * move qualifies or the budgets are spent.
 *
 * <p>Not thread-safe; one instance per simulation run.
 */
public final class ReactiveEwmaStrategy implements BalanceStrategy {
  public static final double HALF_LIFE_MINUTES = 2.0;
  public static final double DEFAULT_THRESHOLD = 0.1;

  private final double threshold;
  private final String name;
  private final SliceEwma ewma = new SliceEwma(HALF_LIFE_MINUTES);

  public ReactiveEwmaStrategy(double threshold) {
    if (!(threshold >= 0) || threshold > 10) {
      throw new IllegalArgumentException("reactive-ewma threshold must be 0..10, got " + threshold);
    }
    this.threshold = threshold;
    this.name = "reactive-ewma:" + Strategies.formatParameter(threshold);
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
    double[] load = loads.server.clone();
    double mean = Arrays.stream(load).sum() / servers;
    double band = threshold * capacity;
    boolean outside = false;
    for (double l : load) {
      outside |= Math.abs(l - mean) > band;
    }
    if (!outside) {
      return List.of();
    }
    int allowed = ctx.roundMovesAllowed();
    int perServerMax = ctx.config().maxMovesPerServer();
    double minGain = ctx.config().minMoveGain() * capacity;
    int[] perServer = new int[servers];
    // A range no heavier than the churn penalty can never gain more than it.
    int[] candidates = new int[loads.count];
    double[] rates = new double[loads.count];
    boolean[] moved = new boolean[loads.count];
    int nc = 0;
    for (int k = 0; k < loads.count; k++) {
      if (loads.rate[k] > minGain && ctx.dwellOver(loads.range[k])) {
        candidates[nc] = loads.range[k];
        rates[nc] = loads.rate[k];
        nc++;
      }
    }
    List<SimAction> actions = new ArrayList<>();
    while (actions.size() < allowed) {
      // The least-loaded and second least-loaded servers that may still take a move.
      int t1 = -1;
      int t2 = -1;
      for (int s = 0; s < servers; s++) {
        if (perServer[s] >= perServerMax) {
          continue;
        }
        if (t1 < 0 || load[s] < load[t1]) {
          t2 = t1;
          t1 = s;
        } else if (t2 < 0 || load[s] < load[t2]) {
          t2 = s;
        }
      }
      int best = -1;
      int bestTarget = -1;
      double bestGain = minGain;
      for (int c = 0; c < nc; c++) {
        int i = candidates[c];
        double x = rates[c];
        if (moved[c]) {
          continue;
        }
        int s = map.owner(i);
        if (perServer[s] >= perServerMax) {
          continue;
        }
        int t = t1 != s ? t1 : t2;
        if (t < 0) {
          continue;
        }
        if (!(load[s] - mean > band || mean - load[t] > band)) {
          continue;
        }
        double gain = Math.max(load[s], load[t]) - Math.max(load[s] - x, load[t] + x);
        if (gain > bestGain) {
          bestGain = gain;
          best = c;
          bestTarget = t;
        }
      }
      if (best < 0) {
        break;
      }
      int range = candidates[best];
      int s = map.owner(range);
      load[s] -= rates[best];
      load[bestTarget] += rates[best];
      perServer[s]++;
      perServer[bestTarget]++;
      moved[best] = true;
      actions.add(new SimAction.Move(map.startSlice(range), bestTarget));
    }
    return actions;
  }
}
