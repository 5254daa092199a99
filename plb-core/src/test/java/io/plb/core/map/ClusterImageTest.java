package io.plb.core.map;

import static io.plb.core.map.MapFixtures.assertCoversRing;
import static io.plb.core.map.MapFixtures.copyOf;
import static io.plb.core.map.MapFixtures.range;
import static io.plb.core.map.MapFixtures.rangeDelta;
import static io.plb.core.map.MapFixtures.server;
import static io.plb.core.map.MapFixtures.serverDelta;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import java.util.List;
import org.junit.jupiter.api.Test;

class ClusterImageTest {
  private static final long MID = Long.MIN_VALUE; // 2^63
  private static final long TOP = -1L; // 2^64 - 1
  private static final long Q3 = 0xC000_0000_0000_0000L; // 3 * 2^62

  /** [0, 100) a · [100, 2^63) b · [2^63, 3*2^62) a · [3*2^62, 2^64) unassigned; version 10. */
  private static ClusterImage fourRanges() {
    return ClusterImage.of(
        10L,
        List.of(range(0L, 100L, "a", 1), range(100L, MID, "b", 2), range(MID, Q3, "a", 3),
            range(Q3, Ring.RING_END, "")),
        List.of(server("a"), server("b"), server("c")));
  }

  // ---- EMPTY ----

  @Test
  void emptyHasOneUnassignedRangeOverTheWholeRing() {
    ClusterImage e = ClusterImage.EMPTY;
    assertEquals(0L, e.version());
    assertEquals(1, e.rangeCount());
    RangeEntry r = e.range(0);
    assertEquals(0L, r.start());
    assertEquals(Ring.RING_END, r.end());
    assertEquals("", r.owner());
    assertFalse(r.isAssigned());
    assertEquals(0L, r.epoch());
    assertNull(r.handover());
    assertFalse(r.pinned());
    assertEquals(RangeEntry.wholeRing(), r);
    assertEquals(List.of(RangeEntry.wholeRing()), e.ranges());
    assertTrue(e.servers().isEmpty());
    assertDoesNotThrow(e::checkInvariants);
    assertCoversRing(e, "EMPTY");
    for (long h : new long[] {0L, 1L, Long.MAX_VALUE, MID, TOP}) {
      assertSame(r, e.rangeFor(h), Ring.hex(h));
      assertEquals(0, e.indexOfHash(h), Ring.hex(h));
    }
    assertEquals(0, e.indexOfStart(0L));
    assertEquals(-1, e.indexOfStart(1L));
    assertEquals(-1, e.indexOfStart(TOP));
    assertEquals(r.rangeText(), "[0x0000000000000000, 0x10000000000000000)");
  }

  @Test
  void leastLoadedActiveSkipsTheExceptedAndInactiveServersAndBreaksTiesById() {
    ClusterImage img = fourRanges(); // a owns 2 ranges, b 1, c none
    assertEquals("c", img.leastLoadedActive("a"));
    assertEquals("b", img.leastLoadedActive("c"));
    ClusterImage cDown = ClusterImage.of(10L, img.ranges(),
        List.of(server("a"), server("b"), server("c", ServerState.DOWN),
            server("d", ServerState.DRAINING)));
    assertEquals("b", cDown.leastLoadedActive("a"));
    assertEquals("a", cDown.leastLoadedActive("b"));
    ClusterImage tie = ClusterImage.of(10L, List.of(range(0L, Ring.RING_END, "x")),
        List.of(server("x"), server("m"), server("k")));
    assertEquals("k", tie.leastLoadedActive("x"));
    assertNull(ClusterImage.of(10L, List.of(range(0L, Ring.RING_END, "a")), List.of(server("a")))
        .leastLoadedActive("a"));
  }

  // ---- lookups ----

  @Test
  void ofSortsRangesByUnsignedStart() {
    ClusterImage img =
        ClusterImage.of(
            3L,
            List.of(range(Q3, Ring.RING_END, ""), range(MID, Q3, ""), range(0L, 100L, ""),
                range(100L, MID, "")),
            List.of());
    assertEquals(List.of(0L, 100L, MID, Q3), img.ranges().stream().map(RangeEntry::start).toList());
    assertCoversRing(img, "sorted");
  }

