package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Random clusters, maps and outlooks for the planner's tests (seeded: a seed replays exactly). */
final class BalanceFixtures {
  static final long MINUTE = 60_000L;

  private BalanceFixtures() {}

  /** One random planning problem. */
  record Problem(List<BalanceRange> ranges, List<BalanceServer> servers, LoadOutlook outlook,
      BalancerConfig config, long now, MoveHistory history) {
    Plan plan() {
      return Planner.plan(ranges, servers, outlook, config, now, history);
    }
  }

  static String id(int i) {
    return String.format("q%02d", i);
  }

  /** Starts of about {@code n} ranges cutting the ring at random points, some one hash wide. */
  static long[] randomStarts(Random rnd, int n) {
    long[] cuts = new long[n];
    for (int i = 1; i < n; i++) {
      cuts[i] = rnd.nextInt(20) == 0 ? cuts[i - 1] + 1 : rnd.nextLong();
    }
    // Sort as unsigned: flip the sign bit, sort signed, flip back.
    for (int i = 0; i < n; i++) {
      cuts[i] ^= Long.MIN_VALUE;
    }
    Arrays.sort(cuts);
    int k = 0;
    for (int i = 0; i < n; i++) {
      long c = cuts[i] ^ Long.MIN_VALUE;
      if (i == 0 || c != (cuts[k - 1] ^ Long.MIN_VALUE)) {
        cuts[k++] = c ^ Long.MIN_VALUE;
      }
    }
    long[] starts = new long[k];
    for (int i = 0; i < k; i++) {
      starts[i] = cuts[i] ^ Long.MIN_VALUE;
    }
    return starts; // cuts[0] was 0, so starts[0] is 0
  }

  static Problem randomProblem(long seed) {
    return randomProblem(seed, false);
  }

  /**
   * A random problem; {@code hotSpots} makes ownership even, always adds hot spots (ranges too
   * hot to place whole) and leaves budgets for moves, so that the planner has to split.
   */
  static Problem randomProblem(long seed, boolean hotSpots) {
    Random rnd = new Random(seed);
    int nServers = 3 + rnd.nextInt(48);
    int nRanges = 10 + rnd.nextInt(1991);
    long now = 1_000_000_000L + rnd.nextInt(1_000_000);
    List<BalanceServer> servers = new ArrayList<>();
    for (int i = 0; i < nServers; i++) {
      int kind = rnd.nextInt(20);
      ServerState state = kind == 0 ? ServerState.DOWN
          : kind <= 2 ? ServerState.DRAINING : ServerState.ACTIVE;
      double capacity = rnd.nextBoolean() ? 100.0 : 50.0 + rnd.nextInt(300);
      servers.add(new BalanceServer(id(i), capacity, state));
    }
    long[] starts = randomStarts(rnd, nRanges);
    // Owners skewed (a few servers hold many more ranges), or even (then hot spots are what
    // there is to balance).
    double[] weight = new double[nServers];
    boolean skewed = !hotSpots && rnd.nextBoolean();
    for (int i = 0; i < nServers; i++) {
      weight[i] = skewed ? Math.pow(rnd.nextDouble(), 3) + 0.05 : 1.0;
    }
    List<BalanceRange> ranges = new ArrayList<>();
    for (int i = 0; i < starts.length; i++) {
      long end = i + 1 < starts.length ? starts[i + 1] : Ring.RING_END;
      String owner = rnd.nextInt(200) == 0 ? "" : id(pick(rnd, weight));
      boolean pinned = rnd.nextInt(20) == 0;
      boolean moving = !owner.isEmpty() && rnd.nextInt(Math.max(1, starts.length / 2)) == 0;
      long lastMoved = rnd.nextInt(3) == 0 ? now - rnd.nextInt(30) * MINUTE - rnd.nextInt(1000)
          : BalanceRange.NEVER;
      double backlog = rnd.nextInt(4) == 0 ? rnd.nextDouble() * 500 : 0.0;
      ranges.add(new BalanceRange(starts[i], end, owner, pinned, moving, lastMoved, backlog));
    }
    LoadOutlook outlook = randomOutlook(rnd, ranges, servers, hotSpots);
    BalancerConfig config = randomConfig(rnd);
    if (hotSpots) {
      config = config.toBuilder().maxMovesPerRound(Math.max(2, config.maxMovesPerRound()))
          .maxMovesPerServer(Math.max(2, config.maxMovesPerServer()))
          .maxMovesPerWindow(Math.max(16, config.maxMovesPerWindow()))
          .maxSplitsPerRound(Math.max(3, config.maxSplitsPerRound())).build();
    }
    List<MoveHistory.Entry> entries = new ArrayList<>();
    int h = rnd.nextInt(8);
    for (int i = 0; i < h; i++) {
      BalanceRange r = ranges.get(rnd.nextInt(ranges.size()));
      entries.add(new MoveHistory.Entry(now - rnd.nextInt(25) * MINUTE, r.start(), r.end(),
          id(rnd.nextInt(nServers)), id(rnd.nextInt(nServers))));
    }
    MoveHistory history = MoveHistory.of(entries, rnd.nextBoolean());
    return new Problem(ranges, servers, outlook, config, now, history);
  }

