package io.plb.bench;

import io.plb.core.balance.BalanceRange;
import io.plb.core.balance.BalanceServer;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.balance.LoadOutlook;
import io.plb.core.balance.MoveHistory;
import io.plb.core.balance.Plan;
import io.plb.core.balance.Planner;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.List;
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
 * Time of one {@link Planner#plan} call: pricing every range against the outlook, detecting the
 * imbalance, the budgeted greedy moves (and splits), and the merge pass, on an imbalanced cluster.
 *
 * <p>Shapes ({@code servers x ranges}): {@code 8x4096} (the trace simulator: one plan per simulated
 * minute), {@code 100x10000} (aim ≤ 100 ms) and {@code 1000x100000} (aim ≤ 1 s). Ranges have equal
 * width and are owned round-robin; capacities are 50..200; per-range predicted rates are log-normal
 * with a 10..50 % upper spread, a tenth of the servers carry twice their share (so the planner acts
 * every time), and 32 hot keys sit at random. A twentieth of the ranges are pinned, a few have a
 * handover running, and a few moved within the dwell. The outlook is per range plus hot keys.
 * {@code planDefaults} uses {@link BalancerConfig#defaults()} (4 moves a round, 2 per server);
 * {@code planManyMoves} lets one plan start up to 200 handovers (1 per server), to show how the
 * greedy loop scales.
 *
 * <p>Run: {@code bench/run.sh planner} (1 fork, 3 × 2 s warm-up, 5 × 2 s measurement).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms2g", "-Xmx2g"})
@Warmup(iterations = 3, time = 2, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 2, timeUnit = TimeUnit.SECONDS)
public class PlannerBenchmark {
  static final long SEED = 0x9_1A_77E5L;
  static final long NOW = 1_000_000_000_000L;

  /** One cluster, its outlook and the settings. */
  @State(Scope.Thread)
  public static class Cluster {
    @Param({"8x4096", "100x10000", "1000x100000"})
    public String shape;

    List<BalanceRange> ranges;
    List<BalanceServer> servers;
    LoadOutlook outlook;
    BalancerConfig defaults;
    BalancerConfig manyMoves;

    @Setup(Level.Trial)
    public void setUp() {
      String[] parts = shape.split("x");
      int nServers = Integer.parseInt(parts[0]);
      int nRanges = Integer.parseInt(parts[1]);
      Random rnd = new Random(SEED);
      servers = new ArrayList<>(nServers);
      double capacity = 0;
      for (int s = 0; s < nServers; s++) {
        double c = 50 + rnd.nextInt(151);
        capacity += c;
        servers.add(new BalanceServer(String.format("q%04d", s), c, ServerState.ACTIVE));
      }
      long step = Long.divideUnsigned(-1L, nRanges);
      ranges = new ArrayList<>(nRanges);
      double[] mean = new double[nRanges];
      double[] upper = new double[nRanges];
      double sum = 0;
      for (int i = 0; i < nRanges; i++) {
        long start = step * i;
        long end = i + 1 == nRanges ? Ring.RING_END : step * (i + 1);
        int owner = i % nServers;
        boolean pinned = rnd.nextInt(20) == 0;
        boolean moving = rnd.nextInt(2000) == 0;
        long lastMoved = rnd.nextInt(50) == 0 ? NOW - 60_000 : BalanceRange.NEVER;
        ranges.add(new BalanceRange(start, end, servers.get(owner).id(), pinned, moving,
            lastMoved, rnd.nextInt(10) == 0 ? rnd.nextDouble() * 100 : 0));
        // Capacity-proportional share, doubled on a tenth of the servers.
        mean[i] = Math.exp(rnd.nextGaussian() * 0.8) * servers.get(owner).capacity()
            * (owner % 10 == 0 ? 2 : 1);
        sum += mean[i];
      }
      double scale = 0.6 * capacity / sum;
      for (int i = 0; i < nRanges; i++) {
        mean[i] *= scale;
        upper[i] = mean[i] * (1.1 + 0.4 * rnd.nextDouble());
      }
      List<LoadOutlook.HotKey> hot = new ArrayList<>();
      for (int k = 0; k < 32; k++) {
        double m = capacity / nServers * 0.05 * rnd.nextDouble();
        hot.add(new LoadOutlook.HotKey(rnd.nextLong(), m, m * 1.3));
      }
      outlook = LoadOutlook.ofRanges(ranges, mean, upper, hot);
      defaults = BalancerConfig.defaults();
      manyMoves = defaults.toBuilder().maxMovesPerRound(200).maxMovesPerServer(1)
          .maxMovesPerWindow(200).build();
      Plan check = Planner.plan(ranges, servers, outlook, defaults, NOW, MoveHistory.EMPTY);
      if (!check.acting() || check.moves().isEmpty()) {
        throw new IllegalStateException("the benchmark cluster is not imbalanced: " + check);
      }
    }
  }

  @Benchmark
  public Plan planDefaults(Cluster c) {
    return Planner.plan(c.ranges, c.servers, c.outlook, c.defaults, NOW, MoveHistory.EMPTY);
  }

  @Benchmark
  public Plan planManyMoves(Cluster c) {
    return Planner.plan(c.ranges, c.servers, c.outlook, c.manyMoves, NOW, MoveHistory.EMPTY);
  }
}
