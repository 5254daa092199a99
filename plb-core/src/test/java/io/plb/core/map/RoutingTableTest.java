package io.plb.core.map;

import static io.plb.core.map.MapFixtures.range;
import static io.plb.core.map.MapFixtures.server;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class RoutingTableTest {
  private static final long MID = Long.MIN_VALUE; // 2^63
  private static final long TOP = -1L; // 2^64 - 1

  /**
   * The index of the range holding {@code h}, from a reference built apart from the table: a
   * TreeMap of starts in unsigned order.
   */
  private static int referenceIndex(TreeMap<Long, Integer> byStart, long h) {
    return byStart.floorEntry(h).getValue();
  }

  private static TreeMap<Long, Integer> byStart(ClusterImage image) {
    TreeMap<Long, Integer> m = new TreeMap<>(Long::compareUnsigned);
    for (int i = 0; i < image.rangeCount(); i++) {
      m.put(image.range(i).start(), i);
    }
    return m;
  }

  private static void assertRoutes(ClusterImage image, TreeMap<Long, Integer> byStart,
      RoutingTable table, long h, String ctx) {
    int i = referenceIndex(byStart, h);
    RangeEntry r = image.range(i);
    RoutingTable.Route route = table.route(h);
    String where = ctx + " hash " + Ring.hex(h) + " expected " + r.rangeText();
    assertEquals(r.start(), route.start(), where);
    assertEquals(r.end(), route.end(), where);
    assertEquals(r.owner(), route.owner(), where);
    assertEquals(r.epoch(), route.epoch(), where);
    assertTrue(Ring.contains(route.start(), route.end(), h), where);
  }

  /** Every start, start-1, end-1, the ring's edges, the index's slice edges and random hashes. */
  private static void assertRoutesEverywhere(ClusterImage image, long seed) {
    RoutingTable table = RoutingTable.of(image);
    TreeMap<Long, Integer> byStart = byStart(image);
    assertEquals(image.rangeCount(), table.size());
    assertEquals(image.version(), table.version());
    String ctx = "seed " + seed + " ranges " + image.rangeCount();
    for (long h : new long[] {0L, 1L, TOP, TOP - 1, MID, MID - 1, MID + 1, Long.MAX_VALUE}) {
      assertRoutes(image, byStart, table, h, ctx);
    }
    for (RangeEntry r : image.ranges()) {
      assertRoutes(image, byStart, table, r.start(), ctx);
      assertRoutes(image, byStart, table, r.start() - 1, ctx);
      assertRoutes(image, byStart, table, r.start() + 1, ctx);
      assertRoutes(image, byStart, table, r.end() - 1, ctx);
    }
    int bits = RoutingTable.indexBits(image.rangeCount());
    for (long slice = 0; slice < 1L << bits; slice++) {
      long edge = slice << (64 - bits);
      assertRoutes(image, byStart, table, edge, ctx);
      assertRoutes(image, byStart, table, edge - 1, ctx);
    }
    Random rnd = new Random(seed);
    for (int i = 0; i < 2000; i++) {
      assertRoutes(image, byStart, table, rnd.nextLong(), ctx);
    }
  }

  /** An image whose ranges start at 0 and at each of {@code starts}, owners cycling a, b, c. */
  private static ClusterImage imageWithStarts(TreeSet<Long> starts) {
    List<Long> sorted = new ArrayList<>(starts);
    sorted.sort(Long::compareUnsigned);
    if (sorted.isEmpty() || sorted.get(0) != 0L) {
      sorted.add(0, 0L);
    }
    List<RangeEntry> ranges = new ArrayList<>();
    String[] owners = {"a", "b", "c", ""};
    for (int i = 0; i < sorted.size(); i++) {
      long end = i + 1 < sorted.size() ? sorted.get(i + 1) : Ring.RING_END;
      ranges.add(range(sorted.get(i), end, owners[i % owners.length], i));
    }
    return ClusterImage.of(7L, ranges, List.of(server("a"), server("b"), server("c")));
  }

  @Test
  void oneRange() {
    RoutingTable t = RoutingTable.of(ClusterImage.EMPTY);
    assertEquals(1, t.size());
    assertEquals(0L, t.version());
    for (long h : new long[] {0L, 1L, Long.MAX_VALUE, MID, TOP}) {
      RoutingTable.Route r = t.route(h);
      assertEquals(0L, r.start());
      assertEquals(Ring.RING_END, r.end());
      assertEquals("", r.owner());
      assertEquals("", r.address());
      assertFalse(r.isAssigned());
      assertNull(r.handover());
    }
    assertSame(t.route(0L), t.route(TOP));
  }

  @Test
  void twoRangesSplitAtTwoToThe63() {
    ClusterImage img = ClusterImage.of(3L,
        List.of(range(0L, MID, "a", 1), range(MID, Ring.RING_END, "b", 2)),
        List.of(server("a"), server("b")));
    RoutingTable t = RoutingTable.of(img);
    assertEquals(3L, t.version());
    assertEquals("a", t.route(0L).owner());
    assertEquals("a", t.route(Long.MAX_VALUE).owner()); // 2^63 - 1
    assertEquals("b", t.route(MID).owner()); // 2^63: negative as a signed long
    assertEquals("b", t.route(MID + 1).owner());
    assertEquals("b", t.route(TOP).owner());
    assertEquals("a.example:7000", t.route(5L).address());
    assertEquals("b.example:7000", t.route(TOP).address());
    assertEquals(2L, t.route(TOP).epoch());
    assertTrue(t.route(TOP).isAssigned());
    assertRoutesEverywhere(img, 1);
  }

  @Test
  void twoRangesWithTheSecondHighAbove() {
    for (long split : new long[] {1L, MID + 1, TOP - 1, TOP, 0xF000_0000_0000_0000L}) {
      ClusterImage img = ClusterImage.of(1L,
          List.of(range(0L, split, "a"), range(split, Ring.RING_END, "b")),
          List.of(server("a"), server("b")));
      RoutingTable t = RoutingTable.of(img);
      assertEquals("a", t.route(split - 1).owner(), Ring.hex(split));
      assertEquals("b", t.route(split).owner(), Ring.hex(split));
      assertEquals("b", t.route(TOP).owner(), Ring.hex(split));
      assertEquals("a", t.route(0L).owner(), Ring.hex(split));
      assertRoutesEverywhere(img, split);
    }
  }

  @Test
  void rangesOnlyAboveTwoToThe63() {
    // [0, 2^63+10) then many narrow ranges at the very top of the ring
    TreeSet<Long> starts = new TreeSet<>(Long::compareUnsigned);
    for (int i = 0; i < 10; i++) {
      starts.add(MID + 10 + i);
      starts.add(TOP - i);
    }
    ClusterImage img = imageWithStarts(starts);
    assertEquals(21, img.rangeCount());
    RoutingTable t = RoutingTable.of(img);
    assertEquals(TOP, t.route(TOP).start());
    assertEquals(Ring.RING_END, t.route(TOP).end());
    assertEquals(TOP - 1, t.route(TOP - 1).start());
    assertEquals(0L, t.route(MID + 9).start());
    assertEquals(MID + 19, t.route(TOP - 10).start());
    assertRoutesEverywhere(img, 2);
  }

  @Test
  void thousandRangesWithManyUnsignedStartsAboveTwoToThe63() {
    for (long seed = 1; seed <= 5; seed++) {
      Random rnd = new Random(seed);
      TreeSet<Long> starts = new TreeSet<>(Long::compareUnsigned);
      while (starts.size() < 999) {
        long s;
        switch (rnd.nextInt(4)) {
          case 0 -> s = rnd.nextLong() | MID; // above 2^63
          case 1 -> s = MID + rnd.nextInt(1000) - 500; // around 2^63
          case 2 -> s = TOP - rnd.nextInt(1000); // at the top
          default -> s = rnd.nextLong();
        }
        if (s != 0L) {
          starts.add(s);
        }
      }
      ClusterImage img = imageWithStarts(starts);
      assertEquals(1000, img.rangeCount());
      assertRoutesEverywhere(img, seed);
    }
  }

  @Test
  void everySizeFromOneToSixtyFour() {
    // the branch-light search has a different shape for each size; try them all
    Random rnd = new Random(99);
    for (int n = 1; n <= 64; n++) {
      TreeSet<Long> starts = new TreeSet<>(Long::compareUnsigned);
      while (starts.size() < n - 1) {
        long s = rnd.nextBoolean() ? rnd.nextLong() : TOP - rnd.nextInt(100);
        if (s != 0L) {
          starts.add(s);
        }
      }
      ClusterImage img = imageWithStarts(starts);
      assertEquals(n, img.rangeCount());
      assertRoutesEverywhere(img, 1000 + n);
    }
  }

  @Test
  void routeCarriesTheHandover() {
    Handover h = new Handover("b", HandoverPhase.PREPARE);
    ClusterImage img = ClusterImage.of(2L,
        List.of(new RangeEntry(0L, MID, "a", 4, h, false), range(MID, Ring.RING_END, "")),
        List.of(server("a"), server("b")));
    RoutingTable t = RoutingTable.of(img);
    assertEquals(h, t.route(1L).handover());
    assertEquals(4L, t.route(1L).epoch());
    assertNull(t.route(MID).handover());
    assertEquals("", t.route(MID).address());
  }

  @Test
  void routeRejectsNullOwnerOrAddress() {
    assertThrows(NullPointerException.class,
        () -> new RoutingTable.Route(0L, 0L, null, "", 0L, null));
    assertThrows(NullPointerException.class,
        () -> new RoutingTable.Route(0L, 0L, "", null, 0L, null));
  }

  @Test
  void theFirstLevelIndexIsSizedToTheMap() {
    assertEquals(1, RoutingTable.indexBits(1));
    assertEquals(1, RoutingTable.indexBits(8));
    assertEquals(8, RoutingTable.indexBits(1000));
    assertEquals(12, RoutingTable.indexBits(10_000));
    assertEquals(15, RoutingTable.indexBits(100_000));
    assertEquals(RoutingTable.MAX_INDEX_BITS, RoutingTable.indexBits(10_000_000));
  }

  @Test
  void hundredThousandEvenRanges() {
    long step = Long.divideUnsigned(-1L, 100_000) + 1;
    TreeSet<Long> starts = new TreeSet<>(Long::compareUnsigned);
    for (int i = 1; i < 100_000; i++) {
      starts.add(i * step);
    }
    ClusterImage img = imageWithStarts(starts);
    assertEquals(100_000, img.rangeCount());
    assertRoutesEverywhere(img, 7);
  }

  @Test
  void aCrowdedSliceWideRangesAndStartsOnSliceEdges() {
    // 4,096 ranges: 4,000 crowded into one tiny stretch (one slice of the index holds them
    // all), a few spanning many slices, and starts exactly on slice edges and one off them.
    int bits = RoutingTable.indexBits(4096);
    TreeSet<Long> starts = new TreeSet<>(Long::compareUnsigned);
    long crowd = 0x1234_5678_0000_0000L;
    for (int i = 1; i <= 4000; i++) {
      starts.add(crowd + i * 1000L);
    }
    Random rnd = new Random(5);
    while (starts.size() < 4095) {
      long edge = (long) rnd.nextInt(1 << bits) << (64 - bits);
      long s = edge + rnd.nextInt(3) - 1;
      if (s != 0L) {
        starts.add(s);
      }
    }
    ClusterImage img = imageWithStarts(starts);
    assertEquals(4096, img.rangeCount());
    assertRoutesEverywhere(img, 11);
  }
}