  @Test
  void rangeForAndIndexOfHashAtBoundaries() {
    ClusterImage img = fourRanges();
    assertEquals(0, img.indexOfHash(0L));
    assertEquals(0, img.indexOfHash(99L));
    assertEquals(1, img.indexOfHash(100L));
    assertEquals(1, img.indexOfHash(Long.MAX_VALUE));
    assertEquals(2, img.indexOfHash(MID));
    assertEquals(2, img.indexOfHash(Q3 - 1));
    assertEquals(3, img.indexOfHash(Q3));
    assertEquals(3, img.indexOfHash(TOP));
    for (int i = 0; i < img.rangeCount(); i++) {
      RangeEntry r = img.range(i);
      assertSame(r, img.rangeFor(r.start()));
      assertTrue(r.contains(r.start()));
      long last = r.end() - 1; // end 0 - 1 = 2^64-1
      assertSame(r, img.rangeFor(last), r.rangeText());
      assertTrue(r.contains(last));
    }
  }

  @Test
  void indexOfStartFindsOnlyExactStarts() {
    ClusterImage img = fourRanges();
    assertEquals(0, img.indexOfStart(0L));
    assertEquals(1, img.indexOfStart(100L));
    assertEquals(2, img.indexOfStart(MID));
    assertEquals(3, img.indexOfStart(Q3));
    assertEquals(-1, img.indexOfStart(1L));
    assertEquals(-1, img.indexOfStart(99L));
    assertEquals(-1, img.indexOfStart(101L));
    assertEquals(-1, img.indexOfStart(MID + 1));
    assertEquals(-1, img.indexOfStart(MID - 1));
    assertEquals(-1, img.indexOfStart(TOP));
  }

  @Test
  void rangesOfListsOwnedAndIncomingRanges() {
    RangeEntry moving = new RangeEntry(100L, MID, "b", 2, new Handover("c", HandoverPhase.PREPARE),
        false);
    ClusterImage img =
        ClusterImage.of(
            5L,
            List.of(range(0L, 100L, "a"), moving, range(MID, Ring.RING_END, "a")),
            List.of(server("a"), server("b"), server("c")));
    assertEquals(List.of(img.range(0), img.range(2)), img.rangesOf("a"));
    assertEquals(List.of(moving), img.rangesOf("b"));
    assertEquals(List.of(moving), img.rangesOf("c"));
    assertEquals(List.of(), img.rangesOf("d"));
  }

  @Test
  void viewsAreUnmodifiable() {
    ClusterImage img = fourRanges();
    assertThrows(UnsupportedOperationException.class, () -> img.ranges().set(0, img.range(1)));
    assertThrows(UnsupportedOperationException.class, () -> img.servers().remove("a"));
    assertThrows(UnsupportedOperationException.class, () -> img.servers().put("z", server("z")));
  }

  @Test
  void equalityIsByContent() {
    ClusterImage a = fourRanges();
    ClusterImage b = fourRanges();
    assertEquals(a, b);
    assertEquals(a.hashCode(), b.hashCode());
    assertEquals(a, copyOf(a));
    assertNotEquals(a, ClusterImage.of(11L, a.ranges(), a.servers().values()));
    assertNotEquals(
        a, ClusterImage.of(10L, a.ranges(), List.of(server("a"), server("b"))));
  }

  // ---- apply ----

  @Test
  void applySplitsAndLeavesTheOldImageAlone() {
    ClusterImage before = fourRanges();
    ClusterImage snapshot = copyOf(before);
    ClusterImage after =
        before.apply(
            rangeDelta(12L, 10L, List.of(MID), List.of(range(MID, MID + 5, "a", 3),
                range(MID + 5, Q3, "a", 3))));
    assertEquals(12L, after.version());
    assertEquals(5, after.rangeCount());
    assertEquals(range(MID, MID + 5, "a", 3), after.rangeFor(MID + 4));
    assertEquals(range(MID + 5, Q3, "a", 3), after.rangeFor(MID + 5));
    assertCoversRing(after, "after split");
    assertEquals(snapshot, before);
  }

