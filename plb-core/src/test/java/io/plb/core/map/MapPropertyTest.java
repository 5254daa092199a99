package io.plb.core.map;

import static io.plb.core.map.MapFixtures.TWO_64;
import static io.plb.core.map.MapFixtures.assertCoversRing;
import static io.plb.core.map.MapFixtures.copyOf;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.plb.core.command.Command;
import io.plb.core.command.Command.AssignRange;
import io.plb.core.command.Command.MergeRanges;
import io.plb.core.command.Command.RegisterServer;
import io.plb.core.command.Command.RemoveServer;
import io.plb.core.command.Command.SetPinned;
import io.plb.core.command.Command.SplitRange;
import io.plb.core.command.Command.UpdateServer;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Seeded random command sequences run against {@link CommandProcessor} and
 * {@link ClusterImage#apply}, next to an independent reference model (BigInteger ranges, a plain
 * server map). After every step: the ring is covered exactly once, versions strictly increase, a
 * rejected command changed nothing and was rejected for a reason the model also sees, an accepted
 * one did what the model did, and routing agrees with the image.
 *
 * <p>Replay one seed with {@code mvn -o test -pl plb-core -Dtest=MapPropertyTest -Dplb.seed=N}.
 */
class MapPropertyTest {
  private static final int SEEDS = 200;
  private static final int STEPS = 300;
  private static final long TOP = -1L;
  private static final long MID = Long.MIN_VALUE;

  private static final String[] VALID_IDS = {"s0", "s1", "s2", "s3", "s4", "s5", "q.a-1_b"};
  private static final String[] INVALID_IDS = {"", "-s", "s 1", "s/1", "x".repeat(65)};
  private static final String[] VALID_ADDRESSES = {"h0:7000", "10.0.0.1:1", "[::1]:65535",
      "host.example:443"};
  private static final String[] INVALID_ADDRESSES = {"", "h0", "h0:", ":80", "h0:0", "h0:65536",
      "h0:port"};
  private static final double[] VALID_CAPACITIES = {0.5, 1.0, 2.0, 1e-9, 1e9};
  private static final double[] INVALID_CAPACITIES = {0.0, -1.0, Double.NaN,
      Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};

  /** The reference model's range: plain BigInteger bounds, end 2^64 written as 2^64. */
  private record MRange(BigInteger start, BigInteger end, String owner, long epoch,
      boolean pinned) {
    RangeEntry toEntry() {
      long e = end.equals(TWO_64) ? Ring.RING_END : end.longValue();
      return new RangeEntry(start.longValue(), e, owner, epoch, null, pinned);
    }
  }

  /** The reference model: ranges keyed by unsigned start, servers by id. */
  private static final class Model {
    final TreeMap<BigInteger, MRange> ranges = new TreeMap<>();
    final TreeMap<String, QueueServerInfo> servers = new TreeMap<>();

    Model() {
      ranges.put(BigInteger.ZERO, new MRange(BigInteger.ZERO, TWO_64, "", 0L, false));
    }

    MRange at(long start) {
      return ranges.get(Ring.unsigned(start));
    }

    boolean ownsAnything(String id) {
      return ranges.values().stream().anyMatch(r -> r.owner.equals(id));
    }
  }

  @Test
  void randomCommandSequencesKeepTheMapConsistent() {
    String replay = System.getProperty("plb.seed");
    if (replay != null && !replay.isBlank()) {
      run(Long.parseLong(replay.strip()));
      return;
    }
    for (long seed = 1; seed <= SEEDS; seed++) {
      run(seed);
    }
  }

