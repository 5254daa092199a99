package io.plb.core.map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.plb.core.keyspace.Ring;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;

/** Builders and independent checkers shared by the map and command tests. */
public final class MapFixtures {
  public static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);

  private MapFixtures() {}

  public static QueueServerInfo server(String id) {
    return new QueueServerInfo(id, id + ".example:7000", 1.0, ServerState.ACTIVE);
  }

  public static QueueServerInfo server(String id, ServerState state) {
    return new QueueServerInfo(id, id + ".example:7000", 1.0, state);
  }

  public static RangeEntry range(long start, long end, String owner) {
    return new RangeEntry(start, end, owner, 0L, null, false);
  }

  public static RangeEntry range(long start, long end, String owner, long epoch) {
    return new RangeEntry(start, end, owner, epoch, null, false);
  }

  /** A delta that only changes ranges. */
  public static MapDelta rangeDelta(
      long version, long prev, List<Long> removed, List<RangeEntry> upserted) {
    return new MapDelta(version, prev, removed, upserted, List.of(), List.of(), "test");
  }

  /** A delta that only changes servers. */
  public static MapDelta serverDelta(
      long version, long prev, List<String> removed, List<QueueServerInfo> upserted) {
    return new MapDelta(version, prev, List.of(), List.of(), removed, upserted, "test");
  }

  /** An equal but separately built copy of {@code image}, to compare against later. */
  public static ClusterImage copyOf(ClusterImage image) {
    return ClusterImage.of(
        image.version(), new ArrayList<>(image.ranges()), new ArrayList<>(image.servers().values()));
  }

  /**
   * Checks, independently of {@link ClusterImage#checkInvariants()}, that the ranges cover the
   * ring exactly once: walking them in order with BigInteger arithmetic, each is non-empty, starts
   * where the previous ended, the first starts at 0 and the widths sum to 2^64. Also that every
   * owner is a registered server.
   */
  public static void assertCoversRing(ClusterImage image, String context) {
    BigInteger expectedStart = BigInteger.ZERO;
    BigInteger sum = BigInteger.ZERO;
    int n = image.rangeCount();
    assertTrue(n > 0, context + ": no ranges");
    assertEquals(n, image.ranges().size(), context);
    for (int i = 0; i < n; i++) {
      RangeEntry r = image.range(i);
      assertEquals(r, image.ranges().get(i), context);
      BigInteger start = Ring.unsigned(r.start());
      BigInteger end = r.end() == Ring.RING_END ? TWO_64 : Ring.unsigned(r.end());
      if (!start.equals(expectedStart)) {
        fail(context + ": range " + i + " " + r.rangeText() + " starts at " + start
            + ", expected " + expectedStart + (start.compareTo(expectedStart) > 0 ? " (gap)" : " (overlap)"));
      }
      if (end.compareTo(start) <= 0) {
        fail(context + ": range " + i + " " + r.rangeText() + " is empty or reversed");
      }
      if (end.equals(TWO_64) && i != n - 1) {
        fail(context + ": range " + i + " " + r.rangeText() + " ends the ring but is not last");
      }
      if (r.isAssigned()) {
        assertTrue(image.servers().containsKey(r.owner()),
            context + ": range " + r.rangeText() + " owned by unregistered " + r.owner());
      }
      if (r.handover() != null) {
        assertTrue(image.servers().containsKey(r.handover().target()),
            context + ": range " + r.rangeText() + " moves to unregistered "
                + r.handover().target());
      }
      sum = sum.add(end.subtract(start));
      expectedStart = end;
    }
    assertEquals(TWO_64, expectedStart, context + ": the last range does not end at 2^64");
    assertEquals(TWO_64, sum, context + ": range widths do not sum to 2^64");
  }
}