  @Test
  void applyRegistersAndRemovesServers() {
    ClusterImage img = ClusterImage.EMPTY.apply(serverDelta(3L, 0L, List.of(), List.of(server("x"))));
    assertEquals(3L, img.version());
    assertEquals(server("x"), img.server("x"));
    img = img.apply(serverDelta(7L, 3L, List.of("x"), List.of()));
    assertNull(img.server("x"));
    assertEquals(7L, img.version());
  }

  @Test
  void applyOfAnEmptyDeltaOnlyAdvancesTheVersion() {
    ClusterImage img = fourRanges();
    ClusterImage next = img.apply(rangeDelta(11L, 10L, List.of(), List.of()));
    assertEquals(11L, next.version());
    assertEquals(img.ranges(), next.ranges());
    assertEquals(img.servers(), next.servers());
  }

  @Test
  void applyRejectsADeltaThatDoesNotFollowThisVersion() {
    ClusterImage img = fourRanges();
    ClusterImage snapshot = copyOf(img);
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(12L, 9L, List.of(), List.of())));
    assertTrue(e.getMessage().contains("follows version 9"), e.getMessage());
    assertTrue(e.getMessage().contains("10"), e.getMessage());
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(12L, 11L, List.of(), List.of())));
    assertEquals(snapshot, img);
  }

  @Test
  void applyRejectsAVersionThatDoesNotIncrease() {
    ClusterImage img = fourRanges();
    ClusterImage snapshot = copyOf(img);
    IllegalStateException same =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(10L, 10L, List.of(), List.of())));
    assertTrue(same.getMessage().contains("does not exceed"), same.getMessage());
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(9L, 10L, List.of(), List.of())));
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(Long.MIN_VALUE, 10L, List.of(), List.of())));
    assertEquals(snapshot, img);
  }

  @Test
  void applyRejectsRemovalOfAnUnknownRange() {
    ClusterImage img = fourRanges();
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(11L, 10L, List.of(5L), List.of(range(0L, 100L, "a")))));
    assertTrue(e.getMessage().contains(Ring.hex(5L)), e.getMessage());
  }

  @Test
  void applyRejectsAGapInTheMiddle() {
    ClusterImage img = fourRanges();
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(11L, 10L, List.of(100L), List.of(range(100L, 200L, "b")))));
    assertTrue(e.getMessage().contains("gap or overlap"), e.getMessage());
    // the range no longer exists at all: [0,100) is followed by [2^63, ...)
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(11L, 10L, List.of(100L), List.of())));
    assertEquals(fourRanges(), img);
  }

  @Test
  void applyRejectsAGapAtTheEndOfTheRing() {
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> ClusterImage.EMPTY.apply(
                rangeDelta(1L, 0L, List.of(0L), List.of(range(0L, TOP, "")))));
    assertTrue(e.getMessage().contains("0x10000000000000000"), e.getMessage());
  }

  @Test
  void applyRejectsAGapAtTheStartOfTheRing() {
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.EMPTY.apply(
            rangeDelta(1L, 0L, List.of(0L), List.of(range(1L, Ring.RING_END, "")))));
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.EMPTY.apply(rangeDelta(1L, 0L, List.of(0L), List.of())));
  }

  @Test
  void applyRejectsAnOverlap() {
    ClusterImage img = fourRanges();
    // [100, 2^63) replaced by a longer range that runs into [2^63, ...)
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(11L, 10L, List.of(100L), List.of(range(100L, MID + 1, "b")))));
    // a new range inside [100, 2^63) without removing it
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(11L, 10L, List.of(), List.of(range(200L, MID, "b")))));
    // a range inside the last one
    assertThrows(IllegalStateException.class,
        () -> img.apply(rangeDelta(11L, 10L, List.of(), List.of(range(TOP, Ring.RING_END, "")))));
  }

  @Test
  void applyRejectsAnUnregisteredOwner() {
    ClusterImage img = fourRanges();
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(11L, 10L, List.of(), List.of(range(0L, 100L, "ghost")))));
    assertTrue(e.getMessage().contains("unregistered server ghost"), e.getMessage());
    // removing a server that still owns ranges
    IllegalStateException e2 =
        assertThrows(IllegalStateException.class,
            () -> img.apply(serverDelta(11L, 10L, List.of("b"), List.of())));
    assertTrue(e2.getMessage().contains("unregistered server b"), e2.getMessage());
  }

  @Test
  void applyRejectsAnUnregisteredHandoverTarget() {
    ClusterImage img = fourRanges();
    RangeEntry moving =
        new RangeEntry(0L, 100L, "a", 1, new Handover("ghost", HandoverPhase.PREPARE), false);
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> img.apply(rangeDelta(11L, 10L, List.of(), List.of(moving))));
    assertTrue(e.getMessage().contains("ghost"), e.getMessage());
  }

  // ---- of / checkInvariants ----

  @Test
  void ofRejectsNoRanges() {
    assertThrows(IllegalStateException.class, () -> ClusterImage.of(1L, List.of(), List.of()));
  }

  @Test
  void ofRejectsAGap() {
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> ClusterImage.of(1L, List.of(range(0L, 10L, ""), range(11L, Ring.RING_END, "")),
                List.of()));
    assertTrue(e.getMessage().contains("gap or overlap"), e.getMessage());
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.of(1L, List.of(range(5L, Ring.RING_END, "")), List.of()));
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.of(1L, List.of(range(0L, MID, "")), List.of()));
  }

  @Test
  void ofRejectsAnOverlap() {
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.of(1L,
            List.of(range(0L, 20L, ""), range(10L, Ring.RING_END, "")), List.of()));
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.of(1L,
            List.of(range(0L, 10L, ""), range(10L, Ring.RING_END, ""), range(10L, 20L, "")),
            List.of()));
  }

  /**
   * A range ending at 2^64 (stored as 0) followed by another range starting at 0 overlaps it;
   * the end 2^64 must not be taken for the position 0.
   */
  @Test
  void ofRejectsAnOverlapWithARangeThatEndsTheRingButIsNotLast() {
    IllegalStateException twice =
        assertThrows(IllegalStateException.class,
            () -> ClusterImage.of(1L, List.of(RangeEntry.wholeRing(), RangeEntry.wholeRing()),
                List.of()),
            "two whole-ring ranges overlap");
    assertTrue(twice.getMessage().contains("overlap"), twice.getMessage());
    assertThrows(IllegalStateException.class,
        () -> ClusterImage.of(1L,
            List.of(RangeEntry.wholeRing(), range(0L, MID, ""), range(MID, Ring.RING_END, "")),
            List.of()),
        "[0, 2^64) overlaps [0, 2^63) and [2^63, 2^64)");
  }

  @Test
  void ofRejectsAnUnregisteredOwner() {
    IllegalStateException e =
        assertThrows(IllegalStateException.class,
            () -> ClusterImage.of(1L, List.of(range(0L, Ring.RING_END, "a")), List.of(server("b"))));
    assertTrue(e.getMessage().contains("unregistered server a"), e.getMessage());
  }

  // ---- RangeEntry ----

  @Test
  void rangeEntryRejectsEmptyAndReversedRanges() {
    assertThrows(IllegalArgumentException.class, () -> range(5L, 5L, ""));
    assertThrows(IllegalArgumentException.class, () -> range(5L, 4L, ""));
    assertThrows(IllegalArgumentException.class, () -> range(MID, 1L, ""));
    assertThrows(IllegalArgumentException.class, () -> range(TOP, MID, ""));
    assertThrows(NullPointerException.class, () -> new RangeEntry(0L, 1L, null, 0, null, false));
    assertDoesNotThrow(() -> range(TOP, Ring.RING_END, ""));
    assertDoesNotThrow(() -> range(1L, MID, ""));
    assertDoesNotThrow(() -> range(Long.MAX_VALUE, MID, ""));
  }

  @Test
  void rangeEntryWithers() {
    RangeEntry r = new RangeEntry(10L, 20L, "a", 4, null, true);
    assertEquals(new RangeEntry(10L, 15L, "a", 4, null, true), r.withBounds(10L, 15L));
    assertEquals(new RangeEntry(10L, 20L, "b", 5, null, true), r.withOwner("b", 5));
    assertEquals(new RangeEntry(10L, 20L, "a", 4, null, false), r.withPinned(false));
    assertTrue(r.contains(10L));
    assertFalse(r.contains(20L));
    assertEquals("[0x000000000000000a, 0x0000000000000014)", r.rangeText());
  }
}
