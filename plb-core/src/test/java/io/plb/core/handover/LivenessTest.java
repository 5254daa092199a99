package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.ServerState;
import java.util.List;
import org.junit.jupiter.api.Test;

class LivenessTest {
  private static final long SUSPECT = 20;
  private static final long DOWN = 60;
  private static final long LEASE_AND_MARGIN = 32;

  private ClusterImage image = ClusterImage.EMPTY;
  private final Liveness liveness = new Liveness(SUSPECT, DOWN, LEASE_AND_MARGIN);

  private void apply(Command c) {
    image = image.apply(CommandProcessor.process(image, c, image.version() + 1));
  }

  /** Servers A and B, A owning the whole ring. */
  private void twoServers() {
    apply(new Command.RegisterServer("A", "a:1", 1.0));
    apply(new Command.RegisterServer("B", "b:1", 1.0));
    apply(new Command.AssignRange(0, "A", false));
  }

  private List<Command> commands(long now) {
    return liveness.check(image, now).proposals().stream().map(Liveness.Proposal::command)
        .toList();
  }

  @Test
  void aSilentServerIsSuspectThenDownAndHeardAgainActive() {
    twoServers();
    liveness.takeOver(0);
    liveness.heard("B", 0);
    assertEquals(List.of(), commands(0)); // both first seen now: silent from here
    liveness.heard("B", 25);
    assertEquals(List.of("A"), liveness.check(image, 25).suspected());
    assertEquals(List.of(new Command.UpdateServer("A", null, null, ServerState.DOWN)),
        commands(61));
    apply(new Command.UpdateServer("A", null, null, ServerState.DOWN));
    liveness.heard("A", 70);
    assertTrue(commands(75).contains(
        new Command.UpdateServer("A", null, null, ServerState.ACTIVE)));
  }

  @Test
  void aDownOwnersRangeIsForcedOnlyOnceItsLeaseHasRunOut() {
    twoServers();
    liveness.takeOver(0);
    liveness.heard("B", 0);
    liveness.granted("A", 5); // an operator declares A DOWN while its lease may run
    apply(new Command.UpdateServer("A", null, null, ServerState.DOWN));
    assertTrue(liveness.leaseMayRun("A", 5 + LEASE_AND_MARGIN));
    assertEquals(List.of(), commands(5 + LEASE_AND_MARGIN));
    assertFalse(liveness.leaseMayRun("A", 6 + LEASE_AND_MARGIN));
    liveness.heard("B", 6 + LEASE_AND_MARGIN);
    assertEquals(List.of(new Command.ForceHandover(0, 1, "B")), commands(6 + LEASE_AND_MARGIN));
  }

  @Test
  void aNewLeaderCountsAnEarlierLeadersGrantsFromItsTakeover() {
    twoServers();
    apply(new Command.UpdateServer("A", null, null, ServerState.DOWN));
    liveness.takeOver(100); // whatever was granted before, it was before 100
    liveness.heard("B", 100);
    assertTrue(liveness.leaseMayRun("A", 100 + LEASE_AND_MARGIN));
    assertEquals(List.of(), commands(100 + LEASE_AND_MARGIN));
    liveness.heard("B", 101 + LEASE_AND_MARGIN);
    assertEquals(List.of(new Command.ForceHandover(0, 1, "B")),
        commands(101 + LEASE_AND_MARGIN));
  }

  @Test
  void aPrepareOfADownSourceIsAbortedAndAMoveToAServerNotActiveToo() {
    twoServers();
    apply(new Command.StartHandover(0, 0, 1, "B", 2, 4));
    apply(new Command.UpdateServer("B", null, null, ServerState.DOWN));
    liveness.takeOver(0);
    liveness.heard("A", 0);
    assertEquals(List.of(new Command.AbortHandover(0, 2, "target B is DOWN")), commands(1));
    apply(new Command.UpdateServer("B", null, null, ServerState.ACTIVE));
    apply(new Command.UpdateServer("A", null, null, ServerState.DOWN));
    liveness.heard("B", 40);
    assertEquals(List.of(new Command.AbortHandover(0, 2, "source A is DOWN")), commands(40));
  }

  @Test
  void onlyAServerThatIsNeitherDownNorBeingDeclaredDownGetsALease() {
    twoServers();
    assertNull(Liveness.noLease(image, "A", false));
    assertNotNull(Liveness.noLease(image, "A", true));
    assertNotNull(Liveness.noLease(image, "ghost", false));
    apply(new Command.UpdateServer("A", null, null, ServerState.DOWN));
    assertNotNull(Liveness.noLease(image, "A", false));
  }
}
