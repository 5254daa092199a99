package io.plb.core.sim.balance;

import io.plb.core.keyspace.Ring;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Replays a {@link LoadMatrix} against one {@link BalanceStrategy} on virtual time and measures
 * the result. Pure and deterministic: no clock, no I/O, no threads; the same matrix and strategy
 * give the same {@link StrategyResult}. Different strategies may run on different threads over
 * the same (immutable) matrix, each with its own {@code BalanceSimulation}.
 *
 * <p>Each minute m, in this order:
 * <ol>
 *   <li>from m = 1 on, the strategy plans with what it has observed (minutes before m); the
 *       simulator checks each action against the budgets and applies it. A move changes the
 *       owner at once; for {@code hold} seconds the range's arrivals reach no server and then land
 *       on the target together, as one lump, when it releases.
 *   <li>the minute's load is routed: each slice's cost to its owner (or to its hold), arriving
 *       evenly over the minute.
 *   <li>each server's {@link FluidQueue} runs through the minute in segments ({@code segment}
 *       seconds, cut further where a hold releases), with the backlog carried over.
 *   <li>the strategy observes the minute.
 * </ol>
 *
 * <p>Budgets, the same for every strategy: a range moves at most once per {@code minDwell}; a
 * round starts at most {@code maxMovesPerRound} moves, each server takes part in at most
 * {@code maxMovesPerServer}; the cluster starts at most {@code maxMovesPerWindow} moves in any
 * {@code moveWindow}; a range in a hold does not move. Splits and merges are free (no data moves).
 */
public final class BalanceSimulation {
  /** Receives progress; called every simulated day and at the end. */
  @FunctionalInterface
  public interface Progress {
    void at(String strategy, int minute, int minutes);

    Progress NONE = (s, m, n) -> { };
  }

  private static final class Hold {
    final int target;
    final int releaseSecond;
    final int startSlice;
    final int endSlice;
    double lumpCost;
    double lumpMessages;
    double afterCost;
    double afterMessages;

    Hold(int target, int releaseSecond, int startSlice, int endSlice) {
      this.target = target;
      this.releaseSecond = releaseSecond;
      this.startSlice = startSlice;
      this.endSlice = endSlice;
    }
  }

  private final LoadMatrix matrix;
  private final SimConfig config;
  private final int servers;
  private final double capacity;

  public BalanceSimulation(LoadMatrix matrix) {
    this.matrix = matrix;
    this.config = matrix.config();
    this.servers = config.servers();
    this.capacity = matrix.capacity();
  }

  public StrategyResult run(BalanceStrategy strategy) {
    return run(strategy, Progress.NONE);
  }