  private static void run(long seed) {
    Random rnd = new Random(seed);
    Model model = new Model();
    ClusterImage image = ClusterImage.EMPTY;
    int accepted = 0;
    for (int step = 0; step < STEPS; step++) {
      Command command = randomCommand(rnd, image);
      String ctx = "seed " + seed + " step " + step + " [" + command.describe() + "] " + command;
      long version = image.version() + 1 + (rnd.nextInt(4) == 0 ? rnd.nextInt(1000) : 0);

      // A stale entry is never processed.
      if (rnd.nextInt(20) == 0) {
        long stale = image.version() - rnd.nextInt((int) Math.min(image.version() + 1, 50));
        final ClusterImage img = image;
        PlbException e = assertThrows(PlbException.class,
            () -> CommandProcessor.process(img, command, stale), ctx + " stale " + stale);
        assertEquals(ErrorCode.INTERNAL, e.code(), ctx);
      }

      Set<ErrorCode> expectedErrors = expectedErrors(model, command);
      ClusterImage before = copyOf(image);
      MapDelta delta;
      try {
        delta = CommandProcessor.process(image, command, version);
      } catch (PlbException e) {
        assertTrue(!expectedErrors.isEmpty(),
            ctx + ": rejected with " + e.code() + " (" + e.getMessage() + ") but the model accepts");
        assertTrue(expectedErrors.contains(e.code()),
            ctx + ": rejected with " + e.code() + " (" + e.getMessage() + "), model expects one of "
                + expectedErrors);
        assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), ctx + ": no message");
        assertEquals(before, image, ctx + ": a rejected command changed the image");
        checkImage(seed, rnd, image, model, ctx);
        continue;
      }
      assertTrue(expectedErrors.isEmpty(),
          ctx + ": accepted but the model expects a rejection with one of " + expectedErrors);
      assertEquals(version, delta.version(), ctx);
      assertEquals(image.version(), delta.prevVersion(), ctx);
      assertEquals(delta, CommandProcessor.process(image, command, version),
          ctx + ": process is not deterministic");

      ClusterImage next;
      try {
        next = image.apply(delta);
      } catch (IllegalStateException e) {
        fail(ctx + ": the delta of an accepted command does not apply: " + e.getMessage(), e);
        return;
      }
      assertEquals(before, image, ctx + ": apply changed the old image");
      assertTrue(Long.compareUnsigned(next.version(), image.version()) > 0
              && next.version() > image.version(),
          ctx + ": version did not increase " + image.version() + " -> " + next.version());
      assertEquals(version, next.version(), ctx);

      // The same delta cannot be applied twice, nor on top of the wrong image.
      final ClusterImage applied = next;
      assertThrows(IllegalStateException.class, () -> applied.apply(delta), ctx + " replayed");

