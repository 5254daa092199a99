package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The router's barrier (C4): same entry while unsettled; ordered resends after the refusal. */
class SendBarrierTest {
  private static final long R = 0;
  private static final SendBarrier.Entry AT_S = new SendBarrier.Entry("S", 1, null);
  private static final SendBarrier.Entry SWITCHED =
      new SendBarrier.Entry("S", 1, new Handover("T", HandoverPhase.SWITCH));
  private static final SendBarrier.Entry ABORTING =
      new SendBarrier.Entry("S", 1, new Handover("T", HandoverPhase.ABORT_SWITCH));

  @Test
  void destinationFollowsTheSwitch() {
    assertEquals("S", AT_S.destination());
    assertEquals("T", SWITCHED.destination());
    assertEquals("S", ABORTING.destination(), "an abort sends the range back to the source");
  }

  @Test
  void sendsUnderOneEntryOnlyWhileUnsettled() {
    SendBarrier<String> b = new SendBarrier<>();
    assertTrue(b.maySend(R, AT_S));
    b.sent(R, 1, AT_S);
    assertTrue(b.maySend(R, AT_S), "pipelining under the same entry");
    assertFalse(b.maySend(R, SWITCHED), "not under a new entry while m1 is unsettled");
    // The S -> T -> S round trip of an abort: same owner, different entry.
    assertFalse(b.maySend(R, ABORTING));
    b.acked(R, 1);
    assertTrue(b.maySend(R, SWITCHED));
    assertTrue(b.idle());
  }

  @Test
  void refusedMessagesGoFirstInOrderOnceSettledAndRefreshed() {
    SendBarrier<String> b = new SendBarrier<>();
    b.sent(R, 1, AT_S);
    b.sent(R, 2, AT_S);
    b.sent(R, 3, AT_S);
    b.refused(R, 2, "m2", 10);
    b.refused(R, 1, "m1", 9);
    assertFalse(b.maySend(R, SWITCHED), "nothing new before the resends");
    assertEquals(List.of(), b.takeResends(R, 20), "m3 is still unsettled");
    b.refused(R, 3, "m3", 10);
    assertEquals(List.of(), b.takeResends(R, 9), "the router must reach the refusal's version");
    assertEquals(10, b.refusalVersion(R));
    assertEquals(List.of("m1", "m2", "m3"), b.takeResends(R, 10));
    assertTrue(b.maySend(R, SWITCHED));
    assertFalse(b.idle() && b.unsettled(R) > 0);
  }

  @Test
  void rangesAreIndependent() {
    SendBarrier<String> b = new SendBarrier<>();
    b.sent(R, 1, AT_S);
    assertTrue(b.maySend(42, SWITCHED));
    assertEquals(1, b.unsettled(R));
    assertEquals(0, b.unsettled(42));
  }
}