  public StrategyResult run(BalanceStrategy strategy, Progress progress) {
    final int minutes = matrix.minutes();
    final int segment = config.segmentSeconds();
    final int holdSeconds = config.holdSeconds();
    SimMap map = new SimMap(servers, matrix.units());
    DelayHistogram delays = new DelayHistogram();
    FluidQueue[] queues = new FluidQueue[servers];
    for (int s = 0; s < servers; s++) {
      queues[s] = new FluidQueue(capacity, config.overloadDelaySeconds(), delays);
    }
    MinuteLoad view = new MinuteLoad(matrix);
    Hold[] holdOf = new Hold[Ring.SLICES];
    List<Hold> holds = new ArrayList<>();
    ArrayDeque<Long> window = new ArrayDeque<>();
    double[] base = new double[servers];
    double[] baseMessages = new double[servers];
    double[] backlog = new double[servers];
    int[] perServer = new int[servers];

    float[][] util = new float[servers][minutes];
    float[] maxMean = new float[minutes];
    float[] overloadPerMinute = new float[minutes];
    boolean[] busy = new boolean[minutes];
    MoveRecorder moveLog = new MoveRecorder();
    int splits = 0;
    int merges = 0;
    int rejected = 0;
    double loadMoved = 0;
    double heldMessages = 0;
    double holdSum = 0;
    double holdMax = 0;
    Map<String, Integer> rejections = new LinkedHashMap<>();
    ForecastScorer scorer = strategy instanceof ForecastingStrategy f
        ? new ForecastScorer(matrix, f.forecastGrid(), f.forecastHorizonMinutes()) : null;

    for (int m = 0; m < minutes; m++) {
      final long now = matrix.millisOf(m);
      final int t0 = m * 60;

      // Step 1: plan and apply.
      if (m >= 1) {
        while (!window.isEmpty() && window.peekFirst() <= now - config.moveWindowMillis()) {
          window.pollFirst();
        }
        for (int s = 0; s < servers; s++) {
          backlog[s] = queues[s].backlog();
        }
        long[] recent = new long[window.size()];
        int r = 0;
        for (long t : window) {
          recent[r++] = t;
        }
        PlanContext ctx = new PlanContext(now, m, map, capacity, backlog.clone(), config,
            Math.max(0, config.maxMovesPerWindow() - window.size()), recent,
            range -> !holds.isEmpty() && held(holdOf, map, range));
        List<SimAction> actions = strategy.plan(ctx);
        if (scorer != null) {
          scorer.score((ForecastingStrategy) strategy, m);
        }
        int roundMoves = 0;
        Arrays.fill(perServer, 0);
        for (SimAction action : actions) {
          String refusal = null;
          if (action instanceof SimAction.Move mv) {
            int i = map.indexOfStart(mv.startSlice());
            if (i < 0) {
              refusal = "no such range";
            } else if (mv.to() < 0 || mv.to() >= servers || mv.to() == map.owner(i)) {
              refusal = "bad target";
            } else if (!holds.isEmpty() && held(holdOf, map, i)) {
              refusal = "range in a hold";
            } else if (map.lastMovedMillis(i) != Long.MIN_VALUE
                && now - map.lastMovedMillis(i) < config.minDwellMillis()) {
              refusal = "dwell";
            } else if (roundMoves >= config.maxMovesPerRound()) {
              refusal = "round budget";
            } else if (perServer[map.owner(i)] >= config.maxMovesPerServer()
                || perServer[mv.to()] >= config.maxMovesPerServer()) {
              refusal = "server budget";
            } else if (window.size() >= config.maxMovesPerWindow()) {
              refusal = "window budget";
            } else {
              int from = map.owner(i);
              int a = map.startSlice(i);
              int b = map.endSlice(i);
              double rangeCost = 0;
              for (int e = matrix.rowStart(m); e < matrix.rowEnd(m); e++) {
                int sl = matrix.slice(e);
                if (sl >= a && sl < b) {
                  rangeCost += matrix.cost(e);
                }
              }
              double load = rangeCost / (60.0 * capacity);
              double estimatedHold = Math.max(holdSeconds, queues[from].delay());
              map.move(i, mv.to(), now);
              roundMoves++;
              perServer[from]++;
              perServer[mv.to()]++;
              window.addLast(now);
              moveLog.add(now, a, b, from, mv.to(), load);
              loadMoved += load;
              holdSum += estimatedHold;
              holdMax = Math.max(holdMax, estimatedHold);
              if (holdSeconds > 0) {
                Hold h = new Hold(mv.to(), t0 + holdSeconds, a, b);
                holds.add(h);
                for (int s = a; s < b; s++) {
                  holdOf[s] = h;
                }
              }
            }
          } else if (action instanceof SimAction.Split sp) {
            int i = map.indexOfStart(sp.startSlice());
            if (i < 0) {
              refusal = "no such range";
            } else if (held(holdOf, map, i)) {
              refusal = "range in a hold";
            } else if (sp.atSlice() <= map.startSlice(i) || sp.atSlice() >= map.endSlice(i)) {
              refusal = "split point outside the range";
            } else {
              map.split(i, sp.atSlice());
              splits++;
            }
          } else if (action instanceof SimAction.Merge mg) {
            int i = map.indexOfStart(mg.leftStartSlice());
            if (i < 0 || i + 1 >= map.rangeCount()) {
              refusal = "no such pair of ranges";
            } else if (map.owner(i) != map.owner(i + 1)) {
              refusal = "merge of different owners";
            } else if (held(holdOf, map, i) || held(holdOf, map, i + 1)) {
              refusal = "range in a hold";
            } else {
              map.merge(i);
              merges++;
            }
          }
          if (refusal != null) {
            rejected++;
            rejections.merge(refusal, 1, Integer::sum);
          }
        }
      }

      // Step 2: route the minute's arrivals.
      Arrays.fill(base, 0);
      Arrays.fill(baseMessages, 0);
      for (int e = matrix.rowStart(m); e < matrix.rowEnd(m); e++) {
        int sl = matrix.slice(e);
        double c = matrix.cost(e);
        double n = matrix.messages(e);
        Hold h = holdOf[sl];
        if (h != null) {
          double held = Math.min(1.0, Math.max(0.0, (h.releaseSecond - t0) / 60.0));
          h.lumpCost += c * held;
          h.lumpMessages += n * held;
          h.afterCost += c * (1 - held);
          h.afterMessages += n * (1 - held);
        } else {
          int o = map.ownerOfSlice(sl);
          base[o] += c;
          baseMessages[o] += n;
        }
      }

      // Step 3: run each server's queue through the minute.
      double overloadBefore = 0;
      double overloadAfter = 0;
      double maxU = 0;
      double sumU = 0;
      for (int s = 0; s < servers; s++) {
        FluidQueue q = queues[s];
        overloadBefore += q.overloadSeconds();
        double offered = base[s];
        double rate = base[s] / 60.0;
        double msgRate = baseMessages[s] / 60.0;
        int a = 0;
        while (a < 60) {
          for (Hold h : holds) {
            if (h.target == s && h.releaseSecond - t0 == a) {
              q.addLump(h.lumpCost, h.lumpMessages);
              heldMessages += h.lumpMessages;
              offered += h.lumpCost + h.afterCost;
              rate += h.afterCost / (60.0 - a);
              msgRate += h.afterMessages / (60.0 - a);
            }
          }
          int next = (a / segment + 1) * segment;
          for (Hold h : holds) {
            int off = h.releaseSecond - t0;
            if (h.target == s && off > a && off < next) {
              next = off;
            }
          }
          q.advance(next - a, rate, msgRate);
          a = next;
        }
        overloadAfter += q.overloadSeconds();
        double u = offered / (60.0 * capacity);
        util[s][m] = (float) u;
        maxU = Math.max(maxU, u);
        sumU += u;
      }
      overloadPerMinute[m] = (float) (overloadAfter - overloadBefore);
      maxMean[m] = sumU > 0 ? (float) (maxU / (sumU / servers)) : Float.NaN;
      busy[m] = matrix.busy(m);
      // Holds that released in this minute are done.
      if (!holds.isEmpty()) {
        for (int i = holds.size() - 1; i >= 0; i--) {
          Hold h = holds.get(i);
          if (h.releaseSecond < t0 + 60) {
            for (int sl = h.startSlice; sl < h.endSlice; sl++) {
              if (holdOf[sl] == h) {
                holdOf[sl] = null;
              }
            }
            holds.remove(i);
          } else {
            h.afterCost = 0;
            h.afterMessages = 0;
          }
        }
      }

      // Step 4: the strategy sees the minute.
      strategy.observe(view.at(m));
      if ((m + 1) % 1440 == 0 || m + 1 == minutes) {
        progress.at(strategy.name(), m + 1, minutes);
      }
    }

    double overload = 0;
    double delayed = 0;
    double messages = 0;
    for (FluidQueue q : queues) {
      overload += q.overloadSeconds();
      delayed += q.delayedMessages();
      messages += q.messages();
    }
    double[] busyRatios = new double[minutes];
    int nb = 0;
    for (int m = 0; m < minutes; m++) {
      if (busy[m] && !Float.isNaN(maxMean[m])) {
        busyRatios[nb++] = maxMean[m];
      }
    }
    double[] sorted = Arrays.copyOf(busyRatios, nb);
    Arrays.sort(sorted);
    Map<String, Object> extra = new LinkedHashMap<>(strategy.report());
    if (scorer != null) {
      extra.putAll(scorer.figures());
    }
    if (!rejections.isEmpty()) {
      extra.put("rejections", rejections);
    }
    int moves = moveLog.size();
    return new StrategyResult(strategy.name(), overload, delays.quantile(0.99),
        percentile(sorted, 0.50), percentile(sorted, 0.99), moves, splits, merges, rejected,
        loadMoved, heldMessages, moves == 0 ? 0 : holdSum / moves, holdMax, delayed, messages,
        extra, moveLog.build(),
        new StrategyResult.Series(matrix.startMillis(), util, maxMean, busy, overloadPerMinute));
  }

