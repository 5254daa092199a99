package io.plb.core.balance;

import io.plb.core.balance.Cause.Reason;
import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The balancer's planner (DESIGN §8): a pure, deterministic function from the map, the servers,
 * the load outlook, the configuration, the time and the recent moves to a {@link Plan}.
 *
 * <p><b>What it plans for.</b> A server's planned load is the sum of its ranges' predicted rates at
 * the upper quantile (combined as {@code balancer.upperCorrelation} says); its utilisation is that
 * over its capacity. The criterion ({@link Criterion}) is computed over ACTIVE servers only.
 *
 * <p><b>When it acts.</b> When the criterion is above its threshold, or when the previous plan left
 * the balancer engaged ({@link MoveHistory#engaged()}) and the criterion is still above threshold −
 * hysteresis; and never while every active server is at or below {@code balancer.actAbove}. Once
 * acting, it plans until the criterion is at or below threshold − hysteresis, or the budgets are
 * spent, or no server above the level can be relieved.
 *
 * <p><b>How.</b> Greedy, one handover at a time: take the most utilised active server above the
 * criterion's level (for {@code MAX_MEAN} (threshold − hysteresis) × mean, for {@code HIGH_WATER}
 * threshold − hysteresis, for {@code MAX_MEAN_OR_HIGH_WATER} the lower of those two, for {@code
 * STDDEV} the mean utilisation); among its movable ranges and the
 * {@value #CANDIDATE_TARGETS} least utilised eligible targets, pick the move with the largest
 * imbalance removed (the drop of the pair's max utilisation) per unit of disruption (1 + the
 * range's backlog and mean rate over the expected hold, as a share of what the source serves in
 * that time, times {@code balancer.disruptionWeight}). A move must lower the pair's max by more
 * than {@code balancer.minGain}; under {@code STDDEV} it must also lower the standard deviation.
 * A range of that server too hot to place anywhere (every target would end up above what the
 * source comes down to: it would only move the hot spot) and
 * bringing at least {@code balancer.splitMinLoad} of its capacity is split instead — around a hot
 * key that brings at least {@code balancer.hotKeyShare} of its load, else where its predicted load
 * halves — when moving one of the pieces scores better than the best whole-range move; the next
 * step moves the piece. When every range of that server is too small to move with gain, a run of
 * its adjacent movable ranges (at most {@code balancer.maxMergesPerMove} + 1) is merged into one
 * range that can, sized to level the server with its least utilised target. A server that still
 * cannot be relieved is left (and named in {@link Plan#notes()}). Finally, adjacent cold ranges of one active owner are
 * merged (bounded by {@code balancer.maxMergesPerRound} and {@code balancer.minRangesPerServer}).
 *
 * <p><b>Never.</b> More than {@code maxMovesPerRound} handovers, more than {@code
 * maxMovesPerServer} per server (counting the handovers already running from it), more than
 * {@code maxMovesPerWindow} in any {@code moveWindow} (counting {@link MoveHistory}); a range moved
 * within {@code minDwell} (by its own {@code lastMovedAtMillis} or any move in the history that
 * overlaps it); a pinned range or a range with a handover in progress (not moved, split or
 * merged); a move onto a DRAINING or DOWN server. Ranges owned by DRAINING or DOWN servers are left
 * alone: the drain and forced-handover paths move them, with their own choice of target, and a
 * planner that also moved them would race those paths for the same ranges. Their load is still
 * shown in the plan's utilisations.
 *
 * <p><b>Determinism.</b> Servers are ordered by id and ranges by position; every tie is broken by
 * that order, so the same input (in any server order) gives the same plan. Each step moves a range
 * from a server to one whose new utilisation stays below the source's old one, so on a stationary
 * load the sorted vector of utilisations falls with every move and re-planning comes to rest.
 *
 * <p><b>Cost.</b> O(n log m) to price n ranges against an outlook of m segments, O(n log n) at
 * most for sorting ranges by load, and per step O(servers + ranges of the source × targets).
 *
 * <p>Stateless and thread-safe: every call works on its own copies.
 */
public final class Planner {
  /** How many of the least utilised eligible servers each move considers as targets. */
  static final int CANDIDATE_TARGETS = 8;

  /** How many of a source's hottest ranges too hot to place are tried for a split. */
  static final int SPLIT_CANDIDATES = 8;

  private static final int MAX_NOTES = 12;

  private Planner() {}

  /**
   * Plans one round.
   *
   * @param ranges the map: ranges in ring order covering it exactly once
   * @param servers every registered server (any order; ids unique); every assigned range's owner
   *     must be among them
   * @param outlook predicted load over the horizon
   * @param config balancer settings
   * @param nowMillis the time of the round
   * @param recent moves of the recent past and whether the last plan left the balancer engaged
   * @throws IllegalArgumentException when the input is not a valid map or names an unknown server
   */
  public static Plan plan(
      List<BalanceRange> ranges,
      List<BalanceServer> servers,
      LoadOutlook outlook,
      BalancerConfig config,
      long nowMillis,
      MoveHistory recent) {
    Objects.requireNonNull(ranges, "ranges");
    Objects.requireNonNull(servers, "servers");
    Objects.requireNonNull(outlook, "outlook");
    Objects.requireNonNull(config, "config");
    Objects.requireNonNull(recent, "recent");
    return new Run(ranges, servers, outlook, config, nowMillis, recent).plan();
  }

  /** A range while the plan is built: its bounds change when split or merged. */
  private static final class Piece {
    long start;
    long end;
    int owner; // server index, -1 when unassigned
    final boolean pinned;
    final boolean moving;
    long lastMoved;
    double backlog;
    double mean;
    double upper;
    double spread; // upper - mean
    boolean touched; // moved or split by this plan: not merged

    Piece(long start, long end, int owner, boolean pinned, boolean moving, long lastMoved,
        double backlog) {
      this.start = start;
      this.end = end;
      this.owner = owner;
      this.pinned = pinned;
      this.moving = moving;
      this.lastMoved = lastMoved;
      this.backlog = backlog;
    }

    void price(LoadOutlook outlook) {
      setRates(outlook.mean(start, end), outlook.upper(start, end));
    }

    void setRates(double mean, double upper) {
      this.mean = mean;
      this.upper = Math.max(mean, upper);
      this.spread = this.upper - mean;
    }
  }

  /** The best move found for one source. */
  private record Candidate(Piece piece, int target, double gain, double score, double sourceAfter,
      double targetAfter) {}

  /** Criterion figures over the active servers. */
  private record Stats(double value, double maxU, double weightedMean, double meanU, double sumU,
      double sumU2, int active) {}

  private static final class Run {
    private final BalancerConfig cfg;
    private final LoadOutlook outlook;
    private final long now;
    private final MoveHistory history;
    private final double rho;
    private final double holdSeconds;

    private final String[] ids;
    private final double[] cap;
    private final boolean[] active;
    private final double[] m;
    private final double[] s1;
    private final double[] s2;
    private final int[] budget;
    private final int[] rangeCount;
    private final boolean[] stuck;
    private final List<List<Piece>> movable = new ArrayList<>();
    private final boolean[] sorted;
    private final List<Piece> ring;

    private final List<PlanAction> actions = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    private int movesLeft;
    private int splitsLeft;
    private int mergesLeft;
    private int stuckNotes;
    /** The largest upper rate of one hot key: load no split can divide. */
    private final double heaviestLump;
    private final double maxActiveCap;

    Run(List<BalanceRange> ranges, List<BalanceServer> servers, LoadOutlook outlook,
        BalancerConfig cfg, long now, MoveHistory history) {
      this.cfg = cfg;
      this.outlook = outlook;
      this.now = now;
      this.history = history;
      this.rho = cfg.upperCorrelation();
      this.holdSeconds = cfg.expectedHold().toMillis() / 1000.0;

      List<BalanceServer> byId = new ArrayList<>(servers);
      byId.sort(Comparator.comparing(BalanceServer::id));
      int n = byId.size();
      ids = new String[n];
      cap = new double[n];
      active = new boolean[n];
      Map<String, Integer> index = new HashMap<>(n * 2);
      for (int i = 0; i < n; i++) {
        BalanceServer s = Objects.requireNonNull(byId.get(i), "server");
        if (i > 0 && ids[i - 1].equals(s.id())) {
          throw new IllegalArgumentException("server " + s.id() + " is listed twice");
        }
        ids[i] = s.id();
        cap[i] = s.capacity();
        active[i] = s.isActive();
        index.put(s.id(), i);
        movable.add(new ArrayList<>());
      }
      double lump = 0;
      for (LoadOutlook.HotKey k : outlook.hotKeys()) {
        lump = Math.max(lump, k.upper());
      }
      heaviestLump = lump;
      double c = 0;
      for (int i = 0; i < n; i++) {
        if (active[i]) {
          c = Math.max(c, cap[i]);
        }
      }
      maxActiveCap = c;
      m = new double[n];
      s1 = new double[n];
      s2 = new double[n];
      budget = new int[n];
      rangeCount = new int[n];
      stuck = new boolean[n];
      sorted = new boolean[n];

      ring = new ArrayList<>(ranges.size());
      checkMap(ranges);
      long[] starts = new long[ranges.size()];
      for (int i = 0; i < starts.length; i++) {
        starts[i] = ranges.get(i).start();
      }
      double[] means = new double[starts.length];
      double[] uppers = new double[starts.length];
      outlook.rangeRates(starts, means, uppers); // one sweep, not a search per range
      for (int i = 0; i < ranges.size(); i++) {
        BalanceRange r = ranges.get(i);
        int owner = -1;
        if (!r.owner().isEmpty()) {
          Integer o = index.get(r.owner());
          if (o == null) {
            throw new IllegalArgumentException(
                "range " + r.rangeText() + " is owned by " + r.owner()
                    + ", which is not among the servers");
          }
          owner = o;
        }
        Piece p = new Piece(r.start(), r.end(), owner, r.pinned(), r.moving(),
            r.lastMovedAtMillis(), r.backlog());
        p.setRates(means[i], uppers[i]);
        ring.add(p);
      }
      // Dwell also counts moves the history knows of, even if the range was split or merged since.
      for (MoveHistory.Entry e : history.entries()) {
        int i = floor(starts, e.rangeStart());
        for (; i < starts.length; i++) {
          Piece p = ring.get(i);
          if (e.rangeEnd() != Ring.RING_END
              && Long.compareUnsigned(p.start, e.rangeEnd()) >= 0) {
            break;
          }
          p.lastMoved = Math.max(p.lastMoved, e.atMillis());
        }
      }
      long dwell = cfg.minDwell().toMillis();
      int unassigned = 0;
      int leftToDrain = 0;
      for (Piece p : ring) {
        if (p.owner < 0) {
          unassigned++;
          continue;
        }
        int o = p.owner;
        add(o, p);
        rangeCount[o]++;
        if (p.moving) {
          budget[o]--; // a handover already running from this server
        }
        if (!active[o]) {
          leftToDrain++;
        } else if (!p.pinned && !p.moving && !(p.lastMoved > now - dwell)) {
          movable.get(o).add(p);
        }
      }
      for (int i = 0; i < n; i++) {
        budget[i] += cfg.maxMovesPerServer();
      }
      int window = history.movesAfter(now - cfg.moveWindow().toMillis());
      int windowLeft = Math.max(0, cfg.maxMovesPerWindow() - window);
      movesLeft = Math.min(cfg.maxMovesPerRound(), windowLeft);
      splitsLeft = cfg.maxSplitsPerRound();
      mergesLeft = cfg.maxMergesPerRound();
      if (unassigned > 0) {
        notes.add(unassigned + " unassigned range(s) left alone");
      }
      if (leftToDrain > 0) {
        notes.add(leftToDrain + " range(s) on DRAINING or DOWN servers left to the drain and"
            + " forced-handover paths");
      }
      if (windowLeft < cfg.maxMovesPerRound()) {
        notes.add("window budget: " + window + " move(s) in the last " + cfg.moveWindow()
            + ", " + windowLeft + " left of " + cfg.maxMovesPerWindow());
      }
    }

    private static void checkMap(List<BalanceRange> ranges) {
      if (ranges.isEmpty()) {
        throw new IllegalArgumentException("the map has no ranges; it must cover the ring");
      }
      long expected = 0L;
      for (int i = 0; i < ranges.size(); i++) {
        BalanceRange r = Objects.requireNonNull(ranges.get(i), "range");
        if (i > 0 && expected == Ring.RING_END) {
          throw new IllegalArgumentException(
              "range " + r.rangeText() + " follows the range that ends the ring");
        }
        if (r.start() != expected) {
          throw new IllegalArgumentException(
              "the map must cover the ring in order: range " + r.rangeText() + " does not start at "
                  + Ring.hex(expected) + (Long.compareUnsigned(r.start(), expected) < 0
                      ? " (overlap)" : " (gap)"));
        }
        expected = r.end();
      }
      if (expected != Ring.RING_END) {
        throw new IllegalArgumentException(
            "the map must cover the ring: it ends at " + Ring.hexEnd(expected));
      }
    }

    /** The last index whose start is <= position (unsigned); 0 if none. */
    private static int floor(long[] starts, long position) {
      int lo = 0;
      int hi = starts.length - 1;
      while (lo < hi) {
        int mid = (lo + hi + 1) >>> 1;
        if (Long.compareUnsigned(starts[mid], position) <= 0) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      return lo;
    }

    private void add(int s, Piece p) {
      m[s] += p.mean;
      s1[s] += p.spread;
      s2[s] += p.spread * p.spread;
    }

    private void remove(int s, Piece p) {
      m[s] -= p.mean;
      s1[s] -= p.spread;
      s2[s] -= p.spread * p.spread;
    }

    private double planned(double mean, double a, double b) {
      if (rho == 1.0) {
        return Math.max(0.0, mean + a);
      }
      return Math.max(0.0, mean + Math.sqrt(Math.max(0.0, rho * a * a + (1 - rho) * b)));
    }

    private double util(int s) {
      return planned(m[s], s1[s], s2[s]) / cap[s];
    }

    private Stats stats() {
      double maxU = 0;
      double sumP = 0;
      double sumCap = 0;
      double sumU = 0;
      double sumU2 = 0;
      int n = 0;
      for (int s = 0; s < ids.length; s++) {
        if (!active[s]) {
          continue;
        }
        double u = util(s);
        maxU = Math.max(maxU, u);
        sumP += u * cap[s];
        sumCap += cap[s];
        sumU += u;
        sumU2 += u * u;
        n++;
      }
      double weightedMean = sumCap > 0 ? sumP / sumCap : 0;
      double meanU = n > 0 ? sumU / n : 0;
      double value = switch (cfg.criterion()) {
        case MAX_MEAN -> weightedMean > 0 ? maxU / weightedMean : 1.0;
        case HIGH_WATER -> maxU;
        case MAX_MEAN_OR_HIGH_WATER -> Math.max(
            (weightedMean > 0 ? maxU / weightedMean : 1.0) - ratio(weightedMean),
            maxU - cfg.highWater());
        case STDDEV -> n > 0 ? Math.sqrt(Math.max(0.0, sumU2 / n - meanU * meanU)) : 0.0;
      };
      return new Stats(value, maxU, weightedMean, meanU, sumU, sumU2, n);
    }

    /** The utilisation above which an active server needs relief. */
    private double level(Stats st) {
      return switch (cfg.criterion()) {
        case MAX_MEAN -> exitLevel(st) * st.weightedMean();
        case HIGH_WATER -> cfg.exitLevel();
        case MAX_MEAN_OR_HIGH_WATER -> Math.min(
            (ratio(st.weightedMean()) - cfg.hysteresis()) * st.weightedMean(),
            cfg.highWater() - cfg.hysteresis());
        case STDDEV -> st.meanU();
      };
    }

    /**
     * The max/mean ratio balanced to: {@code maxMeanRatio}, raised to 1 + lumpAllowance × the
     * hottest indivisible load over a mean server's planned load when that is higher.
     */
    private double ratio(double weightedMean) {
      double r = cfg.maxMeanRatio();
      if (cfg.lumpAllowance() > 0 && weightedMean > 0 && maxActiveCap > 0) {
        r = Math.max(r, 1 + cfg.lumpAllowance() * lumpShare(weightedMean));
      }
      return r;
    }

    /** The hottest indivisible load as a share of a mean server's planned load. */
    private double lumpShare(double weightedMean) {
      return heaviestLump / (weightedMean * maxActiveCap);
    }

    /** The criterion's threshold this round ({@link #ratio} for {@code MAX_MEAN}). */
    private double threshold(Stats st) {
      return cfg.criterion() == Criterion.MAX_MEAN ? ratio(st.weightedMean()) : cfg.threshold();
    }

    private double exitLevel(Stats st) {
      return threshold(st) - cfg.hysteresis();
    }

    Plan plan() {
      TreeMap<String, Double> before = utilisations();
      Stats st = stats();
      double criterionBefore = st.value();
      boolean acting = st.active() >= 2
          && st.maxU() > cfg.actAbove()
          && (criterionBefore > threshold(st)
              || (history.engaged() && criterionBefore > exitLevel(st)));
      if (acting) {
        balance();
      } else {
        notes.add(whyNotActing(st));
      }
      merge(acting);
      TreeMap<String, Double> after = utilisations();
      Stats end = stats();
      double criterionAfter = end.value();
      boolean engaged = acting && criterionAfter > exitLevel(end);
      return new Plan(actions, cfg.criterion(), criterionBefore, criterionAfter, acting, engaged,
          before, after, notes);
    }

    /** One line for the operator: why this round does not balance. */
    private String whyNotActing(Stats st) {
      if (st.active() < 2) {
        return "fewer than two active servers: nothing to balance";
      }
      if (st.maxU() <= cfg.actAbove()) {
        return "the busiest server is at " + fmt(st.maxU()) + ", at or below actAbove "
            + fmt(cfg.actAbove()) + ": a quiet cluster is left as it is";
      }
      String ratioNote = "";
      double ratio = ratio(st.weightedMean());
      if (ratio > cfg.maxMeanRatio()
          && (cfg.criterion() == Criterion.MAX_MEAN
              || cfg.criterion() == Criterion.MAX_MEAN_OR_HIGH_WATER)) {
        ratioNote = "; max/mean " + fmt(st.weightedMean() > 0 ? st.maxU() / st.weightedMean() : 1)
            + " is held to " + fmt(ratio) + ", not " + fmt(cfg.maxMeanRatio())
            + ": the hottest key brings " + fmt(lumpShare(st.weightedMean()))
            + " of a mean server's load (lumpAllowance " + fmt(cfg.lumpAllowance()) + ")";
      }
      return cfg.criterion() + " " + fmt(st.value()) + " is within its threshold "
          + fmt(threshold(st)) + ratioNote;
    }

    private TreeMap<String, Double> utilisations() {
      TreeMap<String, Double> out = new TreeMap<>();
      for (int s = 0; s < ids.length; s++) {
        out.put(ids[s], util(s));
      }
      return out;
    }

    private void balance() {
      while (true) {
        Stats st = stats();
        if (st.value() <= exitLevel(st)) {
          return;
        }
        if (movesLeft <= 0) {
          notes.add("move budget spent with " + cfg.criterion() + " at "
              + fmt(st.value()) + " (exit level " + fmt(exitLevel(st)) + ")");
          return;
        }
        double level = level(st);
        int source = -1;
        for (int s = 0; s < ids.length; s++) {
          if (active[s] && !stuck[s] && util(s) > level
              && (source < 0 || util(s) > util(source))) {
            source = s;
          }
        }
        if (source < 0) {
          return;
        }
        if (budget[source] <= 0) {
          stuck(source, "its handover budget (" + cfg.maxMovesPerServer() + ") is spent");
          continue;
        }
        int[] targets = targets(source);
        if (targets.length == 0) {
          stuck(source, "no active server can take a range");
          continue;
        }
        Candidate c = bestMove(source, movable(source), targets, st);
        SplitOption split = bestSplit(source, targets, st);
        if (split != null && (c == null || split.move().score() > c.score())) {
          split(source, split, st);
        } else if (c != null) {
          move(source, c, st);
        } else {
          Coalesce unit = bestCoalesce(source, targets, st);
          if (unit != null) {
            coalesce(source, unit, st);
          } else {
            stuck(source, "no movable range lowers it by more than " + fmt(cfg.minGain()));
          }
        }
      }
    }

    private void stuck(int s, String why) {
      stuck[s] = true;
      if (stuckNotes++ < MAX_NOTES) {
        notes.add(ids[s] + " at " + fmt(util(s)) + " left as it is: " + why);
      }
    }

    /** The source's movable ranges, hottest first (sorted on first use). */
    private List<Piece> movable(int s) {
      List<Piece> list = movable.get(s);
      if (!sorted[s]) {
        list.sort(PIECE_ORDER);
        sorted[s] = true;
      }
      return list;
    }

    private static final Comparator<Piece> PIECE_ORDER =
        (a, b) -> {
          int c = Double.compare(b.upper, a.upper);
          return c != 0 ? c : Long.compareUnsigned(a.start, b.start);
        };

    /** Up to CANDIDATE_TARGETS eligible targets, least utilised first (ties by id). */
    private int[] targets(int source) {
      int[] best = new int[CANDIDATE_TARGETS];
      double[] bestU = new double[CANDIDATE_TARGETS];
      int k = 0;
      for (int t = 0; t < ids.length; t++) {
        if (t == source || !active[t] || budget[t] <= 0) {
          continue;
        }
        double u = util(t);
        if (k == CANDIDATE_TARGETS && u >= bestU[k - 1]) {
          continue;
        }
        int i = k == CANDIDATE_TARGETS ? k - 1 : k++;
        while (i > 0 && bestU[i - 1] > u) { // insertion keeps the earlier (smaller id) on ties
          best[i] = best[i - 1];
          bestU[i] = bestU[i - 1];
          i--;
        }
        best[i] = t;
        bestU[i] = u;
      }
      return Arrays.copyOf(best, k);
    }

    private double disruption(Piece p, int source) {
      double delayed = p.backlog + p.mean * holdSeconds;
      return 1.0 + cfg.disruptionWeight() * delayed / (cap[source] * holdSeconds);
    }

    /** The best qualifying move of one of {@code pieces} from {@code s}, or null. */
    private Candidate bestMove(int s, List<Piece> pieces, int[] targets, Stats st) {
      double us = util(s);
      Candidate best = null;
      for (Piece p : pieces) {
        // A move cannot lower the source by more than the range's share of it.
        if (p.upper / cap[s] <= cfg.minGain()) {
          if (pieces == movable.get(s) && sorted[s]) {
            break; // hottest first: every later range is smaller still
          }
          continue;
        }
        double usAfter = planned(m[s] - p.mean, s1[s] - p.spread, s2[s] - p.spread * p.spread)
            / cap[s];
        double d = disruption(p, s);
        for (int t : targets) {
          double ut = util(t);
          double utAfter = planned(m[t] + p.mean, s1[t] + p.spread, s2[t] + p.spread * p.spread)
              / cap[t];
          double gain = us - Math.max(usAfter, utAfter);
          if (!(gain > cfg.minGain())) {
            continue;
          }
          if (cfg.criterion() == Criterion.STDDEV) {
            int n = st.active();
            double sumU = st.sumU() - us - ut + usAfter + utAfter;
            double sumU2 = st.sumU2() - us * us - ut * ut + usAfter * usAfter + utAfter * utAfter;
            double varAfter = sumU2 / n - (sumU / n) * (sumU / n);
            double varBefore = st.sumU2() / n - st.meanU() * st.meanU();
            if (!(varAfter < varBefore)) {
              continue;
            }
          }
          double score = gain / d;
          if (best == null || score > best.score()) {
            best = new Candidate(p, t, gain, score, usAfter, utAfter);
          }
        }
      }
      return best;
    }

    private void move(int s, Candidate c, Stats st) {
      Piece p = c.piece();
      int t = c.target();
      double usBefore = util(s);
      double utBefore = util(t);
      remove(s, p);
      add(t, p);
      p.owner = t;
      p.lastMoved = now;
      p.touched = true;
      movable.get(s).remove(p);
      rangeCount[s]--;
      rangeCount[t]++;
      budget[s]--;
      budget[t]--;
      movesLeft--;
      String detail = String.format(Locale.ROOT,
          "%s %s, %s above level %s: %s %s -> %s, %s %s -> %s; planned rate %s (%s of %s's"
              + " capacity)",
          cfg.criterion(), fmt(st.value()), ids[s], fmt(level(st)), ids[s], fmt(usBefore),
          fmt(util(s)), ids[t], fmt(utBefore), fmt(util(t)), fmt(p.upper),
          fmt(p.upper / cap[s]), ids[s]);
      Cause cause = new Cause(Reason.REBALANCE, cfg.criterion(), st.value(), ids[s], usBefore,
          util(s), ids[t], utBefore, util(t), p.mean, p.upper, detail);
      actions.add(new PlanAction.Move(p.start, p.end, ids[s], ids[t], cause));
    }

    /** A split worth making: the range, where to cut, and the best move of a piece after it. */
    private record SplitOption(Piece piece, long[] cuts, LoadOutlook.HotKey key,
        List<Piece> pieces, Candidate move) {}

    /**
     * The best split of one of the source's hottest ranges that is too hot to place anywhere (see
     * {@link #placeable}): cut around its dominating hot key, or where its load
     * halves, and judged by the best move of a piece afterwards. Null when no split helps.
     */
    private SplitOption bestSplit(int s, int[] targets, Stats st) {
      if (splitsLeft <= 0) {
        return null;
      }
      SplitOption best = null;
      int tried = 0;
      for (Piece p : movable(s)) {
        if (tried == SPLIT_CANDIDATES || p.upper < cfg.splitMinLoad() * cap[s]) {
          break; // hottest first
        }
        if (p.end - p.start == 1L || placeable(s, p, targets)) {
          continue; // cannot be split, or can be placed whole
        }
        tried++;
        LoadOutlook.HotKey key = dominatingKey(p);
        long[] cuts = key != null ? cutsAround(p, key.hash())
            : new long[] {outlook.splitPoint(p.start, p.end)};
        if (cuts.length == 0 || cuts.length > splitsLeft
            || ring.size() + cuts.length > cfg.maxRanges()) {
          continue;
        }
        List<Piece> pieces = cut(p, cuts);
        // Try the split on the source's figures, then put them back.
        remove(s, p);
        for (Piece q : pieces) {
          add(s, q);
        }
        Candidate move = bestMove(s, pieces, targets, st);
        for (Piece q : pieces) {
          remove(s, q);
        }
        add(s, p);
        if (move != null && (best == null || move.score() > best.move().score())) {
          best = new SplitOption(p, cuts, key, pieces, move);
        }
      }
      return best;
    }

    /**
     * Whether some target takes the range whole without overshooting: the target stays at or
     * below what the source comes down to. A range that overshoots on every target is too hot to
     * place anywhere — wherever it goes, it makes a new hot spot.
     */
    private boolean placeable(int s, Piece p, int[] targets) {
      double usAfter = planned(m[s] - p.mean, s1[s] - p.spread, s2[s] - p.spread * p.spread)
          / cap[s];
      for (int t : targets) {
        double utAfter = planned(m[t] + p.mean, s1[t] + p.spread, s2[t] + p.spread * p.spread)
            / cap[t];
        if (utAfter <= usAfter) {
          return true;
        }
      }
      return false;
    }

    /** Makes a split chosen by {@link #bestSplit}; the pieces stay on the source for now. */
    private void split(int s, SplitOption o, Stats st) {
      Piece p = o.piece();
      List<Piece> pieces = o.pieces();
      double before = util(s);
      remove(s, p);
      for (Piece q : pieces) {
        add(s, q);
      }
      int at = ring.indexOf(p);
      ring.remove(at);
      ring.addAll(at, pieces);
      List<Piece> list = movable.get(s);
      list.remove(p);
      list.addAll(pieces);
      sorted[s] = false;
      rangeCount[s] += o.cuts().length;
      splitsLeft -= o.cuts().length;
      LoadOutlook.HotKey key = o.key();
      Reason reason = key != null ? Reason.ISOLATE_HOT_KEY : Reason.SPLIT_HALF;
      String why = key != null
          ? "hot key " + Ring.hex(key.hash()) + " brings " + fmt(key.upper())
              + " of the range's planned rate " + fmt(p.upper) + "; it gets its own range"
          : "halves planned rate " + fmt(p.upper) + " into " + fmt(pieces.get(0).upper)
              + " + " + fmt(pieces.get(1).upper);
      String detail = why + "; too hot to move whole from " + ids[s] + " (" + fmt(before)
          + ") to any server";
      long rangeStart = p.start;
      for (long c : o.cuts()) {
        Cause cause = new Cause(reason, cfg.criterion(), st.value(), ids[s], before, util(s),
            null, Double.NaN, Double.NaN, p.mean, p.upper, detail);
        actions.add(new PlanAction.Split(rangeStart, c, cause));
        rangeStart = c;
      }
    }

    /** A run of adjacent ranges of one server, merged into {@code unit}, which can then move. */
    private record Coalesce(List<Piece> run, Piece unit, Candidate move) {}

    /**
     * When no single range of the source can move with gain (each is too small), the run of
     * adjacent movable ranges of it (at most {@code maxMergesPerMove} + 1) whose planned rate comes
     * closest to, without passing, what would level the source with its least utilised target;
     * null if merging that run would still not give a move with gain.
     */
    private Coalesce bestCoalesce(int s, int[] targets, Stats st) {
      int maxRun = cfg.maxMergesPerMove() + 1;
      if (maxRun < 2) {
        return null;
      }
      int t0 = targets[0];
      double ideal = (util(s) - util(t0)) / (1 / cap[s] + 1 / cap[t0]);
      if (!(ideal > cfg.minGain() * cap[s])) {
        return null;
      }
      List<Piece> list = new ArrayList<>();
      for (Piece p : movable.get(s)) {
        if (!p.touched) {
          list.add(p);
        }
      }
      list.sort((a, b) -> Long.compareUnsigned(a.start, b.start));
      int bestL = -1;
      int bestR = -1;
      double bestSum = 0;
      int l = 0;
      double sum = 0;
      for (int r = 0; r < list.size(); r++) {
        if (r > l && list.get(r - 1).end != list.get(r).start) {
          l = r; // not adjacent: a new run starts
          sum = 0;
        }
        sum += list.get(r).upper;
        while (l < r && (sum > ideal || r - l + 1 > maxRun)) {
          sum -= list.get(l++).upper;
        }
        if (r > l && sum <= ideal && sum > bestSum) {
          bestSum = sum;
          bestL = l;
          bestR = r;
        }
      }
      if (bestL < 0) {
        return null;
      }
      List<Piece> run = new ArrayList<>(list.subList(bestL, bestR + 1));
      Piece first = run.get(0);
      Piece unit = new Piece(first.start, run.get(run.size() - 1).end, s, false, false,
          BalanceRange.NEVER, 0.0);
      unit.price(outlook);
      for (Piece p : run) {
        unit.lastMoved = Math.max(unit.lastMoved, p.lastMoved);
        unit.backlog += p.backlog;
      }
      // Try the merge on the source's figures, then put them back.
      for (Piece p : run) {
        remove(s, p);
      }
      add(s, unit);
      Candidate move = bestMove(s, List.of(unit), targets, st);
      remove(s, unit);
      for (Piece p : run) {
        add(s, p);
      }
      return move == null ? null : new Coalesce(run, unit, move);
    }

    /** Merges a run chosen by {@link #bestCoalesce}; the next step moves the merged range. */
    private void coalesce(int s, Coalesce c, Stats st) {
      List<Piece> run = c.run();
      Piece unit = c.unit();
      double before = util(s);
      for (Piece p : run) {
        remove(s, p);
      }
      add(s, unit);
      int at = ring.indexOf(run.get(0));
      ring.subList(at, at + run.size()).clear();
      ring.add(at, unit);
      List<Piece> list = movable.get(s);
      list.removeAll(run);
      list.add(unit);
      sorted[s] = false;
      rangeCount[s] -= run.size() - 1;
      String detail = run.size() + " adjacent ranges of " + ids[s] + " (" + fmt(before)
          + "), each too small to move with gain, together planned rate " + fmt(unit.upper)
          + " (" + fmt(unit.upper / cap[s]) + " of its capacity)";
      for (int i = 1; i < run.size(); i++) {
        Cause cause = new Cause(Reason.MERGE_TO_MOVE, cfg.criterion(), st.value(), ids[s], before,
            util(s), null, Double.NaN, Double.NaN, unit.mean, unit.upper, detail);
        actions.add(new PlanAction.Merge(unit.start, run.get(i).start, cause));
      }
    }

    /** The hot key bringing at least {@code hotKeyShare} of the range's load, or null. */
    private LoadOutlook.HotKey dominatingKey(Piece p) {
      LoadOutlook.HotKey k = outlook.hottestKey(p.start, p.end);
      return k != null && k.upper() > 0 && k.upper() >= cfg.hotKeyShare() * p.upper ? k : null;
    }

    /** The cuts that give hash {@code h} a range of its own inside {@code p}. */
    private static long[] cutsAround(Piece p, long h) {
      long after = h + 1; // 0 (the ring's end) when h is the ring's last hash
      boolean cutBefore = h != p.start;
      boolean cutAfter = after != p.end;
      if (cutBefore && cutAfter) {
        return new long[] {h, after};
      } else if (cutBefore) {
        return new long[] {h};
      } else if (cutAfter) {
        return new long[] {after};
      }
      return new long[0];
    }

    private List<Piece> cut(Piece p, long[] cuts) {
      List<Piece> pieces = new ArrayList<>(cuts.length + 1);
      long from = p.start;
      for (int i = 0; i <= cuts.length; i++) {
        long to = i < cuts.length ? cuts[i] : p.end;
        Piece q = new Piece(from, to, p.owner, p.pinned, p.moving, p.lastMoved, 0.0);
        q.price(outlook);
        q.backlog = p.upper > 0 ? p.backlog * (q.upper / p.upper) : 0.0;
        q.touched = true; // not merged back in the plan that split it
        pieces.add(q);
        from = to;
      }
      return pieces;
    }

    /**
     * Merges adjacent cold ranges of one active owner, in ring order, within the bounds. Not on a
     * server this plan could not bring down to the criterion's level: with {@code
     * upperCorrelation} below 1 a merge adds a little to the owner's planned load.
     */
    private void merge(boolean acting) {
      if (cfg.mergeMaxLoad() <= 0 || mergesLeft <= 0) {
        return;
      }
      double level = acting ? level(stats()) : Double.POSITIVE_INFINITY;
      boolean[] hot = new boolean[ids.length];
      for (int s = 0; s < ids.length; s++) {
        hot[s] = util(s) > level;
      }
      List<Piece> out = new ArrayList<>(ring.size());
      Piece left = null;
      for (Piece right : ring) {
        if (left != null && mergesLeft > 0 && mergeable(left, right) && !hot[left.owner]) {
          int o = left.owner;
          double before = util(o);
          Piece merged = new Piece(left.start, right.end, o, false, false,
              Math.max(left.lastMoved, right.lastMoved), left.backlog + right.backlog);
          merged.price(outlook);
          remove(o, left);
          remove(o, right);
          add(o, merged);
          rangeCount[o]--;
          mergesLeft--;
          String detail = String.format(Locale.ROOT,
              "together planned rate %s, %s of %s's capacity (merge at most %s)",
              fmt(merged.upper), fmt(merged.upper / cap[o]), ids[o], fmt(cfg.mergeMaxLoad()));
          Cause cause = new Cause(Reason.MERGE_COLD, cfg.criterion(), Double.NaN, ids[o],
              before, util(o), null, Double.NaN, Double.NaN, merged.mean, merged.upper, detail);
          actions.add(new PlanAction.Merge(left.start, right.start, cause));
          out.set(out.size() - 1, merged);
          left = merged;
          continue;
        }
        out.add(right);
        left = right;
      }
      ring.clear();
      ring.addAll(out);
    }

    private boolean mergeable(Piece a, Piece b) {
      int o = a.owner;
      return o >= 0
          && o == b.owner
          && active[o]
          && !a.pinned && !b.pinned && !a.moving && !b.moving
          && !a.touched && !b.touched
          && rangeCount[o] > cfg.minRangesPerServer()
          && a.upper + b.upper <= cfg.mergeMaxLoad() * cap[o];
    }
  }

  static String fmt(double v) {
    return String.format(Locale.ROOT, "%.3f", v);
  }
}
