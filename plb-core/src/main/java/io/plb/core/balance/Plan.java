package io.plb.core.balance;

import java.util.Collections;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * What {@link Planner#plan} decided: the actions, in the order they are to be applied, and the
 * predicted picture before and after them. Immutable.
 *
 * @param actions moves, splits and merges, in order
 * @param criterion the imbalance criterion in force
 * @param criterionBefore its value over the horizon on the current map
 * @param criterionAfter its value once every action is applied
 * @param acting whether the planner was balancing this round (above the threshold, or still
 *     within the hysteresis band of an earlier round)
 * @param engaged whether the next round should keep balancing even below the threshold: the
 *     planner acted and the criterion is still above threshold − hysteresis. Carried to the next
 *     round by {@link MoveHistory#record}
 * @param utilisationBefore every server's predicted utilisation (planned rate / capacity) now
 * @param utilisationAfter and once the plan is applied
 * @param notes why the planner stopped where it did, for people (budgets spent, servers it could
 *     not relieve); empty when there is nothing to say
 */
public record Plan(
    List<PlanAction> actions,
    Criterion criterion,
    double criterionBefore,
    double criterionAfter,
    boolean acting,
    boolean engaged,
    SortedMap<String, Double> utilisationBefore,
    SortedMap<String, Double> utilisationAfter,
    List<String> notes) {

  public Plan {
    actions = List.copyOf(actions);
    utilisationBefore = Collections.unmodifiableSortedMap(new TreeMap<>(utilisationBefore));
    utilisationAfter = Collections.unmodifiableSortedMap(new TreeMap<>(utilisationAfter));
    notes = List.copyOf(notes);
  }

  /** The moves, in order. */
  public List<PlanAction.Move> moves() {
    return actions.stream()
        .filter(a -> a instanceof PlanAction.Move)
        .map(a -> (PlanAction.Move) a)
        .toList();
  }

  public List<PlanAction.Split> splits() {
    return actions.stream()
        .filter(a -> a instanceof PlanAction.Split)
        .map(a -> (PlanAction.Split) a)
        .toList();
  }

  public List<PlanAction.Merge> merges() {
    return actions.stream()
        .filter(a -> a instanceof PlanAction.Merge)
        .map(a -> (PlanAction.Merge) a)
        .toList();
  }

  public boolean isEmpty() {
    return actions.isEmpty();
  }
}
