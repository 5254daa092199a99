package io.plb.bench;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.RoutingTable;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
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
 * Cost of one routing lookup: {@link RoutingTable#route(long)} against the obvious baseline, a
 * {@code TreeMap<Long, Route>} ordered by {@link Long#compareUnsigned} and queried with
 * {@code floorEntry}, on the same map and the same random hashes in the same run.
 *
 * <p>The map has {@code ranges} ranges covering the ring, owned round-robin by 16 registered
 * servers: of equal width ({@code even}) or of widths spread over six orders of magnitude
 * ({@code skewed}, see {@link Tables#layout}). Hashes come from a seeded {@link Random} and are
 * pre-generated into a power-of-two array; each call takes the next one ({@code index++ & MASK}),
 * so the measured code does not allocate. The TreeMap baseline gets its keys pre-boxed as well
 * (boxing a random long would allocate), which is the most favourable setting for it.
 *
 * <p>{@code flatBinarySearch} is the same branch-light search over the whole array of starts,
 * without {@code RoutingTable}'s first-level index: what {@code route} did before the index, kept
 * here as a same-run baseline for it.
 *
 * <p>{@code keyHashAndRoute} measures what a router does per message: XXH64 of a 16-byte key and
 * the lookup; {@code keyHashOnly} measures the hash alone (it does not depend on the map size and
 * runs once).
 *
 * <p>Run: {@code bench/run.sh route} (defaults: 1 fork, 3 x 1 s warm-up, 5 x 1 s measurement).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
public class RouteBenchmark {
  /** Number of pre-generated hashes; a power of two so the index can be masked. */
  static final int HASHES = 1 << 16;

  static final int MASK = HASHES - 1;

  /** Number of pre-generated 16-byte keys; a power of two. */
  static final int KEYS = 1 << 12;

  static final int KEY_MASK = KEYS - 1;

  static final long SEED = 0x5EED_F00DL;

  static final int SERVERS = 16;

  /** The map under test and the baseline built from it. One per benchmark thread. */
  @State(Scope.Thread)
  public static class Tables {
    @Param({"1000", "10000", "100000"})
    public int ranges;

    /**
     * {@code even}: equal widths, uniform hashes. {@code skewed}: widths spread log-uniformly over
     * six orders of magnitude in random order (a map the balancer has split finely where load is
     * hot), and each hash falls in a uniformly chosen range, so narrow ranges are looked up as
     * often as wide ones, as they would be if each carried a similar load.
     */
    @Param({"even", "skewed"})
    public String layout;

    RoutingTable table;
    FlatSearch flat;
    TreeMap<Long, RoutingTable.Route> tree;
    long[] hashes;
    Long[] boxedHashes;
    byte[][] keys;
    int index;

    @Setup(Level.Trial)
    public void setUp() {
      Random random = new Random(SEED);
      ClusterImage image = layout.equals("skewed") ? skewedImage(ranges, random) : image(ranges);
      table = RoutingTable.of(image);
      if (table.size() != ranges) {
        throw new IllegalStateException("table has " + table.size() + " ranges, wanted " + ranges);
      }
      // The baseline maps each range start to the very Route object the table returns for it.
      tree = new TreeMap<>(Long::compareUnsigned);
      for (RangeEntry r : image.ranges()) {
        tree.put(r.start(), table.route(r.start()));
      }
      flat = new FlatSearch(table, image);
      hashes = new long[HASHES];
      boxedHashes = new Long[HASHES];
      for (int i = 0; i < HASHES; i++) {
        hashes[i] = layout.equals("skewed") ? inRandomRange(image, random) : random.nextLong();
        boxedHashes[i] = hashes[i]; // distinct Long objects, allocated once here
      }
      keys = keys(random);
      // Both structures must agree before anything is timed.
      for (int i = 0; i < HASHES; i++) {
        RoutingTable.Route a = table.route(hashes[i]);
        RoutingTable.Route b = tree.floorEntry(boxedHashes[i]).getValue();
        RoutingTable.Route c = flat.route(hashes[i]);
        if (a != b || a != c || !Ring.contains(a.start(), a.end(), hashes[i])) {
          throw new IllegalStateException(
              "RoutingTable, TreeMap and the flat search disagree on " + Ring.hex(hashes[i]));
        }
      }
      index = 0;
    }
  }

  /** The branch-light search over all starts, with no first-level index: the baseline. */
  static final class FlatSearch {
    private final long[] flippedStarts;
    private final RoutingTable.Route[] routes;

    FlatSearch(RoutingTable table, ClusterImage image) {
      int n = image.rangeCount();
      flippedStarts = new long[n];
      routes = new RoutingTable.Route[n];
      for (int i = 0; i < n; i++) {
        long start = image.range(i).start();
        flippedStarts[i] = start ^ Long.MIN_VALUE;
        routes[i] = table.route(start);
      }
    }

    RoutingTable.Route route(long hash) {
      long key = hash ^ Long.MIN_VALUE;
      long[] a = flippedStarts;
      int lo = 0;
      int n = a.length;
      while (n > 1) {
        int half = n >>> 1;
        if (a[lo + half] <= key) {
          lo += half;
        }
        n -= half;
      }
      return routes[lo];
    }
  }

  /** Keys only, for the hash-alone benchmark (independent of the map size). */
  @State(Scope.Thread)
  public static class Keys {
    byte[][] keys;
    int index;

    @Setup(Level.Trial)
    public void setUp() {
      keys = keys(new Random(SEED));
    }
  }

  /** An image of {@code n} ranges of equal width (the last one takes the remainder). */
  static ClusterImage image(int n) {
    List<QueueServerInfo> servers = servers();
    // floor((2^64 - 1) / n): n * step <= 2^64 - 1, so every start fits and increases.
    long step = Long.divideUnsigned(-1L, n);
    List<RangeEntry> ranges = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      long start = step * i;
      long end = i + 1 == n ? Ring.RING_END : step * (i + 1);
      ranges.add(new RangeEntry(start, end, servers.get(i % SERVERS).id(), 1L, null, false));
    }
    return ClusterImage.of(1L, ranges, servers);
  }

  /** {@code n} ranges with log-uniform widths (ratio up to 10^6), in random order. */
  static ClusterImage skewedImage(int n, Random random) {
    double[] cumulative = new double[n + 1];
    for (int i = 0; i < n; i++) {
      cumulative[i + 1] = cumulative[i] + Math.exp(random.nextDouble() * Math.log(1e6));
    }
    List<QueueServerInfo> servers = servers();
    List<RangeEntry> ranges = new ArrayList<>(n);
    long start = 0;
    for (int i = 0; i < n; i++) {
      long end;
      if (i + 1 == n) {
        end = Ring.RING_END;
      } else {
        // A fraction of the ring in [0, 1) as an unsigned 64-bit position, at least one past start.
        double f = cumulative[i + 1] / cumulative[n];
        end = (long) (f * 0x1p63) << 1;
        if (Long.compareUnsigned(end, start) <= 0) {
          end = start + 1;
        }
      }
      ranges.add(new RangeEntry(start, end, servers.get(i % SERVERS).id(), 1L, null, false));
      start = end;
    }
    return ClusterImage.of(1L, ranges, servers);
  }

  /** A hash in a uniformly chosen range of {@code image}. */
  static long inRandomRange(ClusterImage image, Random random) {
    RangeEntry r = image.range(random.nextInt(image.rangeCount()));
    long width = r.end() - r.start(); // unsigned; RING_END (0) wraps to 2^64 - start
    return r.start() + Long.remainderUnsigned(random.nextLong(), width);
  }

  static List<QueueServerInfo> servers() {
    List<QueueServerInfo> servers = new ArrayList<>();
    for (int s = 0; s < SERVERS; s++) {
      servers.add(
          new QueueServerInfo(
              String.format("q%02d", s), "10.0.0." + (s + 1) + ":9000", 1.0, ServerState.ACTIVE));
    }
    return servers;
  }

  static byte[][] keys(Random random) {
    byte[][] keys = new byte[KEYS][16];
    for (byte[] k : keys) {
      random.nextBytes(k);
    }
    return keys;
  }

  @Benchmark
  public RoutingTable.Route routingTable(Tables t) {
    return t.table.route(t.hashes[t.index++ & MASK]);
  }

  @Benchmark
  public RoutingTable.Route flatBinarySearch(Tables t) {
    return t.flat.route(t.hashes[t.index++ & MASK]);
  }

  @Benchmark
  public RoutingTable.Route treeMapFloorEntry(Tables t) {
    Map.Entry<Long, RoutingTable.Route> e = t.tree.floorEntry(t.boxedHashes[t.index++ & MASK]);
    return e.getValue();
  }

  @Benchmark
  public RoutingTable.Route keyHashAndRoute(Tables t) {
    return t.table.route(KeyHash.hash(t.keys[t.index++ & KEY_MASK]));
  }

  @Benchmark
  public long keyHashOnly(Keys k) {
    return KeyHash.hash(k.keys[k.index++ & KEY_MASK]);
  }
}
