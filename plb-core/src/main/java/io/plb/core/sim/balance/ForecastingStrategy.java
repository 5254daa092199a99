package io.plb.core.sim.balance;

/**
 * A strategy that plans on forecasts of the load. After each round the simulator scores the
 * forecast against what then happened (it knows the whole trace) and against the seasonal naive
 * forecast (the same minutes one day earlier), and reports the figures with the strategy's
 * results: {@code forecast_wape} (Σ|forecast − actual| / Σ actual) and {@code forecast_mase}
 * (Σ|forecast − actual| / Σ|naive − actual|), over every part of the grid and every round from
 * the second day on.
 */
public interface ForecastingStrategy extends BalanceStrategy {
  /** The forecasts are made per part of a grid of this many equal slice-aligned parts. */
  int forecastGrid();

  /** Minutes the forecast covers, from the planning minute on. */
  int forecastHorizonMinutes();

  /**
   * The forecast of the last round: each grid part's mean cost per minute over the horizon, or
   * null if the last round made none. Read by the simulator right after {@link #plan}.
   */
  double[] lastForecast();
}
