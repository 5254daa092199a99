package io.plb.server.simulate;

import io.plb.core.balance.BalancerConfig;
import io.plb.core.sim.balance.BalanceSimulation;
import io.plb.core.sim.balance.BalanceStrategy;
import io.plb.core.sim.balance.LoadMatrix;
import io.plb.core.sim.balance.PlannerStrategy;
import io.plb.core.sim.balance.SimConfig;
import io.plb.core.sim.balance.Strategies;
import io.plb.core.sim.balance.StrategyResult;
import io.plb.core.sim.balance.SyntheticTrace;
import io.plb.core.sim.balance.Trace;
import io.plb.core.sim.balance.TraceParser;
import io.plb.core.time.Ticker;
import io.plb.server.config.NodeConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * {@code plb simulate}: replays a load trace against balancing strategies on virtual time and
 * reports how each fared (DESIGN §11). The adapter around the pure simulator
 * ({@link io.plb.core.sim.balance}): it reads the trace file, runs the strategies (in parallel,
 * each on its own thread over one shared load matrix), prints a table and progress, and writes
 * {@code summary.json} and SVG plots.
 *
 * <p>Thread model: the caller's thread parses, reads and reports; a fixed pool runs one strategy
 * per task. Results do not depend on the number of threads.
 */
public final class SimulateCommand {
  /** Exit code for a bad command line. */
  public static final int USAGE = 2;
  /** Exit code for input that cannot be used (unreadable or bad trace, empty window). */
  public static final int BAD_INPUT = 1;

  private SimulateCommand() {}

  /** The parsed command line. */
  record Options(Path trace, SyntheticTrace synthetic, SimConfig config,
      List<Strategies.Spec> strategies, Path out, int threads, boolean quiet,
      Map<String, String> balancer, BalancerConfig predictive) {
    /** The trace's name in the report: its file, or the synthetic trace's seed and length. */
    String traceName() {
      return synthetic != null ? "synthetic:" + synthetic.seed() + " (" + synthetic.minutes()
          / 1440 + " days)" : trace.toString();
    }
  }

  /** Days of a synthetic trace unless {@code --days} says otherwise. */
  static final int DEFAULT_SYNTHETIC_DAYS = 28;

  /**
   * The synthetic trace of {@code --synthetic SEED}: {@link SyntheticTrace#defaults} (400 Zipf
   * keys, daily cycle, weekends at 60 %, bursts, drift) over {@code days} from 2001-01-01, with
   * 30 events a minute and 40 % of them on a hotspot 5 % of the ring wide that travels round the
   * ring once a day — load that moves, but the same way every day.
   */
  static SyntheticTrace synthetic(long seed, int days) {
    return SyntheticTrace.defaults(seed).withMinutes(days * 1440).withRate(30)
        .withHotspot(0.4, 0.05, 1440);
  }

