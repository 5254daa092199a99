package io.plb.server.simulate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.sim.balance.SyntheticTrace;
import java.io.BufferedWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SimulateCommandTest {
  @TempDir Path dir;
  Path trace;

  /** Runs the command; returns {exit code, stdout, stderr}. */
  private Object[] run(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = SimulateCommand.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Object[] {code, out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8)};
  }

  @BeforeEach
  void writeTrace() throws IOException {
    trace = dir.resolve("synthetic.csv");
    try (BufferedWriter w = Files.newBufferedWriter(trace)) {
      w.write("ts,key,size\n");
      SyntheticTrace.defaults(21).withMinutes(1440).withHotspot(0.3, 0.05, 720)
          .generate((millis, key, size) -> {
            try {
              w.write(Instant.ofEpochMilli(millis) + "," + key + "," + size + "\n");
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
    }
  }

  private void assertUsage(String expected, String... args) {
    Object[] r = run(args);
    assertEquals(SimulateCommand.USAGE, r[0], (String) r[2]);
    assertTrue(((String) r[2]).contains(expected), (String) r[2]);
    assertEquals("", r[1], "nothing on stdout for a bad command line");
  }

  @Test
  void badCommandLinesAreRefusedClearly() {
    String t = trace.toString();
    assertUsage("--trace FILE is required");
    assertUsage("--trace FILE is required", "--servers", "4");
    assertUsage("unknown option '--bogus'", "--trace", t, "--bogus", "1");
    assertUsage("--servers must be a whole number, got 'many'", "--trace", t, "--servers",
        "many");
    assertUsage("--servers must be 1..1024, got 0", "--trace", t, "--servers", "0");
    assertUsage("--headroom must be a number > 0", "--trace", t, "--headroom", "-1");
    assertUsage("--headroom must be a number, got 'x'", "--trace", t, "--headroom=x");
    assertUsage("--scale must be a number > 0", "--trace", t, "--scale", "0");
    assertUsage("--spread must be 1..1440 minutes", "--trace", t, "--spread", "0");
    assertUsage("--spread must be whole minutes", "--trace", t, "--spread", "1.5");
    assertUsage("--hold must be 0..3600 seconds", "--trace", t, "--hold", "-3");
    assertUsage("--units must be auto or a power of two", "--trace", t, "--units", "100");
    assertUsage("--units (4) must be at least --servers (8)", "--trace", t, "--units", "4");
    assertUsage("unknown strategy 'best'", "--trace", t, "--strategies", "static,best");
    assertUsage("--strategies lists 'static' twice", "--trace", t, "--strategies",
        "static,static");
    assertUsage("--from: timestamp 'soon'", "--trace", t, "--from", "soon");
    assertUsage("--to must be after --from", "--trace", t, "--from", "2001-01-02",
        "--to", "2001-01-01");
    assertUsage("--servers needs a value", "--trace", t, "--servers");
    assertUsage("unexpected argument 'extra'", "--trace", t, "extra");
    assertUsage("--threads must be 1..64", "--trace", t, "--threads", "0");
    assertUsage("--trace and --synthetic exclude each other", "--trace", t, "--synthetic", "1");
    assertUsage("--synthetic takes a seed (a whole number), got 'x'", "--synthetic", "x");
    assertUsage("--days must be 1..366, got 0", "--synthetic", "1", "--days", "0");
    assertUsage("--days goes with --synthetic", "--trace", t, "--days", "3");
  }

  @Test
  void theBalancerOptionTriesOtherPlannerSettingsOnPredictive() throws IOException {
    String t = trace.toString();
    assertUsage("--balancer takes KEY=VALUE[,KEY=VALUE...], got 'actAbove'", "--trace", t,
        "--balancer", "actAbove");
    assertUsage("--balancer: balancer.maxMovesPerWindow is not a planner setting the simulator"
        + " varies", "--trace", t, "--balancer", "maxMovesPerWindow=8");
    assertUsage("--balancer: unknown setting 'loudest'", "--trace", t, "--balancer",
        "loudest=1");
    assertUsage("--balancer: balancer.actAbove must be a finite number >= 0.0 (got -1.0)",
        "--trace", t, "--balancer", "actAbove=-1");
    assertUsage("--balancer: balancer.criterion = 'LOUD' is not one of", "--trace", t,
        "--balancer", "criterion=LOUD");
    assertUsage("--balancer sets actAbove twice", "--trace", t, "--balancer",
        "actAbove=0.5,balancer.actAbove=0.6");

    Path defaults = dir.resolve("defaults");
    Object[] d = run("--synthetic", "3", "--days", "2", "--servers", "4", "--strategies",
        "predictive", "--out", defaults.toString(), "--quiet");
    assertEquals(0, d[0], (String) d[2]);
    assertTrue(((String) d[1]).contains("MAX_MEAN_OR_HIGH_WATER, maxMeanRatio 1.2, highWater 1,"
        + " hysteresis 0.02, actAbove 0.7, lumpAllowance 1 (the leader's defaults)"),
        (String) d[1]);
    Path tried = dir.resolve("tried");
    Object[] r = run("--synthetic", "3", "--days", "2", "--servers", "4", "--strategies",
        "predictive", "--balancer", "criterion=MAX_MEAN,maxMeanRatio=1.05,actAbove=0,"
            + "balancer.lumpAllowance=0", "--out", tried.toString(), "--quiet");
    assertEquals(0, r[0], (String) r[2]);
    assertTrue(((String) r[1]).contains("MAX_MEAN, maxMeanRatio 1.05, highWater 1, hysteresis"
        + " 0.02, actAbove 0, lumpAllowance 0 (--balancer criterion=MAX_MEAN,maxMeanRatio=1.05,"
        + "actAbove=0,lumpAllowance=0)"),
        (String) r[1]);
    String json = Files.readString(tried.resolve("summary.json"));
    assertTrue(json.contains("\"predictive_planner\":{\"criterion\":\"MAX_MEAN\","
        + "\"max_mean_ratio\":1.05,"), json);
    assertTrue(json.contains("\"changed_by_balancer_option\":{\"balancer.criterion\":"
        + "\"MAX_MEAN\""), json);
    // The same settings with perfect foresight: the forecasts' share of predictive's results.
    Object[] f = run("--synthetic", "3", "--days", "2", "--servers", "4", "--strategies",
        "predictive,predictive-foresight", "--quiet");
    assertEquals(0, f[0], (String) f[2]);
    assertTrue(((String) f[1]).contains("predictive_overload_vs_foresight: "), (String) f[1]);
    assertFalse(((String) f[1]).contains("predictive-foresight forecasts"), (String) f[1]);
    assertUsage("strategy 'predictive-foresight' takes no parameter", "--trace", t,
        "--strategies", "predictive-foresight:2");
    // Balancing to 1.05 at any load takes more moves than the defaults do on the same trace.
    assertTrue(moves(json) > moves(Files.readString(defaults.resolve("summary.json"))),
        json);
  }

  private static int moves(String summary) {
    java.util.regex.Matcher m = java.util.regex.Pattern
        .compile("\"predictive\":\\{[^}]*\"moves\":(\\d+)").matcher(summary);
    assertTrue(m.find(), summary);
    return Integer.parseInt(m.group(1));
  }

  @Test
  void aSeededSyntheticTraceRunsWithoutAFile() throws IOException {
    Path out = dir.resolve("synthetic");
    Object[] r = run("--synthetic", "5", "--days", "1", "--strategies",
        "static,reactive-ewma:0.1", "--out", out.toString(), "--quiet");
    assertEquals(0, r[0], (String) r[2]);
    assertTrue(((String) r[1]).startsWith("trace synthetic:5 (1 days)"), (String) r[1]);
    String json = Files.readString(out.resolve("summary.json"));
    assertTrue(json.contains("\"file\":\"synthetic:5 (1 days)\"") && json.contains("\"from\":\"2001-01-01T00:00:00Z\""), json);
    Object[] again = run("--synthetic", "5", "--days", "1", "--strategies",
        "static,reactive-ewma:0.1", "--out", dir.resolve("again").toString(), "--quiet");
    assertEquals(json, Files.readString(dir.resolve("again").resolve("summary.json")),
        "the same seed gives the same trace and results");
    Object[] other = run("--synthetic", "6", "--days", "1", "--strategies", "static",
        "--quiet");
    assertFalse(((String) other[1]).equals(r[1]), "another seed, another trace");
  }

  @Test
  void unusableInputIsABadInputError() throws IOException {
    Object[] r = run("--trace", dir.resolve("missing.csv").toString(), "--quiet");
    assertEquals(SimulateCommand.BAD_INPUT, r[0]);
    assertTrue(((String) r[2]).contains("missing.csv"), (String) r[2]);
    Path bad = Files.writeString(dir.resolve("bad.csv"), "ts,key,size\n2001-01-01,A,1\nx,y\n");
    r = run("--trace", bad.toString(), "--quiet");
    assertEquals(SimulateCommand.BAD_INPUT, r[0]);
    assertTrue(((String) r[2]).contains(bad + ":3: expected 3 comma-separated fields"),
        (String) r[2]);
    r = run("--trace", trace.toString(), "--from", "2005-01-01", "--to", "2005-01-02",
        "--quiet");
    assertEquals(SimulateCommand.BAD_INPUT, r[0]);
    assertTrue(((String) r[2]).contains("no events in the window"), (String) r[2]);
  }

  @Test
  void simulatesAndWritesSummaryAndPlots() throws IOException {
    Path out = dir.resolve("results");
    Object[] r = run("--trace", trace.toString(), "--servers", "4", "--headroom=1.2",
        "--spread", "10m", "--hold", "30s", "--strategies", "static,reactive-ewma:0.1,"
            + "reactive-shedder", "--from", "2001-01-01T00:00Z", "--to", "2001-01-01T18:00Z",
        "--out", out.toString(), "--threads", "2");
    assertEquals(0, r[0], (String) r[2]);
    String table = (String) r[1];
    assertTrue(table.contains("static") && table.contains("reactive-ewma:0.1")
        && table.contains("reactive-shedder") && table.contains("overload s"), table);
    assertTrue(((String) r[2]).contains("plb simulate: static 100% · reactive-ewma:0.1 100%"), (String) r[2]);
    String json = Files.readString(out.resolve("summary.json"));
    for (String field : new String[] {"\"overload_seconds\":", "\"p99_delay_ms\":",
        "\"p50_max_mean_util\":", "\"p99_max_mean_util\":", "\"moves\":", "\"splits\":",
        "\"merges\":", "\"servers\":4", "\"spread_minutes\":10", "\"minutes\":1080",
        "\"better_reactive\":", "\"overload_seconds_by_utc_hour\":["}) {
      assertTrue(json.contains(field), field + " missing from " + json);
    }
    // By hour: 24 figures per strategy that add up to its overload-seconds.
    java.util.regex.Matcher hours = java.util.regex.Pattern.compile(
        "\"static\":\\{\"overload_seconds\":([0-9.]+),.*?\"overload_seconds_by_utc_hour\":"
            + "\\[([^\\]]*)\\]").matcher(json);
    assertTrue(hours.find(), json);
    String[] byHour = hours.group(2).split(",");
    assertEquals(24, byHour.length);
    double sum = 0;
    for (String h : byHour) {
      sum += Double.parseDouble(h);
    }
    double total = Double.parseDouble(hours.group(1));
    assertTrue(total > 0 && Math.abs(sum - total) <= 1e-3 * total + 1, sum + " vs " + total);
    assertTrue(table.contains("overload-seconds by hour of day (UTC)"), table);
    try (Stream<Path> files = Files.list(out)) {
      assertEquals(6, files.count()); // summary, imbalance, overload, 3 x utilisation
    }
    String svg = Files.readString(out.resolve("utilisation-reactive-ewma-0.1.svg"));
    assertTrue(svg.startsWith("<svg") && svg.contains("<polyline") && svg.contains("server 3"));
    assertTrue(Files.readString(out.resolve("imbalance.svg")).contains("reactive-shedder"));

    // The same run again gives the same summary, with any number of threads.
    Path again = dir.resolve("again");
    Object[] r2 = run("--trace", trace.toString(), "--servers", "4", "--headroom=1.2",
        "--spread", "10", "--hold", "30", "--strategies", "static,reactive-ewma:0.1,"
            + "reactive-shedder", "--from", "2001-01-01", "--to", "2001-01-01T18:00",
        "--out", again.toString(), "--threads", "1", "--quiet");
    assertEquals(0, r2[0], (String) r2[2]);
    assertEquals("", r2[2], "--quiet prints nothing on stderr");
    assertEquals(json, Files.readString(again.resolve("summary.json")));
  }

  @Test
  void helpGoesToStdout() {
    Object[] r = run("--help");
    assertEquals(0, r[0]);
    assertTrue(((String) r[1]).startsWith("usage: plb simulate --trace FILE"));
    assertFalse(((String) r[1]).isEmpty());
  }
}
