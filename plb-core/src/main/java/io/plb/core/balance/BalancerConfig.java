package io.plb.core.balance;

import java.time.Duration;
import java.util.Objects;

/**
 * Every setting of the planner (DESIGN §8), with its default. Immutable; the constructor checks
 * every value and refuses a bad one with an {@link IllegalArgumentException} that names the
 * setting ({@code balancer.<name>}), the allowed range and the value given. Build one with
 * {@link #defaults()} or {@link #builder()}.
 *
 * <p>Utilisation is a server's planned cost rate over its capacity (1 = full). Loads given "as a
 * fraction of capacity" are fractions of the capacity of the server concerned.
 *
 * @param criterion how imbalance is measured; default {@link Criterion#MAX_MEAN}
 * @param maxMeanRatio {@code MAX_MEAN} acts when max / mean utilisation exceeds it; > 1, default
 *     1.15
 * @param highWater {@code HIGH_WATER} acts when a server's utilisation exceeds it; in (0, 10],
 *     default 0.8
 * @param stddevThreshold {@code STDDEV} acts when the standard deviation of utilisation exceeds it;
 *     > 0, default 0.15
 * @param hysteresis the band below the threshold, in the criterion's own units: once acting, the
 *     planner keeps planning (this round and the next ones) until the criterion is at or below
 *     threshold − hysteresis, and then does nothing until it rises above the threshold again. So
 *     it does not flap around the threshold. ≥ 0 and below the threshold (for {@code MAX_MEAN},
 *     below {@code maxMeanRatio − 1}; for {@code MAX_MEAN_OR_HIGH_WATER}, below both
 *     {@code maxMeanRatio − 1} and {@code highWater}, and applied to both); default 0.05
 * @param actAbove the planner does not start acting while every active server's utilisation is
 *     at or below this (no moves on a nearly idle cluster, whatever the ratio); ≥ 0, default 0
 *     (off)
 * @param lumpAllowance how much of the max/mean ratio the planner leaves to the lumpiness of load:
 *     the ratio it balances to (for {@code MAX_MEAN} and the ratio part of {@code
 *     MAX_MEAN_OR_HIGH_WATER}) is at least 1 + lumpAllowance × (the hottest indivisible load, a
 *     hot key, over a mean server's load). With 1 this is the bound any greedy placement meets
 *     (max ≤ mean + largest item); chasing a tighter max/mean around a few heavy keys costs many
 *     moves, each holding a heavy key's traffic. ≥ 0, default 0 (off)
 * @param quantile the quantile the outlook's upper rates are at: the planner plans for it, not the
 *     mean; in (0.5, 1), default 0.9
 * @param upperCorrelation how a server's planned load adds up its ranges' upper quantiles: 1 adds
 *     them (errors move together: the cautious sum); 0 treats the ranges' errors as independent
 *     (mean + root of the summed squared spreads), which is what the quantile of the server's sum
 *     is when they are; in [0, 1], default 1
 * @param horizon how far ahead the outlook looks; > 0, default 10 min
 * @param maxMovesPerRound handovers started by one plan; ≥ 0, default 4
 * @param maxMovesPerServer handovers one server takes part in (as source or target) in one plan,
 *     counting those already running from it; ≥ 0, default 2
 * @param maxMovesPerWindow handovers started in the cluster within any {@code moveWindow},
 *     counting the ones in the {@link MoveHistory}; ≥ 0, default 4
 * @param moveWindow the window of {@code maxMovesPerWindow}; > 0, default 10 min
 * @param minDwell a range is not moved again within this time of its last move; > 0, default
 *     10 min
 * @param minGain a move must lower the predicted max utilisation of its source and target by more
 *     than this (no churn for nothing); in [0, 1), default 0.02 (2 % of capacity)
 * @param expectedHold how long a handover holds a range's new messages (before its backlog
 *     drains); > 0, default 30 s
 * @param disruptionWeight weight of a move's delayed load (backlog plus mean rate × expected hold,
 *     over what the source serves in that time) against its fixed cost of 1; ≥ 0, default 1
 * @param splitMinLoad a range too hot to place anywhere is split only if its load is at least this
 *     fraction of its owner's capacity; > 0 and ≥ 2 × {@code mergeMaxLoad}, default 0.05
 * @param hotKeyShare a range is split around a hot key (the key gets its own range) when that key
 *     brings at least this share of the range's load; in (0, 1], default 0.5
 * @param maxSplitsPerRound splits one plan may make; ≥ 0, default 8
 * @param maxRanges a split never makes the map hold more ranges than this; ≥ 1, default 200,000
 * @param mergeMaxLoad adjacent ranges of one owner are merged when together they bring at most
 *     this fraction of the owner's capacity; ≥ 0 (0: never merge), default 0.002
 * @param maxMergesPerRound merges one plan may make; ≥ 0, default 16
 * @param minRangesPerServer a merge never leaves a server with fewer ranges than this; ≥ 1,
 *     default 16
 * @param maxMergesPerMove when every range of a server needing relief is too small to move with
 *     gain, a run of up to this many + 1 adjacent ranges of it is merged into one range that can
 *     move; ≥ 0 (0: never), default 64
 */