  /** Runs the command; returns the process exit code. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    Options options;
    try {
      options = parse(args);
    } catch (HelpRequested e) {
      out.print(usage());
      return 0;
    } catch (IllegalArgumentException e) {
      err.println("plb simulate: " + e.getMessage());
      err.println("(plb simulate --help lists the options)");
      return USAGE;
    }
    Ticker ticker = Ticker.SYSTEM;
    long started = ticker.nanos();
    Trace trace;
    LoadMatrix matrix;
    try {
      if (options.out() != null) {
        Files.createDirectories(options.out());
        if (!Files.isWritable(options.out())) {
          throw new IOException("--out " + options.out() + " is not writable");
        }
      }
      if (options.synthetic() != null) {
        progress(options, err, "generating " + options.traceName());
        trace = options.synthetic().trace();
      } else {
        progress(options, err, "reading " + options.trace());
        trace = TraceFiles.read(options.trace());
      }
      matrix = LoadMatrix.build(trace, options.config());
    } catch (NoSuchFileException e) {
      err.println("plb simulate: " + (e.getReason() != null ? e.getReason() + ": " : "")
          + e.getFile());
      return BAD_INPUT;
    } catch (IOException e) {
      err.println("plb simulate: " + e.getMessage());
      return BAD_INPUT;
    } catch (IllegalArgumentException e) {
      err.println("plb simulate: " + e.getMessage());
      return BAD_INPUT;
    }
    progress(options, err, String.format(Locale.ROOT,
        "%,d events in the window (%,d keys in the trace); %,d minutes (%.1f days) from %s; "
            + "%d units; capacity %.1f cost/s per server",
        matrix.events(), trace.distinctKeys(), matrix.minutes(), matrix.minutes() / 1440.0,
        Instant.ofEpochMilli(matrix.startMillis()), matrix.units(), matrix.capacity()));

    List<BalanceStrategy> strategies = new ArrayList<>();
    try {
      for (Strategies.Spec spec : options.strategies()) {
        strategies.add(spec.create(matrix, options.predictive()));
      }
    } catch (IllegalArgumentException e) {
      err.println("plb simulate: " + e.getMessage());
      return USAGE;
    }
    ProgressPrinter printer = new ProgressPrinter(options.quiet() ? null : err, ticker,
        strategies.stream().map(BalanceStrategy::name).toList());
    List<StrategyResult> results = new ArrayList<>();
    double[] seconds = new double[strategies.size()];
    ExecutorService pool = Executors.newFixedThreadPool(options.threads(), r -> {
      Thread t = new Thread(r, "plb-simulate");
      t.setDaemon(true);
      return t;
    });
    try {
      // The slowest strategies start first, so that the others fill the remaining threads
      // around them; results are reported in the order given.
      List<Integer> order = new ArrayList<>();
      for (int i = 0; i < strategies.size(); i++) {
        order.add(i);
      }
      order.sort(java.util.Comparator.comparingInt(
          i -> -expectedCost(options.strategies().get(i).kind())));
      List<Future<StrategyResult>> futures = new ArrayList<>();
      for (int i = 0; i < strategies.size(); i++) {
        futures.add(null);
      }
      for (int index : order) {
        BalanceStrategy s = strategies.get(index);
        futures.set(index, pool.submit(() -> {
          long t0 = ticker.nanos();
          StrategyResult r = new BalanceSimulation(matrix).run(s, printer::at);
          seconds[index] = (ticker.nanos() - t0) / 1e9;
          return r;
        }));
      }
      for (Future<StrategyResult> f : futures) {
        results.add(f.get());
      }
    } catch (ExecutionException e) {
      err.println("plb simulate: a strategy failed: " + e.getCause());
      e.getCause().printStackTrace(err);
      return BAD_INPUT;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      err.println("plb simulate: interrupted");
      return BAD_INPUT;
    } finally {
      pool.shutdownNow();
    }
    printer.done();

    SimulationReport report = new SimulationReport(options.traceName(), trace, matrix,
        results, options.predictive(), options.balancer());
    out.print(report.table(seconds));
    if (options.out() != null) {
      try {
        report.write(options.out());
        out.println("wrote " + options.out().resolve("summary.json") + " and plots to "
            + options.out());
      } catch (IOException e) {
        err.println("plb simulate: cannot write results: " + e.getMessage());
        return BAD_INPUT;
      }
    }
    progress(options, err, String.format(Locale.ROOT, "done in %.1f s",
        (ticker.nanos() - started) / 1e9));
    return 0;
  }

  /** Rough relative cost of simulating a strategy: forecasting, then planning, then the rest. */
  private static int expectedCost(String kind) {
    return switch (kind) {
      case "predictive" -> 2;
      case "oracle", "predictive-foresight" -> 1;
      default -> 0;
    };
  }

  private static void progress(Options options, PrintStream err, String text) {
    if (!options.quiet()) {
      err.println("plb simulate: " + text);
    }
  }