      applyToModel(model, command);
      image = next;
      accepted++;
      checkImage(seed, rnd, image, model, ctx);
    }
    assertTrue(accepted > STEPS / 10, "seed " + seed + ": only " + accepted + " commands accepted");
  }

  // ---- checks after every step ----

  private static void checkImage(long seed, Random rnd, ClusterImage image, Model model,
      String ctx) {
    assertDoesNotThrow(image::checkInvariants, ctx);
    assertCoversRing(image, ctx);

    List<RangeEntry> expected = new ArrayList<>();
    for (MRange r : model.ranges.values()) {
      expected.add(r.toEntry());
    }
    assertEquals(expected, image.ranges(), ctx + ": ranges differ from the model");
    assertEquals(model.servers, image.servers(), ctx + ": servers differ from the model");

    RoutingTable table = RoutingTable.of(image);
    assertEquals(image.version(), table.version(), ctx);
    assertEquals(image.rangeCount(), table.size(), ctx);
    for (long h : new long[] {0L, 1L, TOP, TOP - 1, MID, MID - 1}) {
      checkRoute(model, image, table, h, ctx);
    }
    for (int i = 0; i < image.rangeCount(); i++) {
      RangeEntry r = image.range(i);
      checkRoute(model, image, table, r.start(), ctx);
      checkRoute(model, image, table, r.start() - 1, ctx);
      checkRoute(model, image, table, r.start() + 1, ctx);
      checkRoute(model, image, table, r.end() - 1, ctx);
    }
    for (int i = 0; i < 16; i++) {
      checkRoute(model, image, table, rnd.nextLong(), ctx);
    }
  }

  private static void checkRoute(Model model, ClusterImage image, RoutingTable table, long h,
      String ctx) {
    RangeEntry r = image.rangeFor(h);
    MRange m = model.ranges.floorEntry(Ring.unsigned(h)).getValue();
    if (!m.toEntry().equals(r) || !r.contains(h) || r != image.range(image.indexOfHash(h))) {
      fail(ctx + " hash " + Ring.hex(h) + ": rangeFor gave " + r + ", the model " + m);
    }
    RoutingTable.Route route = table.route(h);
    String address = r.isAssigned() ? image.server(r.owner()).address() : "";
    boolean same = r.start() == route.start() && r.end() == route.end()
        && r.owner().equals(route.owner()) && r.epoch() == route.epoch()
        && java.util.Objects.equals(r.handover(), route.handover())
        && r.isAssigned() == route.isAssigned() && address.equals(route.address());
    if (!same) {
      fail(ctx + " hash " + Ring.hex(h) + ": route " + route + " disagrees with range " + r
          + " (address " + address + ")");
    }
  }

  // ---- command generation ----

  private static Command randomCommand(Random rnd, ClusterImage image) {
    int p = rnd.nextInt(100);
    if (p < 10) {
      return new RegisterServer(anyId(rnd), anyAddress(rnd), anyCapacity(rnd, true));
    } else if (p < 17) {
      return new UpdateServer(anyId(rnd),
          rnd.nextInt(3) == 0 ? anyAddress(rnd) : null,
          rnd.nextInt(3) == 0 ? anyCapacity(rnd, false) : null,
          rnd.nextInt(2) == 0 ? ServerState.values()[rnd.nextInt(3)] : null);
    } else if (p < 23) {
      return new RemoveServer(anyId(rnd));
    } else if (p < 50) {
      long start = anyStart(rnd, image);
      return new SplitRange(start, splitPoint(rnd, image, start));
    } else if (p < 70) {
      int i = rnd.nextInt(image.rangeCount());
      long left = image.range(i).start();
      long right;
      int q = rnd.nextInt(10);
      if (q < 7) {
        right = image.range((i + 1) % image.rangeCount()).start(); // neighbour (or wrap-around)
      } else if (q < 9) {
        right = image.range(rnd.nextInt(image.rangeCount())).start();
      } else {
        right = rnd.nextLong();
      }
      if (rnd.nextInt(20) == 0) {
        left = rnd.nextLong();
      }
      return new MergeRanges(left, right);
    } else if (p < 90) {
      return new AssignRange(anyStart(rnd, image), anyId(rnd), rnd.nextInt(3) == 0);
    } else {
      return new SetPinned(anyStart(rnd, image), rnd.nextBoolean());
    }
  }

  private static String anyId(Random rnd) {
    if (rnd.nextInt(15) == 0) {
      return INVALID_IDS[rnd.nextInt(INVALID_IDS.length)];
    }
    // most commands name one of a few servers, so merges and removes sometimes succeed
    return VALID_IDS[rnd.nextInt(rnd.nextBoolean() ? 3 : VALID_IDS.length)];
  }

  private static String anyAddress(Random rnd) {
    return rnd.nextInt(10) == 0
        ? INVALID_ADDRESSES[rnd.nextInt(INVALID_ADDRESSES.length)]
        : VALID_ADDRESSES[rnd.nextInt(VALID_ADDRESSES.length)];
  }

  private static Double anyCapacity(Random rnd, boolean allowNull) {
    if (allowNull && rnd.nextInt(4) == 0) {
      return null;
    }
    return rnd.nextInt(10) == 0
        ? INVALID_CAPACITIES[rnd.nextInt(INVALID_CAPACITIES.length)]
        : VALID_CAPACITIES[rnd.nextInt(VALID_CAPACITIES.length)];
  }

  /** Usually an existing range start, sometimes a point that starts no range. */
  private static long anyStart(Random rnd, ClusterImage image) {
    int q = rnd.nextInt(20);
    if (q == 0) {
      return rnd.nextLong();
    }
    long s = image.range(rnd.nextInt(image.rangeCount())).start();
    return q == 1 ? s + 1 : s;
  }

  /** A split point: mostly strictly inside the range, sometimes at an edge or anywhere. */
  private static long splitPoint(Random rnd, ClusterImage image, long start) {
    RangeEntry r = image.rangeFor(start);
    BigInteger s = Ring.unsigned(r.start());
    BigInteger e = r.end() == Ring.RING_END ? TWO_64 : Ring.unsigned(r.end());
    BigInteger width = e.subtract(s);
    int q = rnd.nextInt(20);
    if (q == 0) {
      return r.start();
    } else if (q == 1) {
      return r.end();
    } else if (q == 2) {
      return rnd.nextLong();
    } else if (q == 3) {
      return r.start() + 1;
    } else if (q == 4) {
      return r.end() - 1;
    } else if (q == 5) {
      return r.end() + 1 + rnd.nextInt(3);
    }
    if (width.compareTo(BigInteger.TWO) < 0) {
      return r.start();
    }
    // uniform in [start+1, end-1], or near an edge to grow tiny ranges at both ends of the ring
    BigInteger off;
    if (rnd.nextInt(4) == 0) {
      BigInteger small = BigInteger.valueOf(1 + rnd.nextInt(8)).min(width.subtract(BigInteger.ONE));
      off = rnd.nextBoolean() ? small : width.subtract(small);
    } else {
      off = new BigInteger(64, rnd).mod(width.subtract(BigInteger.ONE)).add(BigInteger.ONE);
    }
    return s.add(off).longValue();
  }

  // ---- the reference model ----

  private static boolean validId(String id) {
    return id != null && !id.isEmpty() && id.length() <= 64
        && id.matches("[A-Za-z0-9][A-Za-z0-9._-]*");
  }

  private static boolean validAddress(String a) {
    for (String v : VALID_ADDRESSES) {
      if (v.equals(a)) {
        return true;
      }
    }
    if (List.of(INVALID_ADDRESSES).contains(a)) {
      return false;
    }
    throw new AssertionError("address not in the test's pools: " + a);
  }

  private static boolean validCapacity(double c) {
    return c > 0 && c < Double.POSITIVE_INFINITY;
  }

  /** The error codes the command may be rejected with; empty when it must be accepted. */
  private static Set<ErrorCode> expectedErrors(Model m, Command command) {
    Set<ErrorCode> errs = EnumSet.noneOf(ErrorCode.class);
    if (command instanceof RegisterServer c) {
      if (!validId(c.id())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      }
      if (!validAddress(c.address())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      }
      if (c.capacity() != null && !validCapacity(c.capacity())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      }
      if (m.servers.containsKey(c.id())) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof UpdateServer c) {
      QueueServerInfo cur = m.servers.get(c.id());
      if (!validId(c.id())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      } else if (cur == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else {
        boolean fieldsOk = true;
        if (c.address() != null && !validAddress(c.address())) {
          errs.add(ErrorCode.INVALID_ARGUMENT);
          fieldsOk = false;
        }
        if (c.capacity() != null && !validCapacity(c.capacity())) {
          errs.add(ErrorCode.INVALID_ARGUMENT);
          fieldsOk = false;
        }
        if (fieldsOk && updated(cur, c).equals(cur)) {
          errs.add(ErrorCode.INVALID_ARGUMENT); // changes nothing
        }
      }
    } else if (command instanceof RemoveServer c) {
      if (!validId(c.id())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      } else if (!m.servers.containsKey(c.id())) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (m.ownsAnything(c.id())) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof SplitRange c) {
      MRange r = m.at(c.rangeStart());
      if (r == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else {
        BigInteger at = Ring.unsigned(c.at());
        if (at.compareTo(r.start) <= 0 || at.compareTo(r.end) >= 0) {
          errs.add(ErrorCode.INVALID_ARGUMENT);
        }
      }
    } else if (command instanceof MergeRanges c) {
      MRange l = m.at(c.leftStart());
      MRange r = m.at(c.rightStart());
      if (l == null || r == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (!l.end.equals(r.start)) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      } else if (!l.owner.equals(r.owner)) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof AssignRange c) {
      MRange r = m.at(c.rangeStart());
      QueueServerInfo s = m.servers.get(c.owner());
      if (r == null) {
        errs.add(ErrorCode.NOT_FOUND);
      }
      if (!validId(c.owner())) {
        errs.add(ErrorCode.INVALID_ARGUMENT);
      } else if (s == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (s.state() != ServerState.ACTIVE) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
      if (r != null && r.owner.equals(c.owner())) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
      if (r != null && !r.owner.isEmpty() && !c.force()) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else if (command instanceof SetPinned c) {
      MRange r = m.at(c.rangeStart());
      if (r == null) {
        errs.add(ErrorCode.NOT_FOUND);
      } else if (r.pinned == c.pinned()) {
        errs.add(ErrorCode.FAILED_PRECONDITION);
      }
    } else {
      throw new AssertionError("unexpected command " + command);
    }
    return errs;
  }

  private static QueueServerInfo updated(QueueServerInfo cur, UpdateServer c) {
    return new QueueServerInfo(cur.id(),
        c.address() != null ? c.address() : cur.address(),
        c.capacity() != null ? c.capacity() : cur.capacity(),
        c.state() != null ? c.state() : cur.state());
  }

  private static void applyToModel(Model m, Command command) {
    if (command instanceof RegisterServer c) {
      m.servers.put(c.id(), new QueueServerInfo(c.id(), c.address(),
          c.capacity() == null ? CommandProcessor.DEFAULT_CAPACITY : c.capacity(),
          ServerState.ACTIVE));
    } else if (command instanceof UpdateServer c) {
      m.servers.put(c.id(), updated(m.servers.get(c.id()), c));
    } else if (command instanceof RemoveServer c) {
      m.servers.remove(c.id());
    } else if (command instanceof SplitRange c) {
      MRange r = m.ranges.remove(Ring.unsigned(c.rangeStart()));
      BigInteger at = Ring.unsigned(c.at());
      m.ranges.put(r.start, new MRange(r.start, at, r.owner, r.epoch, r.pinned));
      m.ranges.put(at, new MRange(at, r.end, r.owner, r.epoch, r.pinned));
    } else if (command instanceof MergeRanges c) {
      MRange l = m.ranges.remove(Ring.unsigned(c.leftStart()));
      MRange r = m.ranges.remove(Ring.unsigned(c.rightStart()));
      m.ranges.put(l.start, new MRange(l.start, r.end, l.owner, Math.max(l.epoch, r.epoch),
          l.pinned || r.pinned));
    } else if (command instanceof AssignRange c) {
      MRange r = m.at(c.rangeStart());
      m.ranges.put(r.start, new MRange(r.start, r.end, c.owner(), r.epoch + 1, r.pinned));
    } else if (command instanceof SetPinned c) {
      MRange r = m.at(c.rangeStart());
      m.ranges.put(r.start, new MRange(r.start, r.end, r.owner, r.epoch, c.pinned()));
    }
  }

  // ---- a sanity check of the generator itself ----

  @Test
  void theGeneratorReachesEveryOutcome() {
    Random rnd = new Random(424242);
    Model model = new Model();
    ClusterImage image = ClusterImage.EMPTY;
    Map<String, Integer> outcomes = new TreeMap<>();
    for (int step = 0; step < 5000; step++) {
      Command c = randomCommand(rnd, image);
      String kind = c.getClass().getSimpleName();
      try {
        image = image.apply(CommandProcessor.process(image, c, image.version() + 1));
        applyToModel(model, c);
        outcomes.merge(kind + " ok", 1, Integer::sum);
      } catch (PlbException e) {
        outcomes.merge(kind + " " + e.code(), 1, Integer::sum);
      }
    }
    for (String k : List.of("RegisterServer ok", "RegisterServer INVALID_ARGUMENT",
        "RegisterServer FAILED_PRECONDITION", "UpdateServer ok", "UpdateServer NOT_FOUND",
        "UpdateServer INVALID_ARGUMENT", "RemoveServer ok", "RemoveServer FAILED_PRECONDITION",
        "SplitRange ok", "SplitRange INVALID_ARGUMENT", "SplitRange NOT_FOUND", "MergeRanges ok",
        "MergeRanges INVALID_ARGUMENT", "MergeRanges FAILED_PRECONDITION",
        "MergeRanges NOT_FOUND", "AssignRange ok", "AssignRange FAILED_PRECONDITION",
        "AssignRange NOT_FOUND", "SetPinned ok", "SetPinned FAILED_PRECONDITION")) {
      assertTrue(outcomes.getOrDefault(k, 0) > 0, "never saw " + k + ": " + outcomes);
    }
    assertTrue(image.rangeCount() > 10, "the map stayed tiny: " + image.rangeCount());
    assertNull(image.server("no-such-server"));
  }
}