  /**
   * A random problem where no single range is worth moving: 4,096 one-slice ranges owned in
   * contiguous blocks by 3..16 servers (a few draining or down), per-slice load that is higher on
   * one or two servers, and a random configuration. Relief then needs runs merged to move.
   */
  static Problem manySmallRanges(long seed) {
    Random rnd = new Random(seed);
    int nServers = 3 + rnd.nextInt(14);
    long now = 1_000_000_000L + rnd.nextInt(1_000_000);
    List<BalanceServer> servers = new ArrayList<>();
    for (int i = 0; i < nServers; i++) {
      int kind = rnd.nextInt(12);
      ServerState state = kind == 0 ? ServerState.DOWN
          : kind == 1 ? ServerState.DRAINING : ServerState.ACTIVE;
      servers.add(new BalanceServer(id(i), 100.0, state));
    }
    String[] owners = new String[Ring.SLICES];
    for (int i = 0; i < owners.length; i++) {
      owners[i] = id((int) ((long) i * nServers / owners.length));
    }
    double[] factor = new double[nServers];
    for (int i = 0; i < nServers; i++) {
      factor[i] = 1.0;
    }
    int hot = 1 + rnd.nextInt(2);
    for (int i = 0; i < hot; i++) {
      factor[rnd.nextInt(nServers)] = 1.2 + rnd.nextDouble();
    }
    double perSlice = (0.3 + 0.5 * rnd.nextDouble()) * 100.0 * nServers / Ring.SLICES;
    double[] mean = new double[Ring.SLICES];
    double[] upper = new double[Ring.SLICES];
    for (int i = 0; i < mean.length; i++) {
      int server = (int) ((long) i * nServers / mean.length);
      mean[i] = perSlice * factor[server] * (0.8 + 0.4 * rnd.nextDouble());
      upper[i] = mean[i] * (1 + 0.3 * rnd.nextDouble());
    }
    List<BalanceRange> ranges = new ArrayList<>();
    for (int i = 0; i < Ring.SLICES; i++) {
      long start = (long) i << (64 - Ring.SLICE_BITS);
      long end = i + 1 < Ring.SLICES ? (long) (i + 1) << (64 - Ring.SLICE_BITS) : Ring.RING_END;
      boolean pinned = rnd.nextInt(50) == 0;
      long lastMoved = rnd.nextInt(20) == 0 ? now - rnd.nextInt(30) * MINUTE : BalanceRange.NEVER;
      ranges.add(new BalanceRange(start, end, owners[i], pinned, false, lastMoved, 0.0));
    }
    BalancerConfig config = randomConfig(rnd).toBuilder()
        .minGain(0.005 + rnd.nextDouble() * 0.03)
        .maxMovesPerRound(1 + rnd.nextInt(6))
        .maxMovesPerServer(1 + rnd.nextInt(3))
        .maxMovesPerWindow(4 + rnd.nextInt(12))
        .maxMergesPerMove(rnd.nextInt(5) == 0 ? 0 : 1 + rnd.nextInt(200))
        .build();
    return new Problem(ranges, servers, LoadOutlook.ofSlices(mean, upper, List.of()), config,
        now, MoveHistory.of(List.of(), false));
  }

  static int pick(Random rnd, double[] weight) {
    double total = 0;
    for (double w : weight) {
      total += w;
    }
    double x = rnd.nextDouble() * total;
    for (int i = 0; i < weight.length; i++) {
      x -= weight[i];
      if (x < 0) {
        return i;
      }
    }
    return weight.length - 1;
  }

