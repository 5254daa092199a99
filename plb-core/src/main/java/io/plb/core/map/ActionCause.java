package io.plb.core.map;

import java.util.Objects;

/**
 * Why the balancer took an automatic action, committed with the command and kept with the map
 * change it produced ({@link MapDelta#actionCause()}), so the version can be explained later.
 * Utilisations are predicted (upper-quantile cost rate over capacity); loads are cost units per
 * second. Operator actions carry none. Immutable.
 *
 * @param reason the kind of decision (REBALANCE, SPLIT_HALF, ISOLATE_HOT_KEY, MERGE_COLD,
 *     MERGE_TO_MOVE)
 * @param criterion the imbalance criterion in force (MAX_MEAN, HIGH_WATER, STDDEV,
 *     MAX_MEAN_OR_HIGH_WATER)
 * @param criterionValue its value over the horizon when the action was chosen
 * @param source a move's source; a split or merge's owner
 * @param sourceBefore the source's predicted utilisation before the action
 * @param sourceAfter and after it
 * @param target a move's target; empty for a split or merge
 * @param targetBefore the target's predicted utilisation before the move; NaN without a target
 * @param targetAfter and after it; NaN without a target
 * @param meanLoad predicted mean rate of the range moved, split or merged
 * @param upperLoad its planned (upper-quantile) rate
 * @param model the forecast model(s) behind the prediction
 * @param decidedAtMillis when the leader planned it (wall clock)
 * @param round the balancer round that planned it
 * @param detail one line for people
 */
public record ActionCause(
    String reason,
    String criterion,
    double criterionValue,
    String source,
    double sourceBefore,
    double sourceAfter,
    String target,
    double targetBefore,
    double targetAfter,
    double meanLoad,
    double upperLoad,
    String model,
    long decidedAtMillis,
    long round,
    String detail) {

  public ActionCause {
    Objects.requireNonNull(reason, "reason");
    Objects.requireNonNull(criterion, "criterion");
    source = source == null ? "" : source;
    target = target == null ? "" : target;
    model = model == null ? "" : model;
    detail = detail == null ? "" : detail;
  }

  /** One line for people: reason, criterion and the figures. */
  public String summary() {
    StringBuilder b = new StringBuilder();
    b.append(reason).append(" (").append(criterion).append(' ')
        .append(fmt(criterionValue)).append("): ").append(source).append(' ')
        .append(fmt(sourceBefore)).append(" -> ").append(fmt(sourceAfter));
    if (!target.isEmpty()) {
      b.append(", ").append(target).append(' ').append(fmt(targetBefore)).append(" -> ")
          .append(fmt(targetAfter));
    }
    b.append(", load ").append(fmt(meanLoad)).append(" mean / ").append(fmt(upperLoad))
        .append(" planned");
    if (!model.isEmpty()) {
      b.append(", forecast ").append(model);
    }
    return b.toString();
  }

  private static String fmt(double v) {
    return Double.isNaN(v) ? "-" : String.format(java.util.Locale.ROOT, "%.3f", v);
  }
}