  private static final class HelpRequested extends RuntimeException {
    HelpRequested() {
      super(null, null, false, false);
    }
  }

  /** Parses the command line (everything after {@code simulate}). */
  static Options parse(String[] args) {
    SimConfig config = SimConfig.defaults();
    Path trace = null;
    Path out = null;
    String strategies = Strategies.ALL;
    Integer threads = null;
    boolean quiet = false;
    Long from = null;
    Long to = null;
    Long seed = null;
    Integer days = null;
    Map<String, String> balancer = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      String name = a;
      String value = null;
      if (a.startsWith("--") && a.contains("=")) {
        name = a.substring(0, a.indexOf('='));
        value = a.substring(a.indexOf('=') + 1);
      }
      switch (name) {
        case "-h", "--help" -> throw new HelpRequested();
        case "--quiet" -> {
          if (value != null) {
            throw new IllegalArgumentException("--quiet takes no value");
          }
          quiet = true;
          continue;
        }
        default -> { }
      }
      if (!name.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument '" + a + "'");
      }
      if (value == null) {
        if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
          if (isOption(name)) {
            throw new IllegalArgumentException(name + " needs a value");
          }
          throw new IllegalArgumentException("unknown option '" + name + "'");
        }
        value = args[++i];
      }
      switch (name) {
        case "--trace" -> trace = Path.of(value);
        case "--synthetic" -> {
          try {
            seed = Long.parseLong(value.strip());
          } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--synthetic takes a seed (a whole number), got '"
                + value + "'");
          }
        }
        case "--days" -> {
          days = integer(name, value);
          if (days < 1 || days > 366) {
            throw new IllegalArgumentException("--days must be 1..366, got " + days);
          }
        }
        case "--servers" -> config = config.withServers(integer(name, value));
        case "--headroom" -> config = config.withHeadroom(number(name, value));
        case "--scale" -> config = config.withScale(number(name, value));
        case "--spread" -> config = config.withSpreadMinutes(minutes(name, value));
        case "--hold" -> config = config.withHoldSeconds(seconds(name, value));
        case "--units" -> config = config.withUnits(value.equals("auto") ? 0
            : integer(name, value));
        case "--strategies" -> strategies = value;
        case "--balancer" -> balancer.putAll(balancerSettings(value));
        case "--from" -> from = time(name, value);
        case "--to" -> to = time(name, value);
        case "--out" -> out = Path.of(value);
        case "--threads" -> {
          threads = integer(name, value);
          if (threads < 1 || threads > 64) {
            throw new IllegalArgumentException("--threads must be 1..64, got " + threads);
          }
        }
        default -> throw new IllegalArgumentException("unknown option '" + name + "'");
      }
    }
    if (trace != null && seed != null) {
      throw new IllegalArgumentException("--trace and --synthetic exclude each other");
    }
    if (trace == null && seed == null) {
      throw new IllegalArgumentException("--trace FILE is required (or --synthetic SEED)");
    }
    if (days != null && seed == null) {
      throw new IllegalArgumentException("--days goes with --synthetic");
    }
    SyntheticTrace synthetic = seed == null ? null
        : synthetic(seed, days == null ? DEFAULT_SYNTHETIC_DAYS : days);
    config = config.withWindow(from == null ? SimConfig.UNSET : from,
        to == null ? SimConfig.UNSET : to);
    List<Strategies.Spec> specs = Strategies.parseList(strategies);
    int n = threads != null ? threads
        : Math.max(1, Math.min(specs.size(), Runtime.getRuntime().availableProcessors()));
    return new Options(trace, synthetic, config, specs, out, n, quiet,
        java.util.Collections.unmodifiableMap(balancer),
        predictiveConfig(config, balancer));
  }

  /**
   * The planner settings {@code --balancer} may change for {@code predictive}: how it decides
   * and shapes the map. The budgets, dwell, churn penalty, hold and horizon are the benchmark's
   * setting, the same for every strategy, and are not among them.
   */
  static final Set<String> TUNABLE = Set.of("criterion", "maxMeanRatio", "highWater",
      "stddevThreshold", "hysteresis", "actAbove", "lumpAllowance", "quantile",
      "upperCorrelation", "disruptionWeight", "splitMinLoad", "hotKeyShare", "maxSplitsPerRound",
      "maxRanges", "mergeMaxLoad", "maxMergesPerRound", "minRangesPerServer", "maxMergesPerMove");

  /** {@code KEY=VALUE[,KEY=VALUE...]}, keys with or without {@code balancer.}. */
  static Map<String, String> balancerSettings(String text) {
    Map<String, String> out = new LinkedHashMap<>();
    for (String part : text.split(",", -1)) {
      String p = part.strip();
      int eq = p.indexOf('=');
      if (eq <= 0) {
        throw new IllegalArgumentException("--balancer takes KEY=VALUE[,KEY=VALUE...], got '"
            + part + "'");
      }
      String key = p.substring(0, eq).strip();
      String bare = key.startsWith("balancer.") ? key.substring("balancer.".length()) : key;
      if (!TUNABLE.contains(bare)) {
        String full = "balancer." + bare;
        if (NodeConfig.KEYS.containsKey(full)) {
          throw new IllegalArgumentException("--balancer: " + full + " is not a planner setting"
              + " the simulator varies (budgets, dwell, churn penalty, hold and horizon are the"
              + " benchmark's, the same for every strategy); it takes " + new TreeSet<>(TUNABLE));
        }
        throw new IllegalArgumentException("--balancer: unknown setting '" + key + "'; it takes "
            + new TreeSet<>(TUNABLE));
      }
      if (out.put("balancer." + bare, p.substring(eq + 1).strip()) != null) {
        throw new IllegalArgumentException("--balancer sets " + bare + " twice");
      }
    }
    return out;
  }

  /**
   * {@code predictive}'s planner settings: {@link PlannerStrategy#predictiveConfigFor} (which the
   * leader's defaults equal), with {@code settings} changed, and the simulation's budgets, dwell,
   * churn penalty, hold and horizon.
   */
  static BalancerConfig predictiveConfig(SimConfig sim, Map<String, String> settings) {
    BalancerConfig base = PlannerStrategy.predictiveConfigFor(sim);
    if (settings.isEmpty()) {
      return base;
    }
    BalancerConfig tried;
    try {
      tried = NodeConfig.plannerConfig(settings);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("--balancer: " + e.getMessage(), e);
    }
    return tried.toBuilder().horizon(base.horizon()).maxMovesPerRound(base.maxMovesPerRound())
        .maxMovesPerServer(base.maxMovesPerServer()).maxMovesPerWindow(base.maxMovesPerWindow())
        .moveWindow(base.moveWindow()).minDwell(base.minDwell()).minGain(base.minGain())
        .expectedHold(base.expectedHold()).build();
  }

  private static final List<String> OPTIONS = List.of("--trace", "--synthetic", "--days",
      "--servers", "--headroom",
      "--scale", "--spread", "--hold", "--units", "--strategies", "--from", "--to", "--out",
      "--threads", "--balancer");

  private static boolean isOption(String name) {
    return OPTIONS.contains(name);
  }

  private static int integer(String name, String value) {
    try {
      return Integer.parseInt(value.strip());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be a whole number, got '" + value + "'");
    }
  }

  private static double number(String name, String value) {
    try {
      double v = Double.parseDouble(value.strip());
      if (!Double.isFinite(v)) {
        throw new NumberFormatException();
      }
      return v;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be a number, got '" + value + "'");
    }
  }

  /** Whole minutes: {@code 15} or {@code 15m}. */
  private static int minutes(String name, String value) {
    String v = value.strip();
    if (v.endsWith("m") || v.endsWith("min")) {
      v = v.substring(0, v.endsWith("min") ? v.length() - 3 : v.length() - 1);
    }
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be whole minutes (15 or 15m), got '"
          + value + "'");
    }
  }

  /** Whole seconds: {@code 30} or {@code 30s}. */
  private static int seconds(String name, String value) {
    String v = value.strip();
    if (v.endsWith("s")) {
      v = v.substring(0, v.length() - 1);
    }
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be whole seconds (30 or 30s), got '"
          + value + "'");
    }
  }

  private static long time(String name, String value) {
    try {
      return TraceParser.parseTimestamp(value);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(name + ": " + e.getMessage());
    }
  }

  static String usage() {
    return """
        usage: plb simulate --trace FILE [options]
               plb simulate --synthetic SEED [--days N] [options]

        Replays a load trace (CSV ts,key,size; gzip or plain) against balancing strategies on
        virtual time and reports overload, queueing delay, imbalance and moves for each.

          --trace FILE          the trace (this or --synthetic)
          --synthetic SEED      a seeded synthetic trace instead: daily and weekly cycles,
                                Zipf hot keys, bursts, drift, a hotspot circling the ring daily
          --days N              length of the synthetic trace (default 28)
          --servers N           queue servers (default 8)
          --headroom H          capacity per server = H x busiest hour's rate / N (default 1.3)
          --scale K             messages per trace event (default 1000)
          --spread W            minutes each event's messages are spread over (default 15)
          --hold S              seconds a moved range's arrivals are held (default 30)
          --units auto|N        initial map: N equal slice-aligned ranges (default auto)
          --strategies LIST     comma-separated (default all):
                                static, reactive-ewma[:threshold] (0.1),
                                reactive-shedder[:std] (0.15), predictive, oracle;
                                also predictive-foresight (predictive's settings on
                                the oracle's perfect foresight)
          --from TIME --to TIME window to simulate, [from, to): ISO-8601 date or date-time
                                (no zone = UTC) or epoch ms (default: the whole trace)
          --out DIR             write summary.json and SVG plots there
          --threads N           strategies run in parallel (default: cores)
          --balancer K=V,...    predictive's planner settings to try instead of the leader's
                                defaults, e.g. actAbove=0.5,maxMeanRatio=1.3 (the keys of
                                balancer.* in plb server --help that decide and shape moves:
                                criterion, maxMeanRatio, highWater, hysteresis, actAbove,
                                lumpAllowance, quantile, upperCorrelation, ...)
          --quiet               no progress on stderr

        Budgets for every strategy: 10 min dwell per range, <= 4 moves per round (<= 2 per
        server), <= 4 moves per 10 min for the cluster.
        """;
  }

  /** Prints one progress line at most every few seconds (thread-safe). */
  private static final class ProgressPrinter {
    private final PrintStream err;
    private final Ticker ticker;
    private final List<String> names;
    private final int[] minute;
    private int minutes = 1;
    private long last;

    ProgressPrinter(PrintStream err, Ticker ticker, List<String> names) {
      this.err = err;
      this.ticker = ticker;
      this.names = names;
      this.minute = new int[names.size()];
      this.last = ticker.nanos();
    }

    synchronized void at(String strategy, int m, int total) {
      int i = names.indexOf(strategy);
      if (i >= 0) {
        minute[i] = m;
      }
      minutes = total;
      long now = ticker.nanos();
      if (err != null && now - last >= 5_000_000_000L) {
        last = now;
        err.println("plb simulate: " + line());
      }
    }

    synchronized void done() {
      if (err != null) {
        err.println("plb simulate: " + line());
      }
    }

    private String line() {
      StringBuilder b = new StringBuilder();
      for (int i = 0; i < names.size(); i++) {
        if (i > 0) {
          b.append(" · ");
        }
        b.append(names.get(i)).append(' ').append(100L * minute[i] / Math.max(1, minutes))
            .append('%');
      }
      return b.toString();
    }
  }
}
