package io.plb.core.sim.balance;

import io.plb.core.keyspace.Ring;
import java.util.Arrays;

/**
 * Perfect foresight: the actual load of the next horizon, read from the load matrix, as both the
 * mean and the upper quantile. The bound no forecaster can beat with the same planner.
 */
public final class OracleForesight implements PlannerStrategy.Foresight {
  private final LoadMatrix matrix;

  public OracleForesight(LoadMatrix matrix) {
    this.matrix = matrix;
  }

  @Override
  public void observe(MinuteLoad load) {}

  @Override
  public void horizon(int minute, int horizon, double[] mean, double[] upper) {
    Arrays.fill(mean, 0);
    int end = Math.min(matrix.minutes(), minute + horizon);
    int n = Math.max(1, end - minute);
    for (int t = minute; t < end; t++) {
      for (int e = matrix.rowStart(t); e < matrix.rowEnd(t); e++) {
        mean[matrix.slice(e)] += matrix.cost(e);
      }
    }
    for (int s = 0; s < Ring.SLICES; s++) {
      mean[s] /= n;
    }
    System.arraycopy(mean, 0, upper, 0, Ring.SLICES);
  }

  @Override
  public int grid() {
    return Ring.SLICES;
  }
}