  private static boolean held(Hold[] holdOf, SimMap map, int range) {
    for (int s = map.startSlice(range); s < map.endSlice(range); s++) {
      if (holdOf[s] != null) {
        return true;
      }
    }
    return false;
  }

  /** The q-quantile of sorted values, interpolated linearly between order statistics; NaN if none. */
  public static double percentile(double[] sorted, double q) {
    if (sorted.length == 0) {
      return Double.NaN;
    }
    double pos = q * (sorted.length - 1);
    int lo = (int) Math.floor(pos);
    int hi = Math.min(sorted.length - 1, lo + 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }

  /** Scores a forecasting strategy's forecasts against the trace and the seasonal naive. */
  private static final class ForecastScorer {
    private static final int DAY = 1440;
    private final LoadMatrix matrix;
    private final int shift;
    private final int horizon;
    private final double[] actual;
    private final double[] naive;
    private double absError;
    private double naiveError;
    private double total;
    private int rounds;

    ForecastScorer(LoadMatrix matrix, int grid, int horizon) {
      if (grid < 1 || grid > Ring.SLICES || Integer.bitCount(grid) != 1 || horizon < 1) {
        throw new IllegalArgumentException("forecast grid must be a power of two 1..4096");
      }
      this.matrix = matrix;
      this.shift = Ring.SLICE_BITS - Integer.numberOfTrailingZeros(grid);
      this.horizon = horizon;
      this.actual = new double[grid];
      this.naive = new double[grid];
    }

    void score(ForecastingStrategy strategy, int m) {
      double[] f = strategy.lastForecast();
      if (f == null || m < DAY || m + horizon > matrix.minutes()) {
        return;
      }
      if (f.length != actual.length) {
        throw new IllegalStateException(strategy.name() + " forecast has " + f.length
            + " parts, not " + actual.length);
      }
      Arrays.fill(actual, 0);
      Arrays.fill(naive, 0);
      for (int t = m; t < m + horizon; t++) {
        for (int e = matrix.rowStart(t); e < matrix.rowEnd(t); e++) {
          actual[matrix.slice(e) >>> shift] += matrix.cost(e) / horizon;
        }
        for (int e = matrix.rowStart(t - DAY); e < matrix.rowEnd(t - DAY); e++) {
          naive[matrix.slice(e) >>> shift] += matrix.cost(e) / horizon;
        }
      }
      for (int g = 0; g < actual.length; g++) {
        absError += Math.abs(f[g] - actual[g]);
        naiveError += Math.abs(naive[g] - actual[g]);
        total += actual[g];
      }
      rounds++;
    }

    Map<String, Object> figures() {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("forecast_wape", total > 0 ? absError / total : Double.NaN);
      out.put("forecast_mase", naiveError > 0 ? absError / naiveError : Double.NaN);
      out.put("forecast_naive_wape", total > 0 ? naiveError / total : Double.NaN);
      out.put("forecast_rounds", rounds);
      return out;
    }
  }

  private static final class MoveRecorder {
    private long[] millis = new long[64];
    private int[] start = new int[64];
    private int[] end = new int[64];
    private int[] from = new int[64];
    private int[] to = new int[64];
    private double[] load = new double[64];
    private int n;

    void add(long t, int a, int b, int f, int d, double l) {
      if (n == millis.length) {
        int c = n * 2;
        millis = Arrays.copyOf(millis, c);
        start = Arrays.copyOf(start, c);
        end = Arrays.copyOf(end, c);
        from = Arrays.copyOf(from, c);
        to = Arrays.copyOf(to, c);
        load = Arrays.copyOf(load, c);
      }
      millis[n] = t;
      start[n] = a;
      end[n] = b;
      from[n] = f;
      to[n] = d;
      load[n] = l;
      n++;
    }

    int size() {
      return n;
    }

    StrategyResult.MoveLog build() {
      return new StrategyResult.MoveLog(Arrays.copyOf(millis, n), Arrays.copyOf(start, n),
          Arrays.copyOf(end, n), Arrays.copyOf(from, n), Arrays.copyOf(to, n),
          Arrays.copyOf(load, n));
    }
  }
}