public record BalancerConfig(
    Criterion criterion,
    double maxMeanRatio,
    double highWater,
    double stddevThreshold,
    double hysteresis,
    double actAbove,
    double lumpAllowance,
    double quantile,
    double upperCorrelation,
    Duration horizon,
    int maxMovesPerRound,
    int maxMovesPerServer,
    int maxMovesPerWindow,
    Duration moveWindow,
    Duration minDwell,
    double minGain,
    Duration expectedHold,
    double disruptionWeight,
    double splitMinLoad,
    double hotKeyShare,
    int maxSplitsPerRound,
    int maxRanges,
    double mergeMaxLoad,
    int maxMergesPerRound,
    int minRangesPerServer,
    int maxMergesPerMove) {

  public BalancerConfig {
    Objects.requireNonNull(criterion, "balancer.criterion");
    above("maxMeanRatio", maxMeanRatio, 1.0, "> 1");
    if (!(highWater > 0 && highWater <= 10)) {
      throw bad("highWater", "in (0, 10]", highWater);
    }
    above("stddevThreshold", stddevThreshold, 0.0, "> 0");
    double room = switch (criterion) {
      case MAX_MEAN -> maxMeanRatio - 1.0;
      case HIGH_WATER -> highWater;
      case MAX_MEAN_OR_HIGH_WATER -> Math.min(maxMeanRatio - 1.0, highWater);
      case STDDEV -> stddevThreshold;
    };
    if (!(hysteresis >= 0 && hysteresis < room)) {
      throw bad("hysteresis",
          "in [0, " + room + ") (below the " + criterion + " threshold"
              + (criterion == Criterion.MAX_MEAN ? " minus 1"
                  : criterion == Criterion.MAX_MEAN_OR_HIGH_WATER
                      ? " minus 1 and the high water" : "") + ")", hysteresis);
    }
    atLeast("actAbove", actAbove, 0.0);
    atLeast("lumpAllowance", lumpAllowance, 0.0);
    if (!(quantile > 0.5 && quantile < 1)) {
      throw bad("quantile", "in (0.5, 1)", quantile);
    }
    if (!(upperCorrelation >= 0 && upperCorrelation <= 1)) {
      throw bad("upperCorrelation", "in [0, 1]", upperCorrelation);
    }
    positive("horizon", horizon);
    budget("maxMovesPerRound", maxMovesPerRound);
    budget("maxMovesPerServer", maxMovesPerServer);
    budget("maxMovesPerWindow", maxMovesPerWindow);
    positive("moveWindow", moveWindow);
    positive("minDwell", minDwell);
    if (!(minGain >= 0 && minGain < 1)) {
      throw bad("minGain", "in [0, 1)", minGain);
    }
    positive("expectedHold", expectedHold);
    atLeast("disruptionWeight", disruptionWeight, 0.0);
    above("splitMinLoad", splitMinLoad, 0.0, "> 0");
    if (!(hotKeyShare > 0 && hotKeyShare <= 1)) {
      throw bad("hotKeyShare", "in (0, 1]", hotKeyShare);
    }
    budget("maxSplitsPerRound", maxSplitsPerRound);
    if (maxRanges < 1) {
      throw bad("maxRanges", ">= 1", maxRanges);
    }
    atLeast("mergeMaxLoad", mergeMaxLoad, 0.0);
    if (splitMinLoad < 2 * mergeMaxLoad) {
      throw new IllegalArgumentException(
          "balancer.splitMinLoad must be >= 2 x balancer.mergeMaxLoad = " + 2 * mergeMaxLoad
              + " (got " + splitMinLoad + "), or the halves of a split could be merged again");
    }
    budget("maxMergesPerRound", maxMergesPerRound);
    if (minRangesPerServer < 1) {
      throw bad("minRangesPerServer", ">= 1", minRangesPerServer);
    }
    budget("maxMergesPerMove", maxMergesPerMove);
  }

  /** The defaults listed above. */
  public static BalancerConfig defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding this configuration's values. */
  public Builder toBuilder() {
    return new Builder(this);
  }

  /**
   * The selected criterion's threshold: the planner starts acting above it (0 for {@code
   * MAX_MEAN_OR_HIGH_WATER}, whose value is the excess over the nearer threshold).
   */
  public double threshold() {
    return switch (criterion) {
      case MAX_MEAN -> maxMeanRatio;
      case HIGH_WATER -> highWater;
      case MAX_MEAN_OR_HIGH_WATER -> 0.0;
      case STDDEV -> stddevThreshold;
    };
  }

  /** threshold − hysteresis: once acting, the planner plans until the criterion is at or below. */
  public double exitLevel() {
    return threshold() - hysteresis;
  }

  private static IllegalArgumentException bad(String name, String range, Object got) {
    return new IllegalArgumentException(
        "balancer." + name + " must be " + range + " (got " + got + ")");
  }

  private static void above(String name, double value, double min, String range) {
    if (!(value > min) || Double.isInfinite(value)) {
      throw bad(name, "a finite number " + range, value);
    }
  }

  private static void atLeast(String name, double value, double min) {
    if (!(value >= min) || Double.isInfinite(value)) {
      throw bad(name, "a finite number >= " + min, value);
    }
  }

  private static void budget(String name, int value) {
    if (value < 0) {
      throw bad(name, ">= 0", value);
    }
  }

  private static void positive(String name, Duration value) {
    if (value == null) {
      throw new IllegalArgumentException("balancer." + name + " must be set (got null)");
    }
    if (value.isNegative() || value.isZero()) {
      throw bad(name, "a duration > 0", value);
    }
    if (value.compareTo(Duration.ofDays(365)) > 0) {
      throw bad(name, "a duration of at most 365 days", value);
    }
  }

  /** Builds a {@link BalancerConfig}; starts from the defaults. Not thread-safe. */
  public static final class Builder {
    private Criterion criterion = Criterion.MAX_MEAN;
    private double maxMeanRatio = 1.15;
    private double highWater = 0.8;
    private double stddevThreshold = 0.15;
    private double hysteresis = 0.05;
    private double actAbove = 0.0;
    private double lumpAllowance = 0.0;
    private double quantile = 0.9;
    private double upperCorrelation = 1.0;
    private Duration horizon = Duration.ofMinutes(10);
    private int maxMovesPerRound = 4;
    private int maxMovesPerServer = 2;
    private int maxMovesPerWindow = 4;
    private Duration moveWindow = Duration.ofMinutes(10);
    private Duration minDwell = Duration.ofMinutes(10);
    private double minGain = 0.02;
    private Duration expectedHold = Duration.ofSeconds(30);
    private double disruptionWeight = 1.0;
    private double splitMinLoad = 0.05;
    private double hotKeyShare = 0.5;
    private int maxSplitsPerRound = 8;
    private int maxRanges = 200_000;
    private double mergeMaxLoad = 0.002;
    private int maxMergesPerRound = 16;
    private int minRangesPerServer = 16;
    private int maxMergesPerMove = 64;

    private Builder() {}

    private Builder(BalancerConfig c) {
      criterion = c.criterion;
      maxMeanRatio = c.maxMeanRatio;
      highWater = c.highWater;
      stddevThreshold = c.stddevThreshold;
      hysteresis = c.hysteresis;
      actAbove = c.actAbove;
      lumpAllowance = c.lumpAllowance;
      quantile = c.quantile;
      upperCorrelation = c.upperCorrelation;
      horizon = c.horizon;
      maxMovesPerRound = c.maxMovesPerRound;
      maxMovesPerServer = c.maxMovesPerServer;
      maxMovesPerWindow = c.maxMovesPerWindow;
      moveWindow = c.moveWindow;
      minDwell = c.minDwell;
      minGain = c.minGain;
      expectedHold = c.expectedHold;
      disruptionWeight = c.disruptionWeight;
      splitMinLoad = c.splitMinLoad;
      hotKeyShare = c.hotKeyShare;
      maxSplitsPerRound = c.maxSplitsPerRound;
      maxRanges = c.maxRanges;
      mergeMaxLoad = c.mergeMaxLoad;
      maxMergesPerRound = c.maxMergesPerRound;
      minRangesPerServer = c.minRangesPerServer;
      maxMergesPerMove = c.maxMergesPerMove;
    }

    public Builder criterion(Criterion v) {
      criterion = v;
      return this;
    }

    public Builder maxMeanRatio(double v) {
      maxMeanRatio = v;
      return this;
    }

    public Builder highWater(double v) {
      highWater = v;
      return this;
    }

    public Builder stddevThreshold(double v) {
      stddevThreshold = v;
      return this;
    }

    public Builder hysteresis(double v) {
      hysteresis = v;
      return this;
    }

    public Builder actAbove(double v) {
      actAbove = v;
      return this;
    }

    public Builder lumpAllowance(double v) {
      lumpAllowance = v;
      return this;
    }

    public Builder quantile(double v) {
      quantile = v;
      return this;
    }

    public Builder upperCorrelation(double v) {
      upperCorrelation = v;
      return this;
    }

    public Builder horizon(Duration v) {
      horizon = v;
      return this;
    }

    public Builder maxMovesPerRound(int v) {
      maxMovesPerRound = v;
      return this;
    }

    public Builder maxMovesPerServer(int v) {
      maxMovesPerServer = v;
      return this;
    }

    public Builder maxMovesPerWindow(int v) {
      maxMovesPerWindow = v;
      return this;
    }

    public Builder moveWindow(Duration v) {
      moveWindow = v;
      return this;
    }

    public Builder minDwell(Duration v) {
      minDwell = v;
      return this;
    }

    public Builder minGain(double v) {
      minGain = v;
      return this;
    }

    public Builder expectedHold(Duration v) {
      expectedHold = v;
      return this;
    }

    public Builder disruptionWeight(double v) {
      disruptionWeight = v;
      return this;
    }

    public Builder splitMinLoad(double v) {
      splitMinLoad = v;
      return this;
    }

    public Builder hotKeyShare(double v) {
      hotKeyShare = v;
      return this;
    }

    public Builder maxSplitsPerRound(int v) {
      maxSplitsPerRound = v;
      return this;
    }

    public Builder maxRanges(int v) {
      maxRanges = v;
      return this;
    }

    public Builder mergeMaxLoad(double v) {
      mergeMaxLoad = v;
      return this;
    }

    public Builder maxMergesPerRound(int v) {
      maxMergesPerRound = v;
      return this;
    }

    public Builder minRangesPerServer(int v) {
      minRangesPerServer = v;
      return this;
    }

    public Builder maxMergesPerMove(int v) {
      maxMergesPerMove = v;
      return this;
    }

    /** The configuration; every value is checked (see {@link BalancerConfig}). */
    public BalancerConfig build() {
      return new BalancerConfig(
          criterion, maxMeanRatio, highWater, stddevThreshold, hysteresis, actAbove, lumpAllowance,
          quantile, upperCorrelation, horizon, maxMovesPerRound, maxMovesPerServer,
          maxMovesPerWindow, moveWindow, minDwell, minGain, expectedHold, disruptionWeight,
          splitMinLoad, hotKeyShare, maxSplitsPerRound, maxRanges, mergeMaxLoad, maxMergesPerRound,
          minRangesPerServer, maxMergesPerMove);
    }
  }
}
