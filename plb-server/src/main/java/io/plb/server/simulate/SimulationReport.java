package io.plb.server.simulate;

import io.plb.client.cli.Json;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.sim.balance.LoadMatrix;
import io.plb.core.sim.balance.SimConfig;
import io.plb.core.sim.balance.StrategyResult;
import io.plb.core.sim.balance.Trace;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The results of one {@code plb simulate} run as a table for people, {@code summary.json} for
 * tools and SVG plots: each strategy's utilisation per server over time, the imbalance over time
 * of every strategy, and cumulative overload-seconds.
 */
final class SimulationReport {
  /** Plots hold at most about this many points per series. */
  private static final int PLOT_POINTS = 1500;

  private final String traceName;
  private final Trace trace;
  private final LoadMatrix matrix;
  private final List<StrategyResult> results;
  private final BalancerConfig predictive;
  private final Map<String, String> tried;

  /**
   * @param predictive the planner settings {@code predictive} ran with
   * @param tried the {@code --balancer} settings that changed them (empty: the defaults)
   */
  SimulationReport(String traceName, Trace trace, LoadMatrix matrix,
      List<StrategyResult> results, BalancerConfig predictive, Map<String, String> tried) {
    this.traceName = traceName;
    this.trace = trace;
    this.matrix = matrix;
    this.results = results;
    this.predictive = predictive;
    this.tried = tried;
  }

  /** One line: how {@code predictive} decides. */
  String predictiveLine() {
    BalancerConfig p = predictive;
    return String.format(Locale.ROOT, "predictive plans on the %s quantile (upperCorrelation %s):"
            + " %s, maxMeanRatio %s, highWater %s, hysteresis %s, actAbove %s, lumpAllowance %s%s",
        trim(p.quantile()), trim(p.upperCorrelation()), p.criterion(), trim(p.maxMeanRatio()),
        trim(p.highWater()), trim(p.hysteresis()), trim(p.actAbove()), trim(p.lumpAllowance()),
        tried.isEmpty() ? " (the leader's defaults)" : " (--balancer " + String.join(",",
            tried.entrySet().stream().map(e -> e.getKey().substring("balancer.".length()) + "="
                + e.getValue()).toList()) + ")");
  }

  /** The human table, with timings when given. */
  String table(double[] seconds) {
    SimConfig c = matrix.config();
    StringBuilder b = new StringBuilder();
    b.append(String.format(Locale.ROOT,
        "trace %s (%,d keys): %,d events in %s .. %s (%,d min, %,d busy)%n", traceName,
        trace.distinctKeys(), matrix.events(), Instant.ofEpochMilli(matrix.startMillis()),
        Instant.ofEpochMilli(matrix.millisOf(matrix.minutes())), matrix.minutes(),
        matrix.busyMinutes()));
    b.append(String.format(Locale.ROOT,
        "%d servers, headroom %s, K %s, spread %d min, hold %d s, %d units; capacity %.2f "
            + "cost/s per server (peak hour %.2f cost/s)%n",
        c.servers(), trim(c.headroom()), trim(c.scale()), c.spreadMinutes(), c.holdSeconds(),
        matrix.units(), matrix.capacity(), matrix.peakHourRate()));
    if (results.stream().anyMatch(r -> r.name().equals("predictive"))) {
      b.append(predictiveLine()).append(String.format("%n"));
    }
    b.append(String.format("%n"));
    List<String[]> rows = new ArrayList<>();
    rows.add(new String[] {"strategy", "overload s", "p99 delay", "max/mean p50", "p99",
        "moves", "splits", "merges", "load moved", "held msgs", "hold s avg/max", "refused",
        "time s"});
    for (int i = 0; i < results.size(); i++) {
      StrategyResult r = results.get(i);
      rows.add(new String[] {
        r.name(), compact(r.overloadSeconds()), delay(r.p99DelaySeconds()),
        fixed(r.p50MaxMean()), fixed(r.p99MaxMean()), Integer.toString(r.moves()),
        Integer.toString(r.splits()), Integer.toString(r.merges()),
        String.format(Locale.ROOT, "%.1f", r.loadMoved()), compact(r.heldMessages()),
        String.format(Locale.ROOT, "%.1f/%.0f", r.holdSecondsMean(), r.holdSecondsMax()),
        Integer.toString(r.rejected()),
        seconds != null && i < seconds.length ? String.format(Locale.ROOT, "%.1f", seconds[i])
            : ""});
    }
    b.append(align(rows));
    for (StrategyResult r : results) {
      Object wape = r.extra().get("forecast_wape");
      Object mase = r.extra().get("forecast_mase");
      if (wape instanceof Double w && mase instanceof Double m && !r.name().equals("oracle")
          && !r.name().equals("predictive-foresight")) {
        b.append(String.format(Locale.ROOT,
            "%s forecasts (mean over the next %s min, per part): WAPE %.3f, MASE %.3f "
                + "(seasonal naive, one day back: WAPE %.3f)%n", r.name(),
            r.extra().getOrDefault("forecast_horizon_minutes", "10"), w, m,
            (Double) r.extra().getOrDefault("forecast_naive_wape", Double.NaN)));
      }
    }
    b.append(String.format("%nwhen overload happens: overload-seconds by hour of day (UTC)%n"));
    List<String[]> hours = new ArrayList<>();
    String[] head = new String[25];
    head[0] = "strategy";
    for (int h = 0; h < 24; h++) {
      head[h + 1] = String.format(Locale.ROOT, "%02d", h);
    }
    hours.add(head);
    for (StrategyResult r : results) {
      double[] byHour = overloadByUtcHour(r);
      String[] row = new String[25];
      row[0] = r.name();
      for (int h = 0; h < 24; h++) {
        row[h + 1] = byHour[h] == 0 ? "-" : compact(byHour[h]);
      }
      hours.add(row);
    }
    b.append(align(hours));
    Map<String, Object> cmp = comparison();
    if (!cmp.isEmpty()) {
      b.append('\n');
      for (Map.Entry<String, Object> e : cmp.entrySet()) {
        b.append(e.getKey()).append(": ").append(e.getValue()).append('\n');
      }
    }
    b.append("\noverload s: time a server's queueing delay exceeded ")
        .append(trim(c.overloadDelaySeconds()))
        .append(" s, summed over servers; max/mean: utilisation over busy minutes;\n")
        .append("load moved: in server capacities; hold: estimated per move.\n");
    return b.toString();
  }

