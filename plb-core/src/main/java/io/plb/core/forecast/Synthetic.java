package io.plb.core.forecast;

import java.util.Arrays;
import java.util.Random;

/**
 * Seeded synthetic rate series for tests and simulations: a smooth daily cycle with traffic banks
 * (bumps at given hours), a weekly pattern, drift, noise (Gaussian or Poisson counts) and bursts;
 * and sets of such series for hot keys. The same spec and seed always give the same series.
 *
 * <p>The noise-free rate at bucket {@code t} is
 *
 * <pre>
 *   level × weekday[day mod 7] × (1 + drift × t / week)
 *         × (1 − amplitude·cos(2π (hour − troughHour) / 24) + Σ_banks height·exp(−Δh² / 2w²))
 * </pre>
 *
 * where {@code hour} is the hour of day of the bucket (plus {@code shiftHours}) and {@code Δh} its
 * distance, around the clock, to a bank. Bucket 0 starts day 0 at midnight.
 *
 * @param bucketsPerDay buckets in a day (1440: one-minute buckets)
 * @param level scale of the rate
 * @param amplitude relative amplitude of the smooth daily cycle, in [0, 1]
 * @param troughHour hour of day of its minimum
 * @param bankHours hours of day of the banks
 * @param bankHeight height of each bank relative to {@code level}
 * @param bankWidthHours standard deviation of each bank's bump, in hours
 * @param weekdayFactors seven factors, one per day of the week (day 0 first)
 * @param driftPerWeek relative growth per week
 * @param noise standard deviation of the Gaussian noise relative to the rate (unused with counts)
 * @param counts draw Poisson counts with the rate as mean instead of adding Gaussian noise
 * @param burstRate probability per bucket that a burst starts
 * @param burstHeight a burst's peak relative to {@code level}; it decays linearly
 * @param burstLength buckets a burst lasts
 * @param shiftHours shift of the whole daily pattern (a later time zone is positive)
 */
