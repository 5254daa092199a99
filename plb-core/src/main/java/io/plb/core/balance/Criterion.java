package io.plb.core.balance;

/**
 * How the planner measures imbalance over the horizon (DESIGN §8). Utilisation is a server's
 * planned (upper-quantile) cost rate divided by its capacity; only ACTIVE servers count.
 */
public enum Criterion {
  /**
   * Max utilisation over mean utilisation (total planned load / total capacity) above
   * {@code balancer.maxMeanRatio}. Scale-free: works with capacities given as relative weights.
   */
  MAX_MEAN,
  /**
   * Any server's utilisation above {@code balancer.highWater}. Needs capacities in cost units per
   * second (absolute), so that utilisation 1 means full.
   */
  HIGH_WATER,
  /**
   * The classic criterion: the standard deviation of the servers' utilisations above
   * {@code balancer.stddevThreshold}.
   */
  STDDEV,
  /**
   * Either {@link #MAX_MEAN} or {@link #HIGH_WATER} (DESIGN §8: max/mean above {@code
   * balancer.maxMeanRatio}, or any server above {@code balancer.highWater}): keeps the servers
   * roughly even, and never lets one fill up because the ratio looked fine. Its value is how far the nearer of the
   * two is above its threshold, {@code max(max/mean − maxMeanRatio, max − highWater)}: the
   * threshold is 0, and {@code balancer.hysteresis} applies to both.
   */
  MAX_MEAN_OR_HIGH_WATER
}
