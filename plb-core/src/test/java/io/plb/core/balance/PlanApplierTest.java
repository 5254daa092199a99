package io.plb.core.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import io.plb.core.map.ServerState;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The helper that applies a plan refuses every action the shard map would refuse. */
class PlanApplierTest {
  private static final Cause CAUSE = new Cause(Cause.Reason.REBALANCE, Criterion.MAX_MEAN, 1, "a",
      1, 1, "b", 0, 0, 0, 0, "test");
  private static final List<BalanceServer> SERVERS = List.of(
      new BalanceServer("a", 1, ServerState.ACTIVE), new BalanceServer("b", 1, ServerState.ACTIVE),
      new BalanceServer("d", 1, ServerState.DRAINING));
  private static final List<BalanceRange> MAP = List.of(BalanceRange.of(0, 100, "a"),
      new BalanceRange(100, 200, "a", true, false, BalanceRange.NEVER, 0),
      new BalanceRange(200, 300, "a", false, true, BalanceRange.NEVER, 0),
      new BalanceRange(300, Ring.RING_END, "b", false, false, BalanceRange.NEVER, 40));

  private static Plan plan(PlanAction... actions) {
    return new Plan(List.of(actions), Criterion.MAX_MEAN, 1, 1, true, false, new TreeMap<>(),
        new TreeMap<>(), List.of());
  }

  private static void refused(String text, PlanAction a) {
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> PlanApplier.apply(MAP, SERVERS, plan(a), 5));
    assertTrue(e.getMessage().contains(text), e.getMessage());
  }

  @Test
  void appliesInOrder() {
    List<BalanceRange> out = PlanApplier.apply(MAP, SERVERS, plan(
        new PlanAction.Split(300, 1000, CAUSE),
        new PlanAction.Move(300, 1000, "b", "a", CAUSE),
        new PlanAction.Move(0, 100, "a", "b", CAUSE)), 5);
    assertEquals(5, out.size());
    assertEquals("b", out.get(0).owner());
    assertEquals(5, out.get(0).lastMovedAtMillis());
    assertEquals("a", out.get(3).owner());
    assertEquals(40, out.get(3).backlog() + out.get(4).backlog(), 1e-9);
    List<BalanceRange> merged = PlanApplier.apply(out, SERVERS,
        plan(new PlanAction.Split(1000, 2000, CAUSE), new PlanAction.Merge(1000, 2000, CAUSE)), 6);
    assertEquals(out, merged);
  }

  @Test
  void refusesWhatTheMapWouldRefuse() {
    refused("pinned", new PlanAction.Move(100, 200, "a", "b", CAUSE));
    refused("already moving", new PlanAction.Move(200, 300, "a", "b", CAUSE));
    refused("DRAINING", new PlanAction.Move(0, 100, "a", "d", CAUSE));
    refused("not a known server", new PlanAction.Move(0, 100, "a", "x", CAUSE));
    refused("owned by", new PlanAction.Move(0, 100, "b", "a", CAUSE));
    refused("no range starts", new PlanAction.Move(5, 100, "a", "b", CAUSE));
    refused("strictly inside", new PlanAction.Split(0, 0, CAUSE));
    refused("strictly inside", new PlanAction.Split(0, 100, CAUSE));
    refused("different owners", new PlanAction.Merge(200, 300, CAUSE));
    refused("moving", new PlanAction.Merge(100, 200, CAUSE));
    refused("right after", new PlanAction.Merge(0, 200, CAUSE));
  }

  @Test
  void checkMapFindsGapsOverlapsAndUnknownOwners() {
    assertThrows(IllegalArgumentException.class, () -> PlanApplier.checkMap(
        List.of(BalanceRange.of(0, 10, "a"), BalanceRange.of(11, 0, "a")), SERVERS));
    assertThrows(IllegalArgumentException.class, () -> PlanApplier.checkMap(
        List.of(BalanceRange.of(0, 10, "a"), BalanceRange.of(5, 0, "a")), SERVERS));
    assertThrows(IllegalArgumentException.class, () -> PlanApplier.checkMap(
        List.of(BalanceRange.of(0, 10, "a")), SERVERS));
    assertThrows(IllegalArgumentException.class, () -> PlanApplier.checkMap(
        List.of(BalanceRange.of(0, 0, "zz")), SERVERS));
    PlanApplier.checkMap(List.of(BalanceRange.of(0, 0, "")), SERVERS);
  }
}
