package io.plb.client.cli;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.error.ErrorCode;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.ForecastPoint;
import io.plb.proto.v1.ForecastRequest;
import io.plb.proto.v1.ForecastResponse;
import io.plb.proto.v1.LoadBucket;
import io.plb.proto.v1.LoadFigures;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.PlannedAction;
import io.plb.proto.v1.Resolution;
import io.plb.proto.v1.SeriesAccuracy;
import io.plb.proto.v1.ServerLoad;
import io.plb.proto.v1.ServerUtilisation;
import io.plb.proto.v1.SliceLoad;
import io.plb.proto.v1.SliceRange;
import java.io.PrintStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * plbctl's balancer commands: {@code plan}, {@code balancer pause|resume|status},
 * {@code forecast} and {@code history}. Tables for people, {@code --json} for scripts (shapes in
 * docs/cli.md). Stateless apart from the output stream.
 */
final class BalancerCommands {
  /** Buckets {@code history} prints at most. */
  static final int MAX_HISTORY_BUCKETS = 10_000;

  private final PrintStream out;

  BalancerCommands(PrintStream out) {
    this.out = out;
  }

  // ------------------------------------------------------------------ plan

  void plan(PlanResponse p, boolean json) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("map_version", p.getMapVersion());
      o.put("paused", p.getPaused());
      o.put("criterion", p.getCriterion());
      o.put("criterion_before", p.getCriterionBefore());
      o.put("criterion_after", p.getCriterionAfter());
      o.put("acting", p.getActing());
      o.put("model", p.getModel());
      List<Object> actions = new ArrayList<>();
      for (PlannedAction a : p.getActionsList()) {
        Map<String, Object> x = Json.object();
        x.put("kind", a.getKind().name());
        x.put("range_start", Ring.hex(a.getRangeStart()));
        switch (a.getKind()) {
          case MOVE -> {
            x.put("range_end", Ring.hexEnd(a.getRangeEnd()));
            x.put("from", a.getFrom());
            x.put("to", a.getTo());
          }
          case SPLIT -> x.put("at", Ring.hex(a.getAt()));
          case MERGE -> x.put("right_start", Ring.hex(a.getRightStart()));
          default -> { }
        }
        x.put("cause", causeJson(io.plb.client.wire.Wire.fromProto(a.getCause())));
        actions.add(x);
      }
      o.put("actions", actions);
      List<Object> servers = new ArrayList<>();
      for (ServerUtilisation s : p.getServersList()) {
        Map<String, Object> x = Json.object();
        x.put("id", s.getServerId());
        x.put("capacity", s.getCapacity());
        x.put("before", s.getBefore());
        x.put("after", s.getAfter());
        servers.add(x);
      }
      o.put("servers", servers);
      o.put("notes", p.getNotesList());
      out.println(Json.write(o));
      return;
    }
    out.printf(Locale.ROOT, "plan on map version %d%s: %s %.3f -> %.3f (%s)%n",
        p.getMapVersion(), p.getPaused() ? " (balancer PAUSED: it would not act)" : "",
        p.getCriterion(), p.getCriterionBefore(), p.getCriterionAfter(),
        p.getActing() ? "acting" : "not acting: see the notes");
    out.println("forecast: " + p.getModel());
    if (p.getActionsCount() == 0) {
      out.println("no action");
    } else {
      Table t = new Table("#", "ACTION", "RANGE", "FROM", "TO", "REASON", "LOAD", "SOURCE",
          "TARGET");
      int i = 0;
      for (PlannedAction a : p.getActionsList()) {
        ActionCause c = io.plb.client.wire.Wire.fromProto(a.getCause());
        String range = switch (a.getKind()) {
          case MOVE -> Ring.formatRange(a.getRangeStart(), a.getRangeEnd());
          case SPLIT -> Ring.hex(a.getRangeStart()) + " at " + Ring.hex(a.getAt());
          case MERGE -> Ring.hex(a.getRangeStart()) + " + " + Ring.hex(a.getRightStart());
          default -> "";
        };
        t.row(++i, a.getKind().name().toLowerCase(Locale.ROOT), range, a.getFrom(), a.getTo(),
            c.reason(), num(c.meanLoad()) + " / " + num(c.upperLoad()),
            c.source() + " " + num(c.sourceBefore()) + "→" + num(c.sourceAfter()),
            c.target().isEmpty() ? "" : c.target() + " " + num(c.targetBefore()) + "→"
                + num(c.targetAfter()));
      }
      out.print(t.render());
    }
    Table s = new Table("SERVER", "CAPACITY", "UTIL NOW", "UTIL AFTER");
    for (ServerUtilisation u : p.getServersList()) {
      s.row(u.getServerId(), num(u.getCapacity()), num(u.getBefore()), num(u.getAfter()));
    }
    out.print(s.render());
    for (String n : p.getNotesList()) {
      out.println("note: " + n);
    }
  }

  // ------------------------------------------------------------------ balancer

  void status(BalancerStatus s, boolean json) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("leader", s.getLeaderId());
      o.put("enabled", s.getEnabled());
      o.put("paused", s.getPaused());
      o.put("paused_by", s.getPausedBy());
      o.put("interval_ms", s.getIntervalMillis());
      o.put("rounds", s.getRounds());
      o.put("last_round_ms", s.getLastRoundMillis());
      o.put("last_plan", s.getLastPlan());
      o.put("actions_proposed", s.getActionsProposed());
      o.put("actions_committed", s.getActionsCommitted());
      o.put("actions_failed", s.getActionsFailed());
      o.put("handovers_in_flight", s.getHandoversInFlight());
      o.put("last_error", s.getLastError());
      Map<String, Object> f = Json.object();
      f.put("live_series", s.getForecast().getLiveSeries());
      f.put("served_models", new java.util.TreeMap<>(s.getForecast().getServedModelsMap()));
      f.put("in_fallback", s.getForecast().getInFallback());
      f.put("coarse_buckets", s.getForecast().getCoarseBuckets());
      f.put("warmed_buckets", s.getForecast().getWarmedBuckets());
      f.put("filled_buckets", s.getForecast().getFilledBuckets());
      f.put("newest_bucket_ms", s.getForecast().getNewestBucketMillis());
      o.put("forecast", f);
      out.println(Json.write(o));
      return;
    }
    out.println("balancer on leader " + s.getLeaderId() + ": "
        + (!s.getEnabled() ? "DISABLED (balancer.enabled = false)"
            : s.getPaused() ? "PAUSED by " + s.getPausedBy() : "running")
        + ", a round every " + s.getIntervalMillis() + " ms");
    out.println("rounds: " + s.getRounds() + ", last " + time(s.getLastRoundMillis()));
    out.println("last plan: " + (s.getLastPlan().isEmpty() ? "-" : s.getLastPlan()));
    out.println("actions: " + s.getActionsProposed() + " proposed, " + s.getActionsCommitted()
        + " committed, " + s.getActionsFailed() + " failed; handovers in flight: "
        + s.getHandoversInFlight());
    if (!s.getLastError().isEmpty()) {
      out.println("last error: " + s.getLastError());
    }
    var f = s.getForecast();
    out.println("forecast: " + f.getLiveSeries() + " live series, " + f.getInFallback()
        + " in fallback, models " + new java.util.TreeMap<>(f.getServedModelsMap()) + ", "
        + f.getCoarseBuckets() + " coarse buckets (" + f.getWarmedBuckets()
        + " from the history at takeover), newest bucket " + time(f.getNewestBucketMillis()));
    if (f.getFilledBuckets() > 0) {
      out.println("telemetry gaps: " + f.getFilledBuckets() + " coarse bucket(s) no load report"
          + " covered were filled in from the forecast (no leader or no queue server reporting)");
    }
  }

  // ------------------------------------------------------------------ forecast

  void forecast(ForecastResponse f, boolean json) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("scope", f.getScope());
      o.put("first_slice", f.getFirstSlice());
      o.put("last_slice", f.getLastSlice());
      o.put("bucket_ms", f.getBucketMillis());
      o.put("wape", f.getWape());
      o.put("mase", f.getMase());
      o.put("live_series", f.getLiveSeries());
      o.put("in_fallback", f.getInFallback());
      o.put("served_models", new java.util.TreeMap<>(f.getServedModelsMap()));
      o.put("recent", points(f.getRecentList()));
      o.put("ahead", points(f.getAheadList()));
      List<Object> series = new ArrayList<>();
      for (SeriesAccuracy a : f.getSeriesList()) {
        Map<String, Object> x = Json.object();
        x.put("slice", a.getSlice());
        x.put("rate", a.getRate());
        x.put("model", a.getModel());
        x.put("chosen", a.getChosen());
        x.put("fallback", a.getFallback());
        x.put("mase", a.getMase());
        x.put("wape", a.getWape());
        x.put("reactive_mase", a.getReactiveMase());
        x.put("reactive_wape", a.getReactiveWape());
        series.add(x);
      }
      o.put("series", series);
      out.println(Json.write(o));
      return;
    }
    out.println("forecast for " + f.getScope() + " (slices " + f.getFirstSlice() + ".."
        + f.getLastSlice() + "), " + f.getBucketMillis() + " ms buckets, cost units/s");
    out.println("recent one-step WAPE " + num(f.getWape()) + ", MASE " + num(f.getMase())
        + "; " + f.getLiveSeries() + " live series, " + f.getInFallback() + " in fallback, models "
        + new java.util.TreeMap<>(f.getServedModelsMap()));
    Table t = new Table("BUCKET", "ACTUAL", "FORECAST", "UPPER", "ERROR");
    for (ForecastPoint p : f.getRecentList()) {
      t.row(time(p.getStartMillis()), num(p.getActual()), num(p.getForecast()),
          num(p.getUpper()), num(p.getActual() - p.getForecast()));
    }
    for (ForecastPoint p : f.getAheadList()) {
      t.row(time(p.getStartMillis()) + " (ahead)", "", num(p.getForecast()), num(p.getUpper()),
          "");
    }
    out.print(t.render());
    if (f.getSeriesCount() > 0) {
      Table s = new Table("SLICE", "RATE", "MODEL", "CHOSEN", "FALLBACK", "MASE", "WAPE",
          "REACTIVE MASE");
      for (SeriesAccuracy a : f.getSeriesList()) {
        s.row(a.getSlice(), num(a.getRate()), a.getModel(), a.getChosen(),
            a.getFallback() ? "yes" : "no", num(a.getMase()), num(a.getWape()),
            num(a.getReactiveMase()));
      }
      out.print(s.render());
    }
  }

  private static List<Object> points(List<ForecastPoint> list) {
    List<Object> out = new ArrayList<>();
    for (ForecastPoint p : list) {
      Map<String, Object> x = Json.object();
      x.put("start_ms", p.getStartMillis());
      if (p.getHasActual()) {
        x.put("actual", p.getActual());
      }
      x.put("forecast", p.getForecast());
      x.put("upper", p.getUpper());
      out.add(x);
    }
    return out;
  }

  /** The forecast request for {@code --server ID} or {@code --range R} (not both). */
  static ForecastRequest forecastRequest(String server, String range, String buckets) {
    ForecastRequest.Builder b = ForecastRequest.newBuilder();
    if (server != null && range != null) {
      throw new IllegalArgumentException("give --server or --range, not both");
    }
    if (server != null) {
      b.setServerId(server);
    } else if (range != null) {
      b.setRangeStart(Ring.parse(range));
    }
    if (buckets != null) {
      try {
        int n = Integer.parseInt(buckets);
        if (n < 1) {
          throw new NumberFormatException();
        }
        b.setBuckets(n);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--buckets must be a whole number >= 1");
      }
    }
    return b.build();
  }

  // ------------------------------------------------------------------ history

  /**
   * Prints the load history's buckets for a server, a range or the whole cluster, between two
   * times (epoch milliseconds, ISO-8601 instants, or "-5m"-style times before now).
   */
  void history(PlbAdminClient admin, String server, String range, String from, String to,
      String resolution, boolean json, long nowMillis) {
    if (server != null && range != null) {
      throw new IllegalArgumentException("give --server or --range, not both");
    }
    Resolution r = switch (resolution == null ? "fine" : resolution) {
      case "fine" -> Resolution.FINE;
      case "coarse" -> Resolution.COARSE;
      default -> throw new IllegalArgumentException("--resolution must be fine or coarse");
    };
    long fromMillis = from == null ? 0 : time("--from", from, nowMillis);
    long toMillis = to == null ? 0 : time("--to", to, nowMillis);
    LoadHistoryRequest.Builder req = LoadHistoryRequest.newBuilder().setResolution(r)
        .setFromMillis(fromMillis).setToMillis(toMillis);
    String scope = "the cluster";
    long rangeStart = 0;
    long rangeEnd = Ring.RING_END;
    if (server != null) {
      req.setServerId(server);
      scope = "server " + server;
    } else if (range != null) {
      long start = Ring.parse(range);
      ClusterImage map = admin.getMap(0);
      int i = map.indexOfStart(start);
      if (i < 0) {
        throw PlbClientException.of(ErrorCode.NOT_FOUND, "no range starts at " + Ring.hex(start)
            + "; it lies in range " + map.rangeFor(start).rangeText(), null);
      }
      RangeEntry e = map.range(i);
      rangeStart = e.start();
      rangeEnd = e.end();
      int first = Ring.sliceOf(e.start());
      int last = Ring.lastSliceOf(e.end());
      req.setSlices(SliceRange.newBuilder().setFirst(first).setLast(last));
      scope = "range " + e.rangeText() + " (slices " + first + ".." + last
          + (first == last ? ", the whole slice" : "") + ")";
    }
    List<LoadBucket> buckets = new ArrayList<>();
    boolean truncated = false;
    while (true) {
      LoadHistoryResponse page = admin.loadHistory(req.build());
      buckets.addAll(page.getBucketsList());
      if (page.getNextFromMillis() == 0) {
        break;
      }
      if (buckets.size() >= MAX_HISTORY_BUCKETS) {
        truncated = true;
        break;
      }
      req.setFromMillis(page.getNextFromMillis());
    }
    List<Map<String, Object>> rows = new ArrayList<>();
    for (LoadBucket b : buckets) {
      long[] f = new long[6];
      if (server != null) {
        for (ServerLoad s : b.getServersList()) {
          if (s.getServerId().equals(server)) {
            add(f, s.getLoad());
          }
        }
      } else if (range != null) {
        for (SliceLoad s : b.getSlicesList()) {
          f[0] += s.getMessagesIn();
          f[1] += s.getBytesIn();
          f[2] += s.getMessagesOut();
          f[3] += s.getBytesOut();
          f[4] += s.getQueueDepth();
          f[5] = Math.max(f[5], s.getOldestAgeMillis());
        }
      } else {
        for (ServerLoad s : b.getServersList()) {
          add(f, s.getLoad());
        }
      }
      Map<String, Object> x = Json.object();
      x.put("start_ms", b.getStartMillis());
      x.put("width_ms", b.getWidthMillis());
      x.put("covered_ms", b.getCoveredMillis());
      x.put("messages_in", f[0]);
      x.put("bytes_in", f[1]);
      x.put("messages_out", f[2]);
      x.put("bytes_out", f[3]);
      x.put("queue_depth", f[4]);
      x.put("oldest_age_ms", f[5]);
      rows.add(x);
    }
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("scope", scope);
      o.put("resolution", r.name().toLowerCase(Locale.ROOT));
      if (range != null) {
        o.put("range_start", Ring.hex(rangeStart));
        o.put("range_end", Ring.hexEnd(rangeEnd));
      }
      o.put("truncated", truncated);
      o.put("buckets", rows);
      out.println(Json.write(o));
      return;
    }
    out.println(r.name().toLowerCase(Locale.ROOT) + " load history of " + scope + ": "
        + rows.size() + " bucket(s)" + (truncated ? " (first " + MAX_HISTORY_BUCKETS + ")" : ""));
    Table t = new Table("BUCKET", "WIDTH", "COVERED", "MSGS IN", "BYTES IN", "MSGS OUT",
        "BYTES OUT", "DEPTH", "OLDEST");
    for (Map<String, Object> x : rows) {
      t.row(time((Long) x.get("start_ms")), x.get("width_ms") + "ms", x.get("covered_ms") + "ms",
          x.get("messages_in"), x.get("bytes_in"), x.get("messages_out"), x.get("bytes_out"),
          x.get("queue_depth"), x.get("oldest_age_ms") + "ms");
    }
    out.print(t.render());
  }

  private static void add(long[] f, LoadFigures l) {
    f[0] += l.getMessagesIn();
    f[1] += l.getBytesIn();
    f[2] += l.getMessagesOut();
    f[3] += l.getBytesOut();
    f[4] += l.getQueueDepth();
    f[5] = Math.max(f[5], l.getOldestAgeMillis());
  }

  /** A time option: epoch milliseconds, an ISO-8601 instant, or "-90s" / "-5m" / "-2h" / "-1d". */
  static long time(String option, String text, long nowMillis) {
    try {
      if (text.matches("-\\d+(ms|s|m|h|d)")) {
        long n = Long.parseLong(text.replaceAll("[^0-9]", ""));
        long unit = text.endsWith("ms") ? 1 : text.endsWith("s") ? 1000
            : text.endsWith("m") ? 60_000 : text.endsWith("h") ? 3_600_000 : 86_400_000;
        return Math.max(0, nowMillis - Math.multiplyExact(n, unit));
      }
      if (text.matches("\\d+")) {
        return Long.parseLong(text);
      }
      return Instant.parse(text).toEpochMilli();
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(option + " '" + text + "' is not a time (epoch ms, "
          + "an ISO-8601 instant like 2026-01-31T12:00:00Z, or -5m for five minutes ago)");
    }
  }

  private static String time(long millis) {
    return millis <= 0 ? "-" : Instant.ofEpochMilli(millis).toString();
  }

  static String num(double v) {
    return Double.isFinite(v) ? String.format(Locale.ROOT, "%.3f", v) : "-";
  }

  static Map<String, Object> causeJson(ActionCause c) {
    Map<String, Object> o = Json.object();
    o.put("reason", c.reason());
    o.put("criterion", c.criterion());
    o.put("criterion_value", c.criterionValue());
    o.put("source", c.source());
    o.put("source_before", c.sourceBefore());
    o.put("source_after", c.sourceAfter());
    o.put("target", c.target());
    o.put("target_before", c.targetBefore());
    o.put("target_after", c.targetAfter());
    o.put("mean_load", c.meanLoad());
    o.put("upper_load", c.upperLoad());
    o.put("model", c.model());
    o.put("decided_at_ms", c.decidedAtMillis());
    o.put("round", c.round());
    o.put("detail", c.detail());
    return o;
  }
}