  /** A strategy's overload-seconds by the UTC hour of day of the minute they fell in. */
  double[] overloadByUtcHour(StrategyResult r) {
    double[] out = new double[24];
    float[] perMinute = r.series().overloadSeconds();
    long start = matrix.startMillis();
    for (int m = 0; m < perMinute.length; m++) {
      int hour = (int) Math.floorMod((start + m * 60_000L) / 3_600_000L, 24L);
      out[hour] += perMinute[m];
    }
    return out;
  }

  /** Ratios against the better reactive strategy and the oracle, when those ran. */
  Map<String, Object> comparison() {
    Map<String, Object> m = new LinkedHashMap<>();
    StrategyResult best = null;
    StrategyResult predictive = null;
    StrategyResult oracle = null;
    StrategyResult foresight = null;
    for (StrategyResult r : results) {
      if (r.name().startsWith("reactive-")) {
        if (best == null || r.overloadSeconds() < best.overloadSeconds()
            || (r.overloadSeconds() == best.overloadSeconds() && r.moves() < best.moves())) {
          best = r;
        }
      } else if (r.name().equals("predictive")) {
        predictive = r;
      } else if (r.name().equals("oracle")) {
        oracle = r;
      } else if (r.name().equals("predictive-foresight")) {
        foresight = r;
      }
    }
    if (best != null) {
      m.put("better_reactive", best.name());
    }
    if (best != null && predictive != null) {
      m.put("predictive_overload_vs_reactive", ratio(predictive.overloadSeconds(),
          best.overloadSeconds()));
      m.put("predictive_moves_vs_reactive", ratio(predictive.moves(), best.moves()));
    }
    if (best != null && oracle != null) {
      m.put("oracle_overload_vs_reactive", ratio(oracle.overloadSeconds(),
          best.overloadSeconds()));
    }
    if (predictive != null && oracle != null) {
      m.put("predictive_p99_max_mean_vs_oracle", ratio(predictive.p99MaxMean(),
          oracle.p99MaxMean()));
    }
    if (predictive != null && foresight != null) {
      // What the forecasts cost: the same planner settings with perfect foresight.
      m.put("predictive_overload_vs_foresight", ratio(predictive.overloadSeconds(),
          foresight.overloadSeconds()));
      m.put("predictive_p99_max_mean_vs_foresight", ratio(predictive.p99MaxMean(),
          foresight.p99MaxMean()));
    }
    return m;
  }

