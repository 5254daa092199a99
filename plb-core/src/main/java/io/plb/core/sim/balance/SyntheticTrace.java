package io.plb.core.sim.balance;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A seeded synthetic load trace with the features a balancer meets in practice: a daily cycle,
 * quieter weekends, Zipf-distributed hot keys, bursts on single keys, slow drift of each key's
 * popularity, and optionally a hotspot that moves around the ring. The same options (seed
 * included) always give the same events, in the same order.
 *
 * <p>Pure: no I/O, no clock. Not thread-safe during {@link #generate}.
 *
 * @param seed the random seed
 * @param startMillis the first minute (epoch milliseconds, minute-aligned is simplest)
 * @param minutes length of the trace
 * @param keys number of distinct keys ({@code key-0} ...)
 * @param eventsPerMinute mean events per minute over a day (before weekends and bursts)
 * @param zipf exponent of key popularity by rank (0 = uniform; 1 = classic Zipf)
 * @param dailyAmplitude depth of the daily cycle, 0..1 (the quietest hour has
 *     {@code 1 - amplitude} of the mean rate, the busiest {@code 1 + amplitude})
 * @param weekendFactor rate on Saturdays and Sundays relative to weekdays
 * @param burstsPerDay mean number of bursts a day, each on one random key
 * @param burstEventsPerMinute extra events per minute on the key during a burst
 * @param burstMinutes length of a burst
 * @param driftPerDay standard deviation per day of each key's log-popularity random walk
 * @param hotspotShare share of the events that go to the moving hotspot (0 = none)
 * @param hotspotWidth width of the hotspot as a fraction of the ring
 * @param hotspotPeriodMinutes minutes the hotspot takes to travel once around the ring
 */
public record SyntheticTrace(
    long seed,
    long startMillis,
    int minutes,
    int keys,
    double eventsPerMinute,
    double zipf,
    double dailyAmplitude,
    double weekendFactor,
    double burstsPerDay,
    double burstEventsPerMinute,
    int burstMinutes,
    double driftPerDay,
    double hotspotShare,
    double hotspotWidth,
    int hotspotPeriodMinutes) {

  /** Receives generated events. */
  @FunctionalInterface
  public interface Sink {
    void event(long millis, String key, int size);
  }

  public SyntheticTrace {
    if (minutes < 1 || keys < 1 || !(eventsPerMinute >= 0) || !(zipf >= 0)
        || !(dailyAmplitude >= 0) || dailyAmplitude > 1 || !(weekendFactor >= 0)
        || !(burstsPerDay >= 0) || !(burstEventsPerMinute >= 0) || burstMinutes < 0
        || !(driftPerDay >= 0) || !(hotspotShare >= 0) || hotspotShare > 1
        || !(hotspotWidth > 0) || hotspotWidth > 1 || hotspotPeriodMinutes < 1) {
      throw new IllegalArgumentException("invalid synthetic trace options");
    }
  }

  /**
   * A week-long default from 2001-01-01 (a Monday): 400 keys, 20 events a minute, Zipf 1, a deep
   * daily cycle, weekends at 60 %, 6 bursts a day, mild drift, no hotspot.
   */
  public static SyntheticTrace defaults(long seed) {
    return new SyntheticTrace(seed, 978_307_200_000L, 7 * 1440, 400, 20, 1.0, 0.8, 0.6, 6, 10,
        30, 0.2, 0, 0.1, 1440);
  }

  public SyntheticTrace withMinutes(int m) {
    return new SyntheticTrace(seed, startMillis, m, keys, eventsPerMinute, zipf, dailyAmplitude,
        weekendFactor, burstsPerDay, burstEventsPerMinute, burstMinutes, driftPerDay,
        hotspotShare, hotspotWidth, hotspotPeriodMinutes);
  }

  public SyntheticTrace withHotspot(double share, double width, int periodMinutes) {
    return new SyntheticTrace(seed, startMillis, minutes, keys, eventsPerMinute, zipf,
        dailyAmplitude, weekendFactor, burstsPerDay, burstEventsPerMinute, burstMinutes,
        driftPerDay, share, width, periodMinutes);
  }

  public SyntheticTrace withRate(double perMinute) {
    return new SyntheticTrace(seed, startMillis, minutes, keys, perMinute, zipf, dailyAmplitude,
        weekendFactor, burstsPerDay, burstEventsPerMinute, burstMinutes, driftPerDay,
        hotspotShare, hotspotWidth, hotspotPeriodMinutes);
  }

  public SyntheticTrace withKeys(int n, double exponent) {
    return new SyntheticTrace(seed, startMillis, minutes, n, eventsPerMinute, exponent,
        dailyAmplitude, weekendFactor, burstsPerDay, burstEventsPerMinute, burstMinutes,
        driftPerDay, hotspotShare, hotspotWidth, hotspotPeriodMinutes);
  }

  /** Generates the events into a {@link Trace}. */
  public Trace trace() {
    Trace.Builder b = new Trace.Builder("synthetic(seed=" + seed + ")");
    generate((millis, key, size) -> b.add(millis, KeyHash.hash(key), size));
    return b.build(keys);
  }

  /** The name of key {@code i}. */
  public static String keyName(int i) {
    return "key-" + i;
  }

  /** Generates the events, in time order by minute (unordered within a minute). */
  public void generate(Sink sink) {
    SplittableRandom rng = new SplittableRandom(seed);
    String[] names = new String[keys];
    double[] position = new double[keys]; // ring position as a fraction of the ring
    int[] size = new int[keys];
    double[] weight = new double[keys];
    int[] rank = new int[keys];
    for (int i = 0; i < keys; i++) {
      names[i] = keyName(i);
      position[i] = Ring.unsignedToDouble(KeyHash.hash(names[i])) / 0x1p64;
      size[i] = 128 + rng.nextInt(8192);
      rank[i] = i;
    }
    // Hot keys at random places on the ring: shuffle the ranks.
    for (int i = keys - 1; i > 0; i--) {
      int j = rng.nextInt(i + 1);
      int t = rank[i];
      rank[i] = rank[j];
      rank[j] = t;
    }
    for (int i = 0; i < keys; i++) {
      weight[i] = 1.0 / Math.pow(rank[i] + 1, zipf);
    }
    // Keys by ring position, for the hotspot.
    Integer[] byPos = new Integer[keys];
    for (int i = 0; i < keys; i++) {
      byPos[i] = i;
    }
    Arrays.sort(byPos, (a, c) -> Double.compare(position[a], position[c]));
    double[] sortedPos = new double[keys];
    for (int i = 0; i < keys; i++) {
      sortedPos[i] = position[byPos[i]];
    }

    double[] logDrift = new double[keys];
    double hourSigma = driftPerDay / Math.sqrt(24);
    double[] cdf = new double[keys];
    List<int[]> bursts = new ArrayList<>(); // {key, start, end}
    double burstPerMinute = burstsPerDay / 1440.0;
    long firstMinute = Math.floorDiv(startMillis, 60_000L);

    for (int m = 0; m < minutes; m++) {
      if (m % 60 == 0) {
        double total = 0;
        for (int i = 0; i < keys; i++) {
          if (m > 0 && hourSigma > 0) {
            logDrift[i] += hourSigma * gaussian(rng);
          }
          total += weight[i] * Math.exp(logDrift[i]);
          cdf[i] = total;
        }
        for (int i = 0; i < keys; i++) {
          cdf[i] /= total;
        }
      }
      long minuteStart = (firstMinute + m) * 60_000L;
      long minuteOfDay = Math.floorMod(firstMinute + m, 1440L);
      long day = Math.floorDiv(firstMinute + m, 1440L);
      int dayOfWeek = (int) Math.floorMod(day + 3, 7L); // 1970-01-01 was a Thursday; 0 = Monday
      double daily = 1 + dailyAmplitude * Math.sin(2 * Math.PI * (minuteOfDay - 360) / 1440.0);
      double weekly = dayOfWeek >= 5 ? weekendFactor : 1.0;
      double level = eventsPerMinute * daily * weekly;

      int n = poisson(rng, level * (1 - hotspotShare));
      for (int e = 0; e < n; e++) {
        int k = Arrays.binarySearch(cdf, rng.nextDouble());
        int key = Math.min(keys - 1, k >= 0 ? k : -k - 1);
        sink.event(minuteStart + rng.nextInt(60_000), names[key], size[key]);
      }
      if (hotspotShare > 0) {
        int h = poisson(rng, level * hotspotShare);
        double centre = (double) (m % hotspotPeriodMinutes) / hotspotPeriodMinutes;
        int lo = lowerBound(sortedPos, centre);
        int hi = lowerBound(sortedPos, centre + hotspotWidth);
        int count = hi - lo;
        int wrapped = centre + hotspotWidth > 1 ? lowerBound(sortedPos, centre + hotspotWidth - 1)
            : 0;
        int span = count + wrapped;
        for (int e = 0; e < h && span > 0; e++) {
          int pick = rng.nextInt(span);
          int idx = pick < count ? lo + pick : pick - count;
          int key = byPos[idx];
          sink.event(minuteStart + rng.nextInt(60_000), names[key], size[key]);
        }
      }
      if (burstPerMinute > 0 && rng.nextDouble() < burstPerMinute) {
        bursts.add(new int[] {rng.nextInt(keys), m, m + burstMinutes});
      }
      for (int b = bursts.size() - 1; b >= 0; b--) {
        int[] burst = bursts.get(b);
        if (m >= burst[2]) {
          bursts.remove(b);
          continue;
        }
        int extra = poisson(rng, burstEventsPerMinute);
        for (int e = 0; e < extra; e++) {
          sink.event(minuteStart + rng.nextInt(60_000), names[burst[0]], size[burst[0]]);
        }
      }
    }
  }

  private static int lowerBound(double[] a, double v) {
    int i = Arrays.binarySearch(a, v);
    if (i < 0) {
      return -i - 1;
    }
    while (i > 0 && a[i - 1] == v) {
      i--;
    }
    return i;
  }

  private static double gaussian(SplittableRandom rng) {
    // Box-Muller; one value per call keeps the stream simple and deterministic.
    double u = 1 - rng.nextDouble();
    double v = rng.nextDouble();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  private static int poisson(SplittableRandom rng, double lambda) {
    if (lambda <= 0) {
      return 0;
    }
    if (lambda < 30) {
      double l = Math.exp(-lambda);
      int k = 0;
      double p = 1;
      do {
        k++;
        p *= rng.nextDouble();
      } while (p > l);
      return k - 1;
    }
    return (int) Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gaussian(rng)));
  }
}