public record Synthetic(
    int bucketsPerDay,
    double level,
    double amplitude,
    double troughHour,
    double[] bankHours,
    double bankHeight,
    double bankWidthHours,
    double[] weekdayFactors,
    double driftPerWeek,
    double noise,
    boolean counts,
    double burstRate,
    double burstHeight,
    int burstLength,
    double shiftHours) {

  public Synthetic {
    Checks.atLeast("bucketsPerDay", bucketsPerDay, 1);
    if (!(level >= 0) || Double.isInfinite(level)) {
      throw new IllegalArgumentException("level must be a finite number >= 0, got " + level);
    }
    Checks.unit("amplitude", amplitude, 0, 1);
    bankHours = bankHours == null ? new double[0] : bankHours.clone();
    if (!(bankHeight >= 0) || !(bankWidthHours > 0)) {
      throw new IllegalArgumentException("bankHeight must be >= 0 and bankWidthHours > 0");
    }
    if (weekdayFactors == null || weekdayFactors.length != 7) {
      throw new IllegalArgumentException("weekdayFactors must have 7 values");
    }
    weekdayFactors = weekdayFactors.clone();
    for (double f : weekdayFactors) {
      if (!(f >= 0)) {
        throw new IllegalArgumentException("weekday factors must be >= 0");
      }
    }
    if (!(driftPerWeek > -1) || !(noise >= 0) || !(burstRate >= 0 && burstRate <= 1)
        || !(burstHeight >= 0)) {
      throw new IllegalArgumentException(
          "need driftPerWeek > -1, noise >= 0, burstRate in [0, 1], burstHeight >= 0");
    }
    Checks.atLeast("burstLength", burstLength, 1);
  }

  /**
   * Airport-like traffic (times UTC): night trough at 08 h, banks at 14 h and 17 h, quieter
   * Saturdays, Poisson counts around {@code level}.
   */
  public static Synthetic flights(int bucketsPerDay, double level) {
    return new Synthetic(
        bucketsPerDay, level, 0.6, 8, new double[] {14, 17}, 0.8, 0.75,
        new double[] {1.0, 1.02, 1.0, 1.03, 1.08, 0.75, 0.9}, 0, 0, true, 0, 0, 1, 0);
  }

  /** A smooth daily and weekly cycle with relative Gaussian noise and no banks or bursts. */
  public static Synthetic seasonal(int bucketsPerDay, double level, double noise) {
    return new Synthetic(
        bucketsPerDay, level, 0.5, 4, new double[0], 0, 1,
        new double[] {1, 1, 1, 1, 1, 0.8, 0.85}, 0, noise, false, 0, 0, 1, 0);
  }

  public Synthetic withLevel(double newLevel) {
    return new Synthetic(bucketsPerDay, newLevel, amplitude, troughHour, bankHours, bankHeight,
        bankWidthHours, weekdayFactors, driftPerWeek, noise, counts, burstRate, burstHeight,
        burstLength, shiftHours);
  }

  public Synthetic withNoise(double newNoise, boolean newCounts) {
    return new Synthetic(bucketsPerDay, level, amplitude, troughHour, bankHours, bankHeight,
        bankWidthHours, weekdayFactors, driftPerWeek, newNoise, newCounts, burstRate,
        burstHeight, burstLength, shiftHours);
  }

  public Synthetic withBursts(double rate, double height, int length) {
    return new Synthetic(bucketsPerDay, level, amplitude, troughHour, bankHours, bankHeight,
        bankWidthHours, weekdayFactors, driftPerWeek, noise, counts, rate, height, length,
        shiftHours);
  }

  public Synthetic withDrift(double perWeek) {
    return new Synthetic(bucketsPerDay, level, amplitude, troughHour, bankHours, bankHeight,
        bankWidthHours, weekdayFactors, perWeek, noise, counts, burstRate, burstHeight,
        burstLength, shiftHours);
  }

  public Synthetic withShift(double hours) {
    return new Synthetic(bucketsPerDay, level, amplitude, troughHour, bankHours, bankHeight,
        bankWidthHours, weekdayFactors, driftPerWeek, noise, counts, burstRate, burstHeight,
        burstLength, hours);
  }

  @Override
  public double[] bankHours() {
    return bankHours.clone();
  }

  @Override
  public double[] weekdayFactors() {
    return weekdayFactors.clone();
  }

  /** The noise-free, burst-free rate at bucket {@code t}. */
  public double expected(long t) {
    double hour = 24.0 * Math.floorMod(t, (long) bucketsPerDay) / bucketsPerDay + shiftHours;
    long day = Math.floorDiv(t, (long) bucketsPerDay);
    double shape = 1 - amplitude * Math.cos(2 * Math.PI * (hour - troughHour) / 24);
    for (double bank : bankHours) {
      double d = Math.abs(hour - bank) % 24;
      d = Math.min(d, 24 - d);
      shape += bankHeight * Math.exp(-d * d / (2 * bankWidthHours * bankWidthHours));
    }
    double week = 7.0 * bucketsPerDay;
    double growth = 1 + driftPerWeek * t / week;
    return Math.max(0, level * weekdayFactors[(int) Math.floorMod(day, 7L)] * growth * shape);
  }

  /** The noise-free, burst-free rates of buckets {@code 0 .. length - 1}. */
  public double[] expectedSeries(int length) {
    double[] out = new double[length];
    for (int t = 0; t < length; t++) {
      out[t] = expected(t);
    }
    return out;
  }

  /** One series of {@code length} buckets drawn with {@code seed}. */
  public double[] series(long seed, int length) {
    Checks.atLeast("length", length, 0);
    Random rnd = new Random(seed);
    double[] out = new double[length];
    int burstLeft = 0;
    for (int t = 0; t < length; t++) {
      double mean = expected(t);
      if (burstLeft > 0) {
        mean += burstHeight * level * burstLeft / burstLength;
        burstLeft--;
      }
      if (burstRate > 0 && rnd.nextDouble() < burstRate) {
        burstLeft = burstLength;
      }
      out[t] = counts ? poisson(rnd, mean) : Math.max(0, mean * (1 + noise * rnd.nextGaussian()));
    }
    return out;
  }

  /**
   * {@code keys} series sharing this spec's total level in Zipf proportions ({@code share ∝ 1 /
   * (i + 1)^zipf}), each with its daily pattern shifted by up to ±3 hours (time zones) and its own
   * noise. Key 0 is the hottest.
   */
  public double[][] keys(long seed, int keys, double zipf, int length) {
    Checks.atLeast("keys", keys, 1);
    if (!(zipf >= 0)) {
      throw new IllegalArgumentException("zipf must be >= 0, got " + zipf);
    }
    double[] share = new double[keys];
    double total = 0;
    for (int i = 0; i < keys; i++) {
      share[i] = 1 / Math.pow(i + 1, zipf);
      total += share[i];
    }
    Random rnd = new Random(seed);
    double[][] out = new double[keys][];
    for (int i = 0; i < keys; i++) {
      double shift = shiftHours + (rnd.nextDouble() * 6 - 3);
      out[i] = withLevel(level * share[i] / total).withShift(shift).series(rnd.nextLong(), length);
    }
    return out;
  }

  /** A random walk from {@code start} with Gaussian steps of {@code step}, reflected at zero. */
  public static double[] randomWalk(long seed, int length, double start, double step) {
    Random rnd = new Random(seed);
    double[] out = new double[length];
    double x = start;
    for (int t = 0; t < length; t++) {
      x = Math.abs(x + step * rnd.nextGaussian());
      out[t] = x;
    }
    return out;
  }

  private static double poisson(Random rnd, double mean) {
    if (mean <= 0) {
      return 0;
    }
    if (mean > 50) {
      return Math.max(0, Math.round(mean + Math.sqrt(mean) * rnd.nextGaussian()));
    }
    double limit = Math.exp(-mean);
    double p = rnd.nextDouble();
    int k = 0;
    while (p > limit) {
      p *= rnd.nextDouble();
      k++;
    }
    return k;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Synthetic s
        && bucketsPerDay == s.bucketsPerDay
        && Double.compare(level, s.level) == 0
        && Double.compare(amplitude, s.amplitude) == 0
        && Double.compare(troughHour, s.troughHour) == 0
        && Arrays.equals(bankHours, s.bankHours)
        && Double.compare(bankHeight, s.bankHeight) == 0
        && Double.compare(bankWidthHours, s.bankWidthHours) == 0
        && Arrays.equals(weekdayFactors, s.weekdayFactors)
        && Double.compare(driftPerWeek, s.driftPerWeek) == 0
        && Double.compare(noise, s.noise) == 0
        && counts == s.counts
        && Double.compare(burstRate, s.burstRate) == 0
        && Double.compare(burstHeight, s.burstHeight) == 0
        && burstLength == s.burstLength
        && Double.compare(shiftHours, s.shiftHours) == 0;
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(bucketsPerDay, level, amplitude, troughHour,
        Arrays.hashCode(bankHours), bankHeight, bankWidthHours, Arrays.hashCode(weekdayFactors),
        driftPerWeek, noise, counts, burstRate, burstHeight, burstLength, shiftHours);
  }

  @Override
  public String toString() {
    return "Synthetic[" + bucketsPerDay + " buckets/day, level " + level + ", amplitude "
        + amplitude + ", banks " + Arrays.toString(bankHours) + " × " + bankHeight
        + ", weekdays " + Arrays.toString(weekdayFactors) + ", drift " + driftPerWeek
        + ", noise " + noise + (counts ? " (counts)" : "") + ", bursts " + burstRate + " × "
        + burstHeight + " for " + burstLength + ", shift " + shiftHours + " h]";
  }
}