  /** {@code summary.json}: the setting and every strategy's figures (no timings: reproducible). */
  String summaryJson() {
    SimConfig c = matrix.config();
    Map<String, Object> root = new LinkedHashMap<>();
    Map<String, Object> t = new LinkedHashMap<>();
    t.put("file", traceName);
    t.put("events", matrix.events());
    t.put("keys", trace.distinctKeys());
    root.put("trace", t);
    Map<String, Object> s = new LinkedHashMap<>();
    s.put("servers", c.servers());
    s.put("headroom", c.headroom());
    s.put("scale", c.scale());
    s.put("spread_minutes", c.spreadMinutes());
    s.put("hold_seconds", c.holdSeconds());
    s.put("units", matrix.units());
    s.put("from", Instant.ofEpochMilli(matrix.startMillis()).toString());
    s.put("to", Instant.ofEpochMilli(matrix.millisOf(matrix.minutes())).toString());
    s.put("minutes", matrix.minutes());
    s.put("busy_minutes", matrix.busyMinutes());
    s.put("peak_hour_rate", round(matrix.peakHourRate(), 4));
    s.put("capacity_per_server", round(matrix.capacity(), 4));
    s.put("segment_seconds", c.segmentSeconds());
    s.put("overload_delay_seconds", c.overloadDelaySeconds());
    s.put("min_dwell_seconds", c.minDwellMillis() / 1000);
    s.put("max_moves_per_round", c.maxMovesPerRound());
    s.put("max_moves_per_server", c.maxMovesPerServer());
    s.put("max_moves_per_window", c.maxMovesPerWindow());
    s.put("move_window_seconds", c.moveWindowMillis() / 1000);
    s.put("min_move_gain", c.minMoveGain());
    Map<String, Object> p = new LinkedHashMap<>();
    p.put("criterion", predictive.criterion().name());
    p.put("max_mean_ratio", predictive.maxMeanRatio());
    p.put("high_water", predictive.highWater());
    p.put("hysteresis", predictive.hysteresis());
    p.put("act_above", predictive.actAbove());
    p.put("lump_allowance", predictive.lumpAllowance());
    p.put("quantile", predictive.quantile());
    p.put("upper_correlation", predictive.upperCorrelation());
    p.put("changed_by_balancer_option", new LinkedHashMap<>(tried));
    s.put("predictive_planner", p);
    root.put("setting", s);
    Map<String, Object> all = new LinkedHashMap<>();
    for (StrategyResult r : results) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("overload_seconds", round(r.overloadSeconds(), 2));
      m.put("p99_delay_ms", round(r.p99DelaySeconds() * 1000, 2));
      m.put("p50_max_mean_util", round(r.p50MaxMean(), 4));
      m.put("p99_max_mean_util", round(r.p99MaxMean(), 4));
      m.put("moves", r.moves());
      m.put("splits", r.splits());
      m.put("merges", r.merges());
      m.put("rejected_actions", r.rejected());
      m.put("load_moved", round(r.loadMoved(), 3));
      m.put("held_messages", round(r.heldMessages(), 1));
      m.put("hold_seconds_mean", round(r.holdSecondsMean(), 3));
      m.put("hold_seconds_max", round(r.holdSecondsMax(), 3));
      m.put("delayed_messages", round(r.delayedMessages(), 1));
      m.put("messages", round(r.messages(), 1));
      List<Double> byHour = new ArrayList<>();
      for (double v : overloadByUtcHour(r)) {
        byHour.add(round(v, 1));
      }
      m.put("overload_seconds_by_utc_hour", byHour);
      for (Map.Entry<String, Object> e : r.extra().entrySet()) {
        m.put(e.getKey(), e.getValue() instanceof Double d ? round(d, 4) : e.getValue());
      }
      all.put(r.name(), m);
    }
    root.put("strategies", all);
    Map<String, Object> cmp = comparison();
    if (!cmp.isEmpty()) {
      root.put("comparison", cmp);
    }
    return Json.write(root) + "\n";
  }

  /** Writes {@code summary.json} and the plots into {@code dir}. */
  void write(Path dir) throws IOException {
    Files.writeString(dir.resolve("summary.json"), summaryJson(), StandardCharsets.UTF_8);
    int minutes = matrix.minutes();
    int bucket = Math.max(1, (minutes + PLOT_POINTS - 1) / PLOT_POINTS);
    int points = (minutes + bucket - 1) / bucket;
    long step = bucket * 60_000L;
    String per = bucket == 1 ? "per minute" : "mean per " + bucket + " min";
    SvgChart imbalance = new SvgChart("max/mean utilisation over busy minutes (" + per + ")",
        "max / mean", matrix.startMillis(), step).reference(1.0, "balanced");
    SvgChart overload = new SvgChart("cumulative overload-seconds", "overload s",
        matrix.startMillis(), step);
    for (StrategyResult r : results) {
      StrategyResult.Series series = r.series();
      String peak = bucket == 1 ? "per minute" : "busiest minute of every " + bucket + " min";
      SvgChart util = new SvgChart(r.name() + ": utilisation per server (" + peak + ")",
          "offered load / capacity", matrix.startMillis(), step).reference(1.0, "capacity");
      for (int s = 0; s < series.utilisation().length; s++) {
        double[] v = new double[points];
        for (int p = 0; p < points; p++) {
          double max = Double.NaN;
          for (int m = p * bucket; m < Math.min(minutes, (p + 1) * bucket); m++) {
            max = Double.isNaN(max) ? series.utilisation()[s][m]
                : Math.max(max, series.utilisation()[s][m]);
          }
          v[p] = max;
        }
        util.line("server " + s, v);
      }
      Files.writeString(dir.resolve("utilisation-" + fileName(r.name()) + ".svg"),
          util.render(), StandardCharsets.UTF_8);
      double[] im = new double[points];
      double[] cum = new double[points];
      double total = 0;
      for (int p = 0; p < points; p++) {
        double sum = 0;
        int n = 0;
        for (int m = p * bucket; m < Math.min(minutes, (p + 1) * bucket); m++) {
          total += series.overloadSeconds()[m];
          if (series.busy()[m] && !Float.isNaN(series.maxMean()[m])) {
            sum += series.maxMean()[m];
            n++;
          }
        }
        im[p] = n == 0 ? Double.NaN : sum / n;
        cum[p] = total;
      }
      imbalance.line(r.name(), im);
      overload.line(r.name(), cum);
    }
    Files.writeString(dir.resolve("imbalance.svg"), imbalance.render(), StandardCharsets.UTF_8);
    Files.writeString(dir.resolve("overload.svg"), overload.render(), StandardCharsets.UTF_8);
  }

  static String fileName(String strategy) {
    return strategy.replaceAll("[^A-Za-z0-9._-]", "-");
  }

  private static Object ratio(double a, double b) {
    return b > 0 ? round(a / b, 3) : null;
  }

  private static double round(double v, int decimals) {
    if (!Double.isFinite(v)) {
      return v;
    }
    double f = Math.pow(10, decimals);
    return Math.round(v * f) / f;
  }

  private static String trim(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }

  private static String fixed(double v) {
    return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.2f", v);
  }

  /** 5.74M, 993k, 12.3k, 523. */
  static String compact(double v) {
    double a = Math.abs(v);
    if (a >= 1e6) {
      return String.format(Locale.ROOT, "%.3gM", v / 1e6);
    }
    if (a >= 1e4) {
      return String.format(Locale.ROOT, "%.0fk", v / 1e3);
    }
    if (a >= 1e3) {
      return String.format(Locale.ROOT, "%.1fk", v / 1e3);
    }
    return String.format(Locale.ROOT, "%.0f", v);
  }

  private static String delay(double seconds) {
    if (seconds == 0) {
      return "0";
    }
    if (seconds < 1) {
      return String.format(Locale.ROOT, "%.0f ms", seconds * 1000);
    }
    return String.format(Locale.ROOT, seconds < 100 ? "%.2f s" : "%.0f s", seconds);
  }

  private static String align(List<String[]> rows) {
    int cols = rows.get(0).length;
    int[] w = new int[cols];
    for (String[] r : rows) {
      for (int i = 0; i < cols; i++) {
        w[i] = Math.max(w[i], r[i].length());
      }
    }
    StringBuilder b = new StringBuilder();
    for (String[] r : rows) {
      StringBuilder line = new StringBuilder();
      for (int i = 0; i < cols; i++) {
        if (i == 0) {
          line.append(r[i]).append(" ".repeat(w[i] - r[i].length()));
        } else {
          line.append("  ").append(" ".repeat(w[i] - r[i].length())).append(r[i]);
        }
      }
      b.append(line.toString().stripTrailing()).append('\n');
    }
    return b.toString();
  }
}
