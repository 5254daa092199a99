package io.plb.core.balance;

/**
 * Why the planner chose an action, with the figures it acted on. Utilisations are planned
 * (upper-quantile) cost rate over capacity; loads are cost units per second.
 *
 * @param reason what kind of decision this was
 * @param criterion the imbalance criterion in force
 * @param criterionValue its value over the horizon when the action was chosen
 * @param source the server the action concerns: a move's source, a split or merge's owner
 * @param sourceBefore the source's predicted utilisation before the action
 * @param sourceAfter and after it (equal for a split or merge)
 * @param target a move's target; null for a split or merge
 * @param targetBefore the target's predicted utilisation before the move (NaN if no target)
 * @param targetAfter and after it (NaN if no target)
 * @param meanLoad the predicted mean rate of the range moved, split or merged
 * @param upperLoad its planned (upper-quantile) rate
 * @param detail one line for people: what and why, with the figures
 */
public record Cause(
    Reason reason,
    Criterion criterion,
    double criterionValue,
    String source,
    double sourceBefore,
    double sourceAfter,
    String target,
    double targetBefore,
    double targetAfter,
    double meanLoad,
    double upperLoad,
    String detail) {

  /** The kinds of decisions. */
  public enum Reason {
    /** A range moved from a server above the criterion's level to one below it. */
    REBALANCE,
    /** A range too hot to place anywhere, split where its predicted load halves. */
    SPLIT_HALF,
    /** A range split so that one dominating hot key gets a range of its own. */
    ISOLATE_HOT_KEY,
    /** Two adjacent cold ranges of one owner merged, to keep the map small. */
    MERGE_COLD,
    /**
     * Adjacent ranges of a server needing relief merged into one that can move with gain, when
     * each alone is too small to.
     */
    MERGE_TO_MOVE
  }
}
