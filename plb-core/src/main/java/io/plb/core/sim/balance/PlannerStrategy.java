package io.plb.core.sim.balance;

import io.plb.core.balance.BalanceRange;
import io.plb.core.balance.BalanceServer;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.balance.Criterion;
import io.plb.core.balance.LoadOutlook;
import io.plb.core.balance.MoveHistory;
import io.plb.core.balance.Plan;
import io.plb.core.balance.PlanAction;
import io.plb.core.balance.Planner;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * PLB's own balancing in the simulator: every round, the real {@link Planner} plans on a
 * {@link LoadOutlook} built by a {@link Foresight} — forecasts of the next horizon
 * ({@code predictive}, {@link ForecastForesight}) or the actual next horizon ({@code oracle}).
 * The planner's settings are {@link BalancerConfig#defaults()} with the simulation's budgets,
 * churn penalty, hold and a 10-minute horizon ({@link #configFor}); {@code predictive} changes
 * how it sums quantiles and when it acts ({@link #predictiveConfigFor}).
 *
 * <p>Translation to the slice-aligned simulated map: ranges start and end on slice boundaries; a
 * split the planner puts inside a slice is moved to the nearest slice boundary inside the range
 * (or dropped, with later actions on its piece, when there is none). Each range's backlog is its
 * owner's backlog shared by the ranges' predicted mean load.
 *
 * <p>Not thread-safe; one instance per simulation run.
 */
public final class PlannerStrategy implements ForecastingStrategy {
  /** Where the outlook comes from. */
  public interface Foresight {
    /** The load of a minute that has just passed. */
    void observe(MinuteLoad load);

    /**
     * The predicted cost per minute of each slice over the {@code horizon} minutes from
     * {@code minute} on, mean and upper quantile (into {@code mean} and {@code upper}, length 4096).
     */
    void horizon(int minute, int horizon, double[] mean, double[] upper);

    /** The grid the foresight predicts on (4096 = per slice). */
    int grid();

    /** Figures of its own for the results. */
    default Map<String, Object> report() {
      return Map.of();
    }
  }

  public static final int HORIZON_MINUTES = 10;

  /** The upper quantile {@code predictive} plans on. */
  public static final double PREDICTIVE_QUANTILE = 0.9;

  /** {@code predictive} plans a server down when its planned utilisation exceeds this. */
  public static final double PREDICTIVE_HIGH_WATER = 1.0;

  /** ... or when max/mean planned utilisation exceeds this (see {@link #predictiveConfigFor}). */
  public static final double PREDICTIVE_MAX_MEAN = 1.2;

  /** {@code predictive} does not start acting while every server is at or below this. */
  public static final double PREDICTIVE_ACT_ABOVE = 0.7;

  public static final double PREDICTIVE_HYSTERESIS = 0.02;

  private final String name;
  private final Foresight foresight;
  private final BalancerConfig config;
  private final List<BalanceServer> servers = new ArrayList<>();
  private final String[] ids;
  private final Map<String, Integer> index = new HashMap<>();
  private final double[] mean = new double[Ring.SLICES];
  private final double[] upper = new double[Ring.SLICES];
  private final int grid;
  private double[] forecast;
  private MoveHistory history = MoveHistory.EMPTY;
  private int rounds;
  private int acting;
  private int droppedSplits;
  private int droppedActions;

  public PlannerStrategy(String name, Foresight foresight, SimConfig sim, double capacity) {
    this(name, foresight, configFor(sim), sim.servers(), capacity);
  }

  public PlannerStrategy(String name, Foresight foresight, BalancerConfig config, int servers,
      double capacity) {
    this.name = name;
    this.foresight = foresight;
    this.config = config;
    this.grid = foresight.grid();
    this.ids = new String[servers];
    int digits = Integer.toString(Math.max(0, servers - 1)).length();
    for (int s = 0; s < servers; s++) {
      ids[s] = String.format("s%0" + digits + "d", s);
      index.put(ids[s], s);
      this.servers.add(new BalanceServer(ids[s], capacity, ServerState.ACTIVE));
    }
  }

  /** The planner's defaults with the simulation's budgets, churn penalty and hold. */
  public static BalancerConfig configFor(SimConfig sim) {
    return BalancerConfig.defaults().toBuilder()
        .horizon(Duration.ofMinutes(HORIZON_MINUTES))
        .maxMovesPerRound(sim.maxMovesPerRound())
        .maxMovesPerServer(sim.maxMovesPerServer())
        .maxMovesPerWindow(sim.maxMovesPerWindow())
        .moveWindow(Duration.ofMillis(Math.max(1, sim.moveWindowMillis())))
        .minDwell(Duration.ofMillis(Math.max(1, sim.minDwellMillis())))
        .minGain(sim.minMoveGain())
        .expectedHold(Duration.ofSeconds(Math.max(1, sim.holdSeconds())))
        .build();
  }

  /**
   * {@link #configFor} for a forecast outlook. The changes are all about what overload is and
   * what a move buys:
   *
   * <ul>
   *   <li>a server's planned load is the upper quantile of its <em>sum</em> (the ranges' errors
   *       taken as independent, {@code upperCorrelation} 0), not the sum of its ranges' upper
   *       quantiles, which grows with the number of ranges and makes a server of many small
   *       ranges look hot;
   *   <li>the criterion is {@link Criterion#MAX_MEAN_OR_HIGH_WATER}: a server is planned down when
   *       its likely-bad load would fill it ({@value #PREDICTIVE_HIGH_WATER} of capacity), or when
   *       max/mean exceeds {@value #PREDICTIVE_MAX_MEAN} — but never while every server is at or
   *       below {@value #PREDICTIVE_ACT_ABOVE} (balancing an idle cluster buys no delay and spends
   *       the move budget, 4 per 10 min, that the peak hours need), and with a hysteresis of
   *       {@value #PREDICTIVE_HYSTERESIS};
   *   <li>{@code lumpAllowance} 1: the max/mean part is not enforced below 1 + the hottest
   *       indivisible part's load over a mean server's, the balance any greedy placement reaches.
   *       Where a few heavy keys carry the load (airports on the origin trace), evening out
   *       max/mean further means shuffling the heavy keys round, each move holding a heavy key's
   *       traffic; where load is fine-grained (routes), the ratio applies as set.
   * </ul>
   */
  public static BalancerConfig predictiveConfigFor(SimConfig sim) {
    return configFor(sim).toBuilder()
        .quantile(PREDICTIVE_QUANTILE)
        .upperCorrelation(0)
        .criterion(Criterion.MAX_MEAN_OR_HIGH_WATER)
        .highWater(PREDICTIVE_HIGH_WATER)
        .maxMeanRatio(PREDICTIVE_MAX_MEAN)
        .actAbove(PREDICTIVE_ACT_ABOVE)
        .hysteresis(PREDICTIVE_HYSTERESIS)
        .lumpAllowance(1.0)
        .build();
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public void observe(MinuteLoad load) {
    foresight.observe(load);
  }

  @Override
  public List<SimAction> plan(PlanContext ctx) {
    SimMapView map = ctx.map();
    foresight.horizon(ctx.minute(), HORIZON_MINUTES, mean, upper);
    forecast = gridForecast();
    // The simulator cannot divide a grid part (a slice, or a group of slices for a coarser
    // forecast grid): each part's load is given as a point at its start, so the planner's splits
    // fall on part boundaries and a range of one part is never split.
    int width = Ring.SLICES / grid;
    double[] meanPerSecond = new double[Ring.SLICES];
    List<LoadOutlook.HotKey> points = new ArrayList<>();
    for (int g = 0; g < grid; g++) {
      double m = 0;
      double u = 0;
      for (int s = g * width; s < (g + 1) * width; s++) {
        m += mean[s];
        u += upper[s];
      }
      m /= 60.0;
      u /= 60.0;
      if (m > 0 || u > 0) {
        points.add(new LoadOutlook.HotKey(SimMapView.hashOfSlice(g * width), m, Math.max(m, u)));
      }
      meanPerSecond[g * width] = m;
    }
    LoadOutlook outlook = LoadOutlook.ofSegments(new long[] {0L}, new double[] {0.0},
        new double[] {0.0}, points);

    int n = map.rangeCount();
    double[] rangeMean = new double[n];
    double[] serverMean = new double[ids.length];
    for (int i = 0; i < n; i++) {
      double sum = 0;
      for (int s = map.startSlice(i); s < map.endSlice(i); s++) {
        sum += meanPerSecond[s];
      }
      rangeMean[i] = sum;
      serverMean[map.owner(i)] += sum;
    }
    List<BalanceRange> ranges = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      int o = map.owner(i);
      double backlog = serverMean[o] > 0 ? ctx.backlog(o) * rangeMean[i] / serverMean[o] : 0;
      ranges.add(new BalanceRange(SimMapView.hashOfSlice(map.startSlice(i)),
          SimMapView.hashOfSlice(map.endSlice(i)), ids[o], false, ctx.inHold(i),
          map.lastMovedMillis(i), Math.max(0, backlog)));
    }
    Plan plan = Planner.plan(ranges, servers, outlook, config, ctx.nowMillis(), history);
    history = history.record(plan, ctx.nowMillis(), config);
    rounds++;
    if (plan.acting()) {
      acting++;
    }
    return translate(plan, map);
  }

  /** The planner's actions on the slice-aligned map. */
  private List<SimAction> translate(Plan plan, SimMapView map) {
    List<SimAction> out = new ArrayList<>(plan.actions().size());
    Map<Long, Integer> alias = new HashMap<>(); // planner's split point -> slice (or -1)
    TreeSet<Integer> starts = null; // the map's range starts as this plan changes them
    for (PlanAction action : plan.actions()) {
      if (action instanceof PlanAction.Move mv) {
        int start = sliceOf(mv.rangeStart(), alias);
        Integer to = index.get(mv.to());
        if (start < 0 || to == null) {
          droppedActions++;
          continue;
        }
        out.add(new SimAction.Move(start, to));
      } else if (action instanceof PlanAction.Split sp) {
        int start = sliceOf(sp.rangeStart(), alias);
        if (start < 0) {
          droppedActions++;
          alias.put(sp.at(), -1);
          continue;
        }
        if (starts == null) {
          starts = new TreeSet<>();
          for (int i = 0; i < map.rangeCount(); i++) {
            starts.add(map.startSlice(i));
          }
        }
        Integer next = starts.higher(start);
        int end = next == null ? Ring.SLICES : next;
        int at = boundaryAfter(sp.at(), start, end);
        if (at < 0) {
          droppedSplits++;
          alias.put(sp.at(), -1);
          continue;
        }
        if (SimMapView.hashOfSlice(at) != sp.at()) {
          alias.put(sp.at(), at);
        }
        starts.add(at);
        out.add(new SimAction.Split(start, at));
      } else if (action instanceof PlanAction.Merge mg) {
        int left = sliceOf(mg.leftStart(), alias);
        int right = sliceOf(mg.rightStart(), alias);
        if (left < 0 || right < 0) {
          droppedActions++;
          continue;
        }
        if (starts != null) {
          starts.remove(right);
        }
        out.add(new SimAction.Merge(left));
      }
    }
    return out;
  }

  /** The slice a planner position names: an aligned start, or an earlier split's alias. */
  private static int sliceOf(long hash, Map<Long, Integer> alias) {
    Integer a = alias.get(hash);
    if (a != null) {
      return a;
    }
    if ((hash & ((1L << (64 - Ring.SLICE_BITS)) - 1)) != 0) {
      return -1;
    }
    return Ring.sliceOf(hash);
  }

  /**
   * The grid boundary that cuts where the planner's split point does: loads sit at part starts,
   * so a point p sends the parts starting before p to the left — the first part boundary at or
   * after p. -1 unless strictly inside {@code (start, end)}.
   */
  int boundaryAfter(long hash, int start, int end) {
    int width = Ring.SLICES / grid;
    long partBits = 64 - Ring.SLICE_BITS + Integer.numberOfTrailingZeros(width);
    long part = hash >>> partBits;
    boolean exact = partBits == 64 ? hash == 0 : (hash & ((1L << partBits) - 1)) == 0;
    long boundary = (exact ? part : part + 1) * width;
    return boundary > start && boundary < end ? (int) boundary : -1;
  }

  private double[] gridForecast() {
    int grid = foresight.grid();
    int width = Ring.SLICES / grid;
    double[] f = new double[grid];
    int shift = Integer.numberOfTrailingZeros(width);
    for (int s = 0; s < Ring.SLICES; s++) {
      f[s >>> shift] += mean[s];
    }
    return f;
  }

  @Override
  public int forecastGrid() {
    return foresight.grid();
  }

  @Override
  public int forecastHorizonMinutes() {
    return HORIZON_MINUTES;
  }

  @Override
  public double[] lastForecast() {
    return forecast;
  }

  @Override
  public Map<String, Object> report() {
    Map<String, Object> r = new LinkedHashMap<>();
    r.put("planner_rounds", rounds);
    r.put("planner_rounds_acting", acting);
    if (droppedSplits > 0 || droppedActions > 0) {
      r.put("splits_inside_a_slice_dropped", droppedSplits);
      r.put("actions_dropped", droppedActions);
    }
    r.putAll(foresight.report());
    return r;
  }
}
