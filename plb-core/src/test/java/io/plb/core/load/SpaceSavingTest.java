package io.plb.core.load;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The space-saving sketch against exact counts on skewed and adversarial streams. */
class SpaceSavingTest {

  /** A Zipf(s) sampler over {@code n} keys by inverse CDF. */
  static final class Zipf {
    private final double[] cdf;
    private final SplittableRandom random;

    Zipf(int n, double s, long seed) {
      cdf = new double[n];
      double sum = 0;
      for (int i = 0; i < n; i++) {
        sum += 1.0 / Math.pow(i + 1, s);
        cdf[i] = sum;
      }
      for (int i = 0; i < n; i++) {
        cdf[i] /= sum;
      }
      random = new SplittableRandom(seed);
    }

    int next() {
      double u = random.nextDouble();
      int lo = 0;
      int hi = cdf.length - 1;
      while (lo < hi) {
        int mid = (lo + hi) >>> 1;
        if (cdf[mid] < u) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    }
  }

  /** A key hash for key number i (spread over the ring like XXH64 would). */
  static long hashOf(int i) {
    long z = (i + 1) * 0x9E3779B97F4A7C15L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  private record Run(SpaceSaving sketch, Map<Long, long[]> truth, long n) {}

  private static Run zipfRun(int keys, double s, int n, int k, long seed) {
    SpaceSaving sketch = new SpaceSaving(k);
    Map<Long, long[]> truth = new HashMap<>();
    Zipf zipf = new Zipf(keys, s, seed);
    SplittableRandom sizes = new SplittableRandom(seed ^ 0x5EED);
    for (int i = 0; i < n; i++) {
      long h = hashOf(zipf.next());
      long bytes = 1 + sizes.nextInt(2000);
      sketch.offer(h, bytes);
      long[] t = truth.computeIfAbsent(h, x -> new long[2]);
      t[0]++;
      t[1] += bytes;
    }
    return new Run(sketch, truth, n);
  }

  /** Every bound the sketch promises, checked against the exact counts. */
  private static void assertBounds(Run run) {
    HotKeys summary = run.sketch().summary();
    int k = run.sketch().capacity();
    long sum = 0;
    for (HotKey key : summary.keys()) {
      long[] t = run.truth().get(key.hash());
      assertNotNull(t, "a listed key was offered");
      assertTrue(key.count() - key.error() <= t[0] && t[0] <= key.count(),
          "count bounds of " + key + " hold for true count " + t[0]);
      assertTrue(key.bytes() <= t[1], "bytes are a lower bound");
      if (key.error() == 0) {
        assertEquals(t[0], key.count(), "error 0 means exact");
        assertEquals(t[1], key.bytes(), "error 0 means exact bytes");
      }
      assertTrue(key.error() <= run.n() / k, "error at most N/K");
      sum += key.count();
    }
    assertEquals(Math.min(k, run.truth().size()), summary.size());
    if (run.truth().size() > k) {
      assertEquals(run.n(), sum, "the counts of a full sketch sum to N");
      assertTrue(summary.threshold() <= run.n() / k, "threshold at most N/K");
    } else {
      assertEquals(0, summary.threshold(), "a sketch with a free counter is exact");
    }
    for (Map.Entry<Long, long[]> e : run.truth().entrySet()) {
      long count = e.getValue()[0];
      if (summary.find(e.getKey()) == null) {
        assertTrue(count <= summary.threshold(),
            "unlisted key had " + count + " > threshold " + summary.threshold());
      }
      if (count > run.n() / k) {
        assertNotNull(summary.find(e.getKey()), "heavy hitter with " + count + " > N/K listed");
      }
    }
  }

  @Test
  void findsTheHeavyHittersOfASkewedStream() {
    Run run = zipfRun(10_000, 1.3, 200_000, 32, 1);
    assertBounds(run);
    // Zipf(1.3): four keys are above N/K = 6250. The sketch lists them among its first four,
    // the hottest first, with their counts close to the truth.
    HotKeys summary = run.sketch().summary();
    assertEquals(hashOf(0), summary.keys().get(0).hash());
    java.util.Set<Long> firstFour = new java.util.HashSet<>();
    for (int i = 0; i < 4; i++) {
      firstFour.add(summary.keys().get(i).hash());
    }
    for (int i = 0; i < 4; i++) {
      assertTrue(run.truth().get(hashOf(i))[0] > run.n() / 32, "rank " + i + " is heavy");
      assertTrue(firstFour.contains(hashOf(i)), "rank " + i + " among the first four");
      HotKey key = summary.find(hashOf(i));
      assertTrue(key.error() * 2 <= key.count(), key.toString());
    }
  }

  @Test
  void boundsHoldOnManyRandomStreams() {
    SplittableRandom seeds = new SplittableRandom(42);
    for (int trial = 0; trial < 60; trial++) {
      int keys = 1 + seeds.nextInt(5000);
      double s = 0.5 + seeds.nextDouble() * 1.5;
      int n = 1 + seeds.nextInt(30_000);
      int k = 1 + seeds.nextInt(64);
      assertBounds(zipfRun(keys, s, n, k, seeds.nextLong()));
    }
  }

  @Test
  void boundsHoldOnAStreamOfDistinctKeys() {
    // Every key new: the worst case for the table (an eviction per message).
    SpaceSaving sketch = new SpaceSaving(8);
    Map<Long, long[]> truth = new HashMap<>();
    for (int i = 0; i < 50_000; i++) {
      long h = hashOf(i);
      sketch.offer(h, 10);
      truth.put(h, new long[] {1, 10});
    }
    assertBounds(new Run(sketch, truth, 50_000));
  }

  @Test
  void isDeterministic() {
    HotKeys a = zipfRun(3000, 0.9, 50_000, 32, 7).sketch().summary();
    HotKeys b = zipfRun(3000, 0.9, 50_000, 32, 7).sketch().summary();
    assertEquals(a, b);
  }

  @Test
  void exactWhileACounterIsFree() {
    SpaceSaving sketch = new SpaceSaving(4);
    sketch.offer(5, 100);
    sketch.offer(5, 50);
    sketch.offer(-1, 7);
    HotKeys s = sketch.summary();
    assertEquals(0, s.threshold());
    assertEquals(new HotKey(5, 2, 0, 150), s.keys().get(0));
    assertEquals(new HotKey(-1, 1, 0, 7), s.keys().get(1));
    assertEquals(3, sketch.total());
  }

  @Test
  void clearStartsAFreshPeriod() {
    Run run = zipfRun(100, 1.0, 1000, 8, 3);
    run.sketch().clear();
    assertEquals(0, run.sketch().total());
    assertEquals(HotKeys.EMPTY, run.sketch().summary());
    run.sketch().offer(9, 1);
    assertEquals(1, run.sketch().summary().size());
  }

  @Test
  void rejectsABadCapacity() {
    assertThrows(IllegalArgumentException.class, () -> new SpaceSaving(0));
    assertThrows(IllegalArgumentException.class, () -> new SpaceSaving(HotKeys.MAX_KEYS + 1));
  }

  @Test
  void summaryValidation() {
    assertNull(new HotKeys(java.util.List.of(new HotKey(1, 3, 1, 0)), 2).problem(32));
    assertTrue(new HotKeys(java.util.List.of(new HotKey(1, 3, 4, 0)), 0).problem(32)
        .contains("error 4"));
    assertTrue(new HotKeys(java.util.List.of(new HotKey(1, 0, 0, 0)), 0).problem(32)
        .contains("count 0"));
    assertTrue(new HotKeys(java.util.List.of(new HotKey(1, 2, 0, 0), new HotKey(1, 3, 0, 0)), 0)
        .problem(32).contains("twice"));
    assertTrue(new HotKeys(java.util.List.of(new HotKey(1, 2, 0, 0), new HotKey(2, 3, 0, 0)), 0)
        .problem(1).contains("at most 1"));
    assertTrue(new HotKeys(java.util.List.of(), -1).problem(1).contains("negative"));
  }
}
