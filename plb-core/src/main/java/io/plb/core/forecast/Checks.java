package io.plb.core.forecast;

import java.util.List;

/** Argument checks shared by the forecasting classes; each failure names what was wrong. */
final class Checks {
  private Checks() {}

  /** √(π/2): the ratio of the standard deviation to the mean absolute deviation of a normal. */
  static final double SIGMA_PER_MAE = Math.sqrt(Math.PI / 2);

  static void observation(double value) {
    if (!Double.isFinite(value)) {
      throw new IllegalArgumentException("observation must be a finite number, got " + value);
    }
    if (value < 0) {
      throw new IllegalArgumentException("observation must be >= 0 (a rate), got " + value);
    }
  }

  static void history(double[] history, String model, int minHistory) {
    if (history == null) {
      throw new IllegalArgumentException(model + ": history must not be null");
    }
    if (history.length == 0) {
      throw new IllegalArgumentException(model + ": history is empty");
    }
    for (int i = 0; i < history.length; i++) {
      double v = history[i];
      if (!Double.isFinite(v) || v < 0) {
        throw new IllegalArgumentException(
            model + ": history[" + i + "] must be a finite number >= 0, got " + v);
      }
    }
    if (history.length < minHistory) {
      throw new IllegalArgumentException(
          model + ": needs at least " + minHistory + " observations, got " + history.length);
    }
  }

  static void steps(int steps) {
    if (steps < 1) {
      throw new IllegalArgumentException("steps must be >= 1, got " + steps);
    }
  }

  static void coverage(double coverage) {
    if (!(coverage > 0 && coverage < 1)) {
      throw new IllegalArgumentException("coverage must be in (0, 1), got " + coverage);
    }
  }

  static void season(String what, int season) {
    if (season < 2) {
      throw new IllegalArgumentException(what + " must be >= 2, got " + season);
    }
  }

  static void atLeast(String what, long value, long min) {
    if (value < min) {
      throw new IllegalArgumentException(what + " must be >= " + min + ", got " + value);
    }
  }

  /** A smoothing parameter in [lo, hi]; NaN is rejected. */
  static void unit(String what, double value, double lo, double hi) {
    if (!(value >= lo && value <= hi)) {
      throw new IllegalArgumentException(
          what + " must be in [" + lo + ", " + hi + "], got " + value);
    }
  }

  static void fitRange(SeriesBuffer series, long from, long to, int minHistory, String model) {
    if (series == null) {
      throw new IllegalArgumentException(model + ": series must not be null");
    }
    if (from < series.start() || to > series.end() || from > to) {
      throw new IllegalArgumentException(
          model + ": fit range [" + from + ", " + to + ") is not inside the series' held range ["
              + series.start() + ", " + series.end() + ")");
    }
    if (to - from < Math.max(1, minHistory)) {
      throw new IllegalArgumentException(
          model + ": needs at least " + Math.max(1, minHistory) + " observations, got "
              + (to - from));
    }
  }

  static <T> List<T> nonEmpty(String what, List<T> list) {
    if (list == null || list.isEmpty()) {
      throw new IllegalArgumentException(what + " must not be empty");
    }
    for (T t : list) {
      if (t == null) {
        throw new IllegalArgumentException(what + " must not contain null");
      }
    }
    return List.copyOf(list);
  }
}