  /** Per slice or per range, with a few hot keys; the total is 30..120 % of the capacity. */
  static LoadOutlook randomOutlook(Random rnd, List<BalanceRange> ranges,
      List<BalanceServer> servers, boolean hotSpots) {
    double capacity = servers.stream().mapToDouble(BalanceServer::capacity).sum();
    double level = (0.3 + 0.9 * rnd.nextDouble()) * capacity;
    List<LoadOutlook.HotKey> hot = new ArrayList<>();
    int nHot = rnd.nextInt(6);
    for (int i = 0; i < nHot; i++) {
      double mean = level * 0.05 * rnd.nextDouble();
      hot.add(new LoadOutlook.HotKey(rnd.nextLong(), mean, mean * (1 + rnd.nextDouble())));
    }
    // Hot spots: a few ranges bring most of a server's capacity — spread over the range, or
    // partly through one hot key — so that moving whole ranges cannot balance and the planner
    // has to split.
    double perServer = capacity / servers.size();
    List<int[]> spots = new ArrayList<>(); // range index, and whether it has a hot key
    if (hotSpots || rnd.nextInt(2) == 0) {
      int n = 1 + rnd.nextInt(3);
      for (int i = 0; i < n; i++) {
        int idx = rnd.nextInt(ranges.size());
        if (!ranges.get(idx).isSingleHash()) {
          spots.add(new int[] {idx, rnd.nextInt(2)});
        }
      }
    }
    for (int[] spot : spots) {
      BalanceRange r = ranges.get(spot[0]);
      if (spot[1] == 1) {
        double mean = perServer * (0.2 + 0.6 * rnd.nextDouble());
        long hash = r.start() + 1 + (long) ((Ring.width(r.start(), r.end()) - 2)
            * rnd.nextDouble());
        if (Ring.contains(r.start(), r.end(), hash)) {
          hot.add(new LoadOutlook.HotKey(hash, mean, mean * (1 + 0.3 * rnd.nextDouble())));
        }
      }
    }
    double[] mean;
    double[] upper;
    boolean bySlice = rnd.nextBoolean();
    int n = bySlice ? Ring.SLICES : ranges.size();
    mean = new double[n];
    upper = new double[n];
    fill(rnd, mean, upper, level * 0.8);
    for (int[] spot : spots) {
      BalanceRange r = ranges.get(spot[0]);
      double extra = perServer * (0.3 + rnd.nextDouble());
      int i = bySlice ? Ring.sliceOf(r.start()) : spot[0];
      mean[i] += extra;
      upper[i] += extra * (1 + 0.3 * rnd.nextDouble());
    }
    return bySlice ? LoadOutlook.ofSlices(mean, upper, hot)
        : LoadOutlook.ofRanges(ranges, mean, upper, hot);
  }

  private static void fill(Random rnd, double[] mean, double[] upper, double total) {
    double sum = 0;
    for (int i = 0; i < mean.length; i++) {
      mean[i] = Math.exp(rnd.nextGaussian() * 1.2);
      sum += mean[i];
    }
    for (int i = 0; i < mean.length; i++) {
      mean[i] *= total / sum;
      upper[i] = mean[i] * (1.0 + 0.5 * rnd.nextDouble());
    }
  }

  static BalancerConfig randomConfig(Random rnd) {
    Criterion criterion = Criterion.values()[rnd.nextInt(Criterion.values().length)];
    double[] rhos = {1.0, 1.0, 0.5, 0.0};
    return BalancerConfig.builder()
        .criterion(criterion)
        .maxMeanRatio(1.05 + rnd.nextDouble() * 0.3)
        .hysteresis(0.01 + rnd.nextDouble() * 0.03)
        .highWater(0.5 + rnd.nextDouble() * 0.4)
        .stddevThreshold(0.05 + rnd.nextDouble() * 0.15)
        .upperCorrelation(rhos[rnd.nextInt(rhos.length)])
        .maxMovesPerRound(rnd.nextInt(10) == 0 ? 0 : 1 + rnd.nextInt(7))
        .maxMovesPerServer(rnd.nextInt(10) == 0 ? 0 : 1 + rnd.nextInt(3))
        .maxMovesPerWindow(rnd.nextInt(10) == 0 ? rnd.nextInt(4) : 4 + rnd.nextInt(12))
        .moveWindow(Duration.ofMinutes(1 + rnd.nextInt(20)))
        .minDwell(Duration.ofMinutes(1 + rnd.nextInt(20)))
        .minGain(rnd.nextDouble() * 0.04)
        .disruptionWeight(rnd.nextDouble() * 2)
        .splitMinLoad(0.02 + rnd.nextDouble() * 0.1)
        .hotKeyShare(0.3 + rnd.nextDouble() * 0.7)
        .maxSplitsPerRound(rnd.nextInt(8) == 0 ? 0 : 1 + rnd.nextInt(5))
        .maxRanges(rnd.nextInt(4) == 0 ? 50 : 200_000)
        .mergeMaxLoad(rnd.nextInt(3) == 0 ? 0.0 : rnd.nextDouble() * 0.01)
        .maxMergesPerRound(rnd.nextInt(20))
        .minRangesPerServer(1 + rnd.nextInt(20))
        .maxMergesPerMove(rnd.nextInt(4) == 0 ? 0 : rnd.nextInt(100))
        .actAbove(rnd.nextInt(4) == 0 ? 0.5 : 0.0)
        .lumpAllowance(rnd.nextInt(4) == 0 ? rnd.nextDouble() * 2 : 0.0)
        .build();
  }

  /** Utilisations of the active servers, highest first. */
  static double[] activeSorted(Map<String, Double> utilisation, List<BalanceServer> servers) {
    return servers.stream().filter(BalanceServer::isActive)
        .mapToDouble(s -> utilisation.get(s.id())).boxed()
        .sorted((a, b) -> Double.compare(b, a)).mapToDouble(Double::doubleValue).toArray();
  }
}
