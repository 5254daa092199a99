package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class OwnerLeaseTest {
  private static final long MS = 1_000_000L;

  @Test
  void noLeaseBeforeTheFirstGrant() {
    OwnerLease l = new OwnerLease();
    assertFalse(l.holds(0, 100));
    assertEquals(0, l.remainingNanos(0, 100));
  }

  @Test
  void aLeaseRunsFromTheSendTimeNotFromTheAnswer() {
    OwnerLease l = new OwnerLease();
    // Sent at 1000 ms, answered (and taken) at 1900 ms: it runs until 1000 + 2000 ms.
    l.granted(1000 * MS, 2000 * MS, 5);
    assertTrue(l.holds(1900 * MS, 5));
    assertEquals(1100 * MS, l.remainingNanos(1900 * MS, 5));
    assertTrue(l.holds(2999 * MS, 5));
    assertFalse(l.holds(3000 * MS, 5));
  }

  @Test
  void aGrantCountsOnlyOnceItsMapVersionIsApplied() {
    OwnerLease l = new OwnerLease();
    l.granted(0, 2000 * MS, 9);
    assertFalse(l.holds(10 * MS, 8), "a server behind the leader's map holds no lease");
    assertEquals(9, l.awaitedVersion());
    assertTrue(l.holds(20 * MS, 9));
    assertEquals(0, l.awaitedVersion());
  }

  @Test
  void aRenewalWaitingForItsVersionDoesNotInterruptTheLeaseThatRuns() {
    OwnerLease l = new OwnerLease();
    l.granted(0, 2000 * MS, 5);
    assertTrue(l.holds(0, 5));
    l.granted(1000 * MS, 2000 * MS, 7); // the map moved on; the watch has not brought 7 yet
    assertTrue(l.holds(1500 * MS, 6));
    assertFalse(l.holds(2000 * MS, 6), "the first grant ran out; the second waits for 7");
    assertTrue(l.holds(2100 * MS, 7), "version 7 applied: the second grant counts");
    assertFalse(l.holds(3000 * MS, 7));
  }

  @Test
  void underSteadyMapChangesEachRenewalCountsWhenItsOwnVersionArrives() {
    OwnerLease l = new OwnerLease();
    long applied = 0;
    for (int i = 0; i < 100; i++) {
      long now = i * 100 * MS;
      l.granted(now, 1000 * MS, i + 1); // every answer names a version one ahead of the watch
      assertTrue(i == 0 || l.holds(now, applied), "lease lost at renewal " + i);
      applied = i + 1; // the watch brings it a moment later
    }
  }

  @Test
  void anOlderGrantNeverShortensTheLease() {
    OwnerLease l = new OwnerLease();
    l.granted(1000 * MS, 2000 * MS, 3);
    l.granted(500 * MS, 2000 * MS, 3); // answered late, sent earlier
    assertTrue(l.holds(2900 * MS, 3));
  }

  @Test
  void waitingGrantsAreBounded() {
    OwnerLease l = new OwnerLease();
    for (int i = 0; i < 10 * OwnerLease.MAX_WAITING; i++) {
      l.granted(i * MS, 1000 * MS, 1000 + i);
    }
    assertFalse(l.holds(0, 999));
    assertTrue(l.holds(10 * OwnerLease.MAX_WAITING * MS, 1000 + 10 * OwnerLease.MAX_WAITING));
  }

  @Test
  void aLeaseMustHaveALength() {
    assertThrows(IllegalArgumentException.class, () -> new OwnerLease().granted(0, 0, 1));
  }
}
