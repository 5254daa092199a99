package io.plb.core.balancer;

import io.plb.core.balance.BalanceRange;
import io.plb.core.balance.BalanceServer;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.balance.Cause;
import io.plb.core.balance.MoveHistory;
import io.plb.core.balance.PlanAction;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns the committed map into the planner's input, and the planner's causes into committed ones:
 * the pure glue between {@link ClusterImage} and {@link io.plb.core.balance.Planner}. Stateless.
 */
public final class PlanInputs {
  private PlanInputs() {}

  /** The cost queued in a range (see {@link LoadForecaster#backlog}). */
  public interface Backlog {
    double of(long start, long end);
  }

  /**
   * The map's ranges as the planner sees them: a range with a handover is moving; unassigned
   * ranges have an empty owner; no backlog.
   */
  public static List<BalanceRange> ranges(ClusterImage image) {
    return ranges(image, (s, e) -> 0.0);
  }

  /** As {@link #ranges(ClusterImage)}, each assigned range with its backlog. */
  public static List<BalanceRange> ranges(ClusterImage image, Backlog backlog) {
    List<BalanceRange> out = new ArrayList<>(image.rangeCount());
    for (RangeEntry r : image.ranges()) {
      double b = r.isAssigned() ? Math.max(0, backlog.of(r.start(), r.end())) : 0.0;
      out.add(new BalanceRange(r.start(), r.end(), r.owner(), r.pinned(), r.handover() != null,
          BalanceRange.NEVER, Double.isFinite(b) ? b : 0.0));
    }
    return out;
  }

  /**
   * The registered servers, with capacity {@code capacity weight × capacityPerWeight} cost units
   * per second.
   */
  public static List<BalanceServer> servers(ClusterImage image, double capacityPerWeight) {
    List<BalanceServer> out = new ArrayList<>();
    for (QueueServerInfo s : image.servers().values()) {
      out.add(new BalanceServer(s.id(), s.capacity() * capacityPerWeight, s.state()));
    }
    return out;
  }

  /** The committed form of an action's cause. */
  public static ActionCause causeOf(PlanAction action, String model, long nowMillis, long round) {
    Cause c = action.cause();
    return new ActionCause(c.reason().name(), c.criterion().name(), c.criterionValue(),
        c.source(), c.sourceBefore(), c.sourceAfter(), c.target(), c.targetBefore(),
        c.targetAfter(), c.meanLoad(), c.upperLoad(), model, nowMillis, round, c.detail());
  }

  /**
   * The balancer's recent moves as the committed map changes record them (a new leader's start):
   * every change that started a handover with an automatic cause decided within the move window or
   * the dwell before {@code nowMillis}. Not engaged.
   */
  public static MoveHistory recentMoves(List<MapDelta> changes, long nowMillis,
      BalancerConfig config) {
    long keep = Math.max(config.moveWindow().toMillis(), config.minDwell().toMillis());
    List<MoveHistory.Entry> entries = new ArrayList<>();
    for (MapDelta d : changes) {
      ActionCause c = d.actionCause();
      if (c == null || c.target().isEmpty() || c.decidedAtMillis() <= nowMillis - keep) {
        continue;
      }
      for (RangeEntry r : d.upsertedRanges()) {
        if (r.handover() != null && r.handover().target().equals(c.target())) {
          entries.add(new MoveHistory.Entry(c.decidedAtMillis(), r.start(), r.end(), c.source(),
              c.target()));
        }
      }
    }
    return MoveHistory.of(entries, false);
  }
}
