package io.plb.bench;

import io.plb.core.forecast.ForecastBank;
import io.plb.core.forecast.ForecasterConfig;
import io.plb.core.forecast.Synthetic;
import io.plb.core.keyspace.Ring;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Cost of forecasting the 4,096 ring slices with {@link ForecastBank} and the default
 * configuration ({@link ForecasterConfig#defaults}: one-minute buckets, a 10-step horizon,
 * candidates seasonal naive and seasonal level on days and weeks and on days alone; reactive
 * EWMA; a one-day backtest; refit every three hours).
 *
 * <p>Every slice is live and holds what the leader would hold: {@code history} one-minute buckets
 * (default two weeks and two days, 23,040 floats, 92 KB a slice, 377 MB for all). Slice {@code
 * i} carries airport-like Poisson counts ({@link Synthetic#flights}) with a Zipf share of the
 * total and its daily pattern shifted by up to ±3 h, drawn from a fixed seed.
 *
 * <ul>
 *   <li>{@code refitAll}: re-select and refit every slice at once (one op = 4,096 selections):
 *       the worst case, e.g. after a leader change.
 *   <li>{@code observeBucket}: one minute of steady state: all 4,096 slices observe a value,
 *       score and issue their forecasts, and the slices due by the staggered schedule (4,096 /
 *       180 ≈ 23 per bucket at the default three-hour refit interval) refit.
 *   <li>{@code horizonRates}: the planner's input, mean and 0.9 quantile of the next 10 minutes
 *       for every slice.
 * </ul>
 *
 * <p>Run: {@code bench/run.sh forecast} (single-shot and average-time modes, 1 fork; the setup
 * itself fits every slice once, which takes as long as one {@code refitAll}).
 */
@Fork(value = 1, jvmArgsAppend = {"-Xms3g", "-Xmx3g"})
public class ForecastBenchmark {
  static final long SEED = 0x5EED_F0CAL;
  static final int DAY = 1440;

  @State(Scope.Benchmark)
  public static class Bank {
    @Param({"23040"})
    public int history;

    @Param({"4096"})
    public int slices;

    ForecastBank bank;
    double[][] next; // a day of upcoming values, [minute][slice]
    int minute;
    double[] mean;
    double[] upper;

    @Setup(Level.Trial)
    public void setUp() {
      ForecasterConfig config = ForecasterConfig.defaults(DAY, 10).withHistory(Math.max(history,
          ForecasterConfig.defaults(DAY, 10).history()));
      bank = new ForecastBank(slices, config);
      Random rnd = new Random(SEED);
      double[] share = new double[slices];
      double total = 0;
      for (int i = 0; i < slices; i++) {
        share[i] = 1.0 / (i + 1);
        total += share[i];
      }
      // The whole cluster: 4,000 messages a minute at the daily mean.
      Synthetic[] specs = new Synthetic[slices];
      long[] seeds = new long[slices];
      for (int i = 0; i < slices; i++) {
        specs[i] = Synthetic.flights(DAY, 4000 * share[i] / total).withShift(rnd.nextDouble() * 6 - 3);
        seeds[i] = rnd.nextLong();
      }
      next = new double[DAY][slices];
      bank.loadHistory(history, i -> {
        double[] all = specs[i].series(seeds[i], history + DAY);
        for (int t = 0; t < DAY; t++) {
          next[t][i] = all[history + t];
        }
        return java.util.Arrays.copyOf(all, history);
      });
      mean = new double[slices];
      upper = new double[slices];
      if (slices != Ring.SLICES) {
        System.err.println("note: " + slices + " slices, not the ring's " + Ring.SLICES);
      }
    }
  }

  @Benchmark
  @BenchmarkMode(Mode.SingleShotTime)
  @OutputTimeUnit(TimeUnit.SECONDS)
  @Warmup(iterations = 1)
  @Measurement(iterations = 2)
  public ForecastBank refitAll(Bank b) {
    b.bank.refitAll();
    return b.bank;
  }

  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  @Warmup(iterations = 2, time = 5, timeUnit = TimeUnit.SECONDS)
  @Measurement(iterations = 3, time = 10, timeUnit = TimeUnit.SECONDS)
  public ForecastBank observeBucket(Bank b) {
    b.bank.observe(b.next[b.minute]);
    b.minute = (b.minute + 1) % DAY;
    return b.bank;
  }

  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  @Warmup(iterations = 2, time = 1, timeUnit = TimeUnit.SECONDS)
  @Measurement(iterations = 3, time = 2, timeUnit = TimeUnit.SECONDS)
  public double[] horizonRates(Bank b) {
    b.bank.horizonRates(10, 0.9, b.mean, b.upper);
    return b.upper;
  }
}
