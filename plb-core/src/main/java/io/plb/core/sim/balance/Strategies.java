package io.plb.core.sim.balance;

import io.plb.core.balance.BalancerConfig;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The strategies the simulator knows, by name: {@code static}, {@code reactive-ewma[:threshold]}
 * (default {@value ReactiveEwmaStrategy#DEFAULT_THRESHOLD}), {@code reactive-shedder[:std]}
 * (default {@value ReactiveShedderStrategy#DEFAULT_THRESHOLD}), {@code predictive} and
 * {@code oracle}, and {@code predictive-foresight} (predictive's planner settings on the oracle's
 * foresight; not in the default list). A spec is parsed once and creates a fresh strategy for
 * every run.
 */
public final class Strategies {
  /** Every strategy of the benchmark, in the order results are shown. */
  public static final String ALL =
      "static,reactive-ewma:0.05,reactive-ewma:0.1,reactive-ewma:0.2,reactive-shedder,predictive,"
          + "oracle";

  private Strategies() {}

  /** A parsed strategy name. */
  public record Spec(String kind, double parameter, String name) {
    /** A new strategy for one run over {@code matrix}. */
    public BalanceStrategy create(LoadMatrix matrix) {
      return create(matrix, PlannerStrategy.predictiveConfigFor(matrix.config()));
    }

    /**
     * A new strategy for one run over {@code matrix}; {@code predictive} plans with
     * {@code predictiveConfig} (which should carry the simulation's budgets and hold, as
     * {@link PlannerStrategy#predictiveConfigFor} does: the simulator refuses what breaks them).
     */
    public BalanceStrategy create(LoadMatrix matrix, BalancerConfig predictiveConfig) {
      return switch (kind) {
        case "static" -> new StaticStrategy();
        case "reactive-ewma" -> new ReactiveEwmaStrategy(parameter);
        case "reactive-shedder" -> new ReactiveShedderStrategy(parameter);
        case "predictive" -> new PlannerStrategy("predictive",
            new ForecastForesight(matrix.units(), ForecastForesight.defaultConfig(),
                PlannerStrategy.PREDICTIVE_QUANTILE),
            predictiveConfig, matrix.config().servers(),
            matrix.capacity());
        case "oracle" -> new PlannerStrategy("oracle", new OracleForesight(matrix),
            matrix.config(), matrix.capacity());
        // predictive's planner settings fed the actual future: what a perfect forecaster would
        // give predictive, so its gap to predictive is the forecasts' cost and its gap to oracle
        // the planner settings'.
        case "predictive-foresight" -> new PlannerStrategy("predictive-foresight",
            new OracleForesight(matrix), predictiveConfig, matrix.config().servers(),
            matrix.capacity());
        default -> throw new IllegalArgumentException("strategy '" + kind
            + "' is not available");
      };
    }
  }

  /**
   * Parses a comma-separated list of strategy names.
   *
   * @throws IllegalArgumentException naming the bad entry: unknown, bad parameter, or repeated
   */
  public static List<Spec> parseList(String text) {
    List<Spec> specs = new ArrayList<>();
    Set<String> names = new LinkedHashSet<>();
    for (String part : text.split(",", -1)) {
      String p = part.strip();
      if (p.isEmpty()) {
        throw new IllegalArgumentException("--strategies has an empty entry in '" + text + "'");
      }
      Spec spec = parse(p);
      if (!names.add(spec.name())) {
        throw new IllegalArgumentException("--strategies lists '" + spec.name() + "' twice");
      }
      specs.add(spec);
    }
    return specs;
  }

  /** Parses one strategy name. */
  public static Spec parse(String text) {
    String kind = text;
    String param = null;
    int colon = text.indexOf(':');
    if (colon >= 0) {
      kind = text.substring(0, colon);
      param = text.substring(colon + 1);
    }
    switch (kind) {
      case "static", "predictive", "oracle", "predictive-foresight" -> {
        if (param != null) {
          throw new IllegalArgumentException("strategy '" + kind + "' takes no parameter (got '"
              + text + "')");
        }
        return new Spec(kind, Double.NaN, kind);
      }
      case "reactive-ewma" -> {
        double v = param == null ? ReactiveEwmaStrategy.DEFAULT_THRESHOLD
            : number(text, param);
        return new Spec(kind, v, "reactive-ewma:" + formatParameter(v));
      }
      case "reactive-shedder" -> {
        double v = param == null ? ReactiveShedderStrategy.DEFAULT_THRESHOLD
            : number(text, param);
        return new Spec(kind, v, v == ReactiveShedderStrategy.DEFAULT_THRESHOLD
            ? "reactive-shedder" : "reactive-shedder:" + formatParameter(v));
      }
      default -> throw new IllegalArgumentException("unknown strategy '" + text
          + "' (known: static, reactive-ewma[:threshold], reactive-shedder[:std], predictive, "
          + "oracle, predictive-foresight)");
    }
  }

  private static double number(String text, String param) {
    double v;
    try {
      v = Double.parseDouble(param);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("strategy '" + text + "': '" + param
          + "' is not a number");
    }
    if (!(v > 0) || v > 10) {
      throw new IllegalArgumentException("strategy '" + text
          + "': the threshold must be > 0 and at most 10");
    }
    return v;
  }

  /** A parameter without trailing zeros: 0.1, 0.05, 1. */
  public static String formatParameter(double v) {
    return new BigDecimal(Double.toString(v)).stripTrailingZeros().toPlainString();
  }
}
