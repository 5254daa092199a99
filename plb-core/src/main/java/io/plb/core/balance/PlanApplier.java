package io.plb.core.balance;

import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Applies a {@link Plan} to a range list, checking every action as the shard map would and the
 * result as a whole: a pure helper for simulators and tests, and the proof that a plan is a valid
 * map when applied.
 *
 * <p>Moves are applied as completed handovers: the range gets its new owner, {@code moving} false
 * and {@code lastMovedAtMillis} = now. A split gives each piece the range's flags and a share of
 * its backlog in proportion to its width (the real backlog comes from telemetry); a merge keeps the
 * later of the two move times and adds the backlogs.
 *
 * <p>Stateless; the input lists are not changed.
 */
public final class PlanApplier {
  private PlanApplier() {}

  /**
   * The map after {@code plan}.
   *
   * @throws IllegalStateException naming the action and the reason when an action does not apply
   *     (unknown range, wrong owner, a pinned or moving range, a target that is not ACTIVE, a split
   *     point not strictly inside, ranges that are not adjacent or have different owners), or when
   *     the result is not a valid map
   */
  public static List<BalanceRange> apply(
      List<BalanceRange> ranges, List<BalanceServer> servers, Plan plan, long nowMillis) {
    Map<String, BalanceServer> byId = serversById(servers);
    checkMap(ranges, byId);
    List<BalanceRange> map = new ArrayList<>(ranges);
    int step = 0;
    for (PlanAction a : plan.actions()) {
      step++;
      try {
        applyOne(map, byId, a, nowMillis);
      } catch (IllegalStateException e) {
        throw new IllegalStateException(
            "plan action " + step + " (" + a.describe() + "): " + e.getMessage(), e);
      }
    }
    try {
      checkMap(map, byId);
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException("the plan leaves an invalid map: " + e.getMessage(), e);
    }
    return map;
  }

  /**
   * Checks that {@code ranges} is a valid map: in ring order, no gap, no overlap, covering the
   * whole ring, every owner (when assigned) a known server.
   *
   * @throws IllegalArgumentException saying what is wrong and where
   */
  public static void checkMap(List<BalanceRange> ranges, List<BalanceServer> servers) {
    checkMap(ranges, serversById(servers));
  }

  private static Map<String, BalanceServer> serversById(List<BalanceServer> servers) {
    Map<String, BalanceServer> byId = new HashMap<>();
    for (BalanceServer s : servers) {
      if (byId.put(s.id(), s) != null) {
        throw new IllegalArgumentException("server " + s.id() + " is listed twice");
      }
    }
    return byId;
  }

  private static void checkMap(List<BalanceRange> ranges, Map<String, BalanceServer> servers) {
    if (ranges.isEmpty()) {
      throw new IllegalArgumentException("the map has no ranges");
    }
    long expected = 0L;
    for (int i = 0; i < ranges.size(); i++) {
      BalanceRange r = Objects.requireNonNull(ranges.get(i), "range");
      if (i > 0 && expected == Ring.RING_END) {
        throw new IllegalArgumentException(
            "range " + r.rangeText() + " follows the range that ends the ring (overlap)");
      }
      if (r.start() != expected) {
        throw new IllegalArgumentException(
            "range " + r.rangeText() + " does not start at " + Ring.hex(expected)
                + (Long.compareUnsigned(r.start(), expected) < 0 ? " (overlap)" : " (gap)"));
      }
      if (!r.owner().isEmpty() && !servers.containsKey(r.owner())) {
        throw new IllegalArgumentException(
            "range " + r.rangeText() + " is owned by unknown server " + r.owner());
      }
      expected = r.end();
    }
    if (expected != Ring.RING_END) {
      throw new IllegalArgumentException(
          "the ranges end at " + Ring.hexEnd(expected) + ", not at the end of the ring (gap)");
    }
  }

  private static void applyOne(
      List<BalanceRange> map, Map<String, BalanceServer> servers, PlanAction a, long now) {
    if (a instanceof PlanAction.Move mv) {
      int i = indexOf(map, mv.rangeStart());
      BalanceRange r = map.get(i);
      if (r.end() != mv.rangeEnd()) {
        throw new IllegalStateException("range at " + Ring.hex(r.start()) + " is " + r.rangeText()
            + ", not " + Ring.formatRange(mv.rangeStart(), mv.rangeEnd()));
      }
      if (!r.owner().equals(mv.from())) {
        throw new IllegalStateException(
            "range " + r.rangeText() + " is owned by '" + r.owner() + "', not " + mv.from());
      }
      if (r.pinned()) {
        throw new IllegalStateException("range " + r.rangeText() + " is pinned");
      }
      if (r.moving()) {
        throw new IllegalStateException("range " + r.rangeText() + " is already moving");
      }
      BalanceServer to = servers.get(mv.to());
      if (to == null) {
        throw new IllegalStateException("target " + mv.to() + " is not a known server");
      }
      if (to.state() != ServerState.ACTIVE) {
        throw new IllegalStateException(
            "target " + mv.to() + " is " + to.state() + "; only ACTIVE servers take ranges");
      }
      if (mv.to().equals(mv.from())) {
        throw new IllegalStateException("source and target are both " + mv.to());
      }
      map.set(i, r.withOwner(mv.to(), now));
    } else if (a instanceof PlanAction.Split sp) {
      int i = indexOf(map, sp.rangeStart());
      BalanceRange r = map.get(i);
      if (!Ring.strictlyInside(r.start(), r.end(), sp.at())) {
        throw new IllegalStateException("split point " + Ring.hex(sp.at())
            + " is not strictly inside " + r.rangeText());
      }
      if (r.moving()) {
        throw new IllegalStateException("range " + r.rangeText() + " is moving");
      }
      double leftShare = Ring.width(r.start(), sp.at()) / Ring.width(r.start(), r.end());
      double leftBacklog = r.backlog() * leftShare;
      map.set(i, r.withBounds(r.start(), sp.at(), leftBacklog));
      map.add(i + 1, r.withBounds(sp.at(), r.end(), Math.max(0.0, r.backlog() - leftBacklog)));
    } else if (a instanceof PlanAction.Merge mg) {
      int i = indexOf(map, mg.leftStart());
      BalanceRange left = map.get(i);
      if (i + 1 >= map.size() || map.get(i + 1).start() != mg.rightStart()
          || left.end() != mg.rightStart()) {
        throw new IllegalStateException("no range starts at " + Ring.hex(mg.rightStart())
            + " right after " + left.rangeText());
      }
      BalanceRange right = map.get(i + 1);
      if (!left.owner().equals(right.owner())) {
        throw new IllegalStateException("ranges " + left.rangeText() + " and "
            + right.rangeText() + " have different owners");
      }
      if (left.moving() || right.moving()) {
        throw new IllegalStateException("a range to merge is moving");
      }
      map.set(i, new BalanceRange(left.start(), right.end(), left.owner(),
          left.pinned() || right.pinned(), false,
          Math.max(left.lastMovedAtMillis(), right.lastMovedAtMillis()),
          left.backlog() + right.backlog()));
      map.remove(i + 1);
    } else {
      throw new IllegalStateException("unknown action " + a);
    }
  }

  private static int indexOf(List<BalanceRange> map, long start) {
    int lo = 0;
    int hi = map.size() - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      int c = Long.compareUnsigned(map.get(mid).start(), start);
      if (c == 0) {
        return mid;
      } else if (c < 0) {
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    throw new IllegalStateException("no range starts at " + Ring.hex(start));
  }
}
