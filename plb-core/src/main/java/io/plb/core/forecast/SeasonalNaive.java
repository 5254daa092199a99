package io.plb.core.forecast;

/**
 * Seasonal naive: the forecast for a bucket is the value one season earlier (the last value seen
 * at the same phase). The baseline every other model must beat, and the scale of MASE.
 *
 * <p>Interval: the one-step error is taken as normal with standard deviation {@code √(π/2) ×} the
 * mean absolute seasonal difference in the fit range; the {@code h}-step error grows as {@code
 * √(⌊(h - 1) / season⌋ + 1)} (each further season adds an independent error).
 */
public final class SeasonalNaive implements ForecastModel {
  private final int season;

  public SeasonalNaive(int season) {
    Checks.season("season", season);
    this.season = season;
  }

  public int season() {
    return season;
  }

  @Override
  public String name() {
    return "seasonal-naive/" + season;
  }

  @Override
  public int minHistory() {
    return season;
  }

  @Override
  public int lookback() {
    return season;
  }

  @Override
  public FittedModel fit(SeriesBuffer series, long from, long to) {
    Checks.fitRange(series, from, to, minHistory(), name());
    double sum = 0;
    long count = 0;
    long first = Math.max(from + season, to - 8L * season); // a bounded, recent window
    for (long t = first; t < to; t++) {
      sum += Math.abs(series.get(t) - series.get(t - season));
      count++;
    }
    double sigma;
    if (count > 0) {
      sigma = Checks.SIGMA_PER_MAE * sum / count;
    } else {
      // One season only: no seasonal difference to learn from; use the spread of the values.
      double[] v = series.toArray(from, to);
      double mean = 0;
      for (double x : v) {
        mean += x;
      }
      mean /= v.length;
      double mad = 0;
      for (double x : v) {
        mad += Math.abs(x - mean);
      }
      sigma = Checks.SIGMA_PER_MAE * mad / v.length;
    }
    return new Fitted(series, to, sigma);
  }

  private final class Fitted implements FittedModel {
    private final SeriesBuffer series;
    private final double sigma1;
    private long time;

    Fitted(SeriesBuffer series, long time, double sigma1) {
      this.series = series;
      this.time = time;
      this.sigma1 = sigma1;
    }

    @Override
    public String name() {
      return SeasonalNaive.this.name();
    }

    @Override
    public long time() {
      return time;
    }

    @Override
    public void advance() {
      series.get(time); // must be held
      time++;
    }

    @Override
    public void forecastMean(int steps, double[] out) {
      for (int k = 0; k < steps; k++) {
        out[k] = series.get(time + k - (long) season * (k / season + 1));
      }
    }

    @Override
    public double sigma(int step) {
      return sigma1 * Math.sqrt((step - 1) / season + 1);
    }
  }
}
