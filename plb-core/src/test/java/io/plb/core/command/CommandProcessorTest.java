package io.plb.core.command;

import static io.plb.core.map.MapFixtures.assertCoversRing;
import static io.plb.core.map.MapFixtures.copyOf;
import static io.plb.core.map.MapFixtures.range;
import static io.plb.core.map.MapFixtures.server;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command.AssignRange;
import io.plb.core.command.Command.MergeRanges;
import io.plb.core.command.Command.RegisterServer;
import io.plb.core.command.Command.RemoveServer;
import io.plb.core.command.Command.SetPinned;
import io.plb.core.command.Command.SplitRange;
import io.plb.core.command.Command.UpdateServer;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CommandProcessorTest {
  private static final long MID = Long.MIN_VALUE; // 2^63
  private static final long Q3 = 0xC000_0000_0000_0000L; // 3 * 2^62
  private static final long TOP = -1L; // 2^64 - 1
  private static final long V = 20L;

  /**
   * Version 20. Servers a, b, c ACTIVE (c owns nothing), d DRAINING, x DOWN. Ranges: [0, 1000) a
   * epoch 1 · [1000, 2^63) a epoch 3 · [2^63, 3*2^62) b epoch 2 · [3*2^62, 2^64) unassigned.
   */
  private static ClusterImage base() {
    return ClusterImage.of(
        V,
        List.of(range(0L, 1000L, "a", 1), range(1000L, MID, "a", 3), range(MID, Q3, "b", 2),
            range(Q3, Ring.RING_END, "")),
        List.of(server("a"), server("b"), server("c"), server("d", ServerState.DRAINING),
            server("x", ServerState.DOWN)));
  }

  /** base() with [2^63, 3*2^62) handing over from b to c. */
  private static ClusterImage withHandover() {
    ClusterImage b = base();
    List<RangeEntry> ranges = new ArrayList<>(b.ranges());
    ranges.set(2, new RangeEntry(MID, Q3, "b", 2, new Handover("c", HandoverPhase.SWITCH), false));
    return ClusterImage.of(V, ranges, b.servers().values());
  }

  /** Asserts the command is rejected with {@code code} and a message holding every fragment. */
  private static PlbException reject(
      ClusterImage image, Command command, ErrorCode code, String... fragments) {
    ClusterImage before = copyOf(image);
    PlbException e = assertThrows(PlbException.class,
        () -> CommandProcessor.process(image, command, image.version() + 3),
        command.describe());
    assertEquals(code, e.code(), command.describe() + ": " + e.getMessage());
    for (String f : fragments) {
      assertTrue(e.getMessage().contains(f),
          command.describe() + ": message '" + e.getMessage() + "' does not mention '" + f + "'");
    }
    PlbException again = assertThrows(PlbException.class,
        () -> CommandProcessor.validate(image, command));
    assertEquals(code, again.code());
    assertEquals(e.getMessage(), again.getMessage());
    assertEquals(before, image, "a rejected command changed the image");
    return e;
  }

  /** Processes, applies and checks the result still covers the ring. */
  private static ClusterImage accept(ClusterImage image, Command command) {
    long version = image.version() + 2;
    MapDelta delta = CommandProcessor.process(image, command, version);
    assertEquals(delta, CommandProcessor.process(image, command, version), "not deterministic");
    assertEquals(version, delta.version());
    assertEquals(image.version(), delta.prevVersion());
    assertEquals(command.describe(), delta.cause());
    ClusterImage next = image.apply(delta);
    assertEquals(version, next.version());
    assertCoversRing(next, command.describe());
    return next;
  }

  // ---- version ----

  @Test
  void anEntryThatDoesNotFollowTheMapVersionIsInternal() {
    ClusterImage img = base();
    Command c = new SetPinned(0L, true);
    for (long v : new long[] {V, V - 1, 0L, Long.MIN_VALUE}) {
      PlbException e = assertThrows(PlbException.class, () -> CommandProcessor.process(img, c, v));
      assertEquals(ErrorCode.INTERNAL, e.code());
      assertTrue(e.getMessage().contains(Long.toString(V)), e.getMessage());
    }
    assertDoesNotThrow(() -> CommandProcessor.process(img, c, V + 1));
    assertDoesNotThrow(() -> CommandProcessor.process(img, c, V + 1000));
  }

  // ---- split ----

  @Test
  void splitPointOutsideTheRange() {
    ClusterImage img = base();
    reject(img, new SplitRange(0L, 2000L), ErrorCode.INVALID_ARGUMENT,
        Ring.hex(2000L), "outside", img.range(0).rangeText());
    reject(img, new SplitRange(0L, 1000L), ErrorCode.INVALID_ARGUMENT, "outside"); // its end
    reject(img, new SplitRange(1000L, 5L), ErrorCode.INVALID_ARGUMENT, "outside"); // below start
    reject(img, new SplitRange(1000L, TOP), ErrorCode.INVALID_ARGUMENT, "outside");
    reject(img, new SplitRange(Q3, 0L), ErrorCode.INVALID_ARGUMENT, "outside"); // last range
    reject(img, new SplitRange(Q3, 12L), ErrorCode.INVALID_ARGUMENT, "outside");
  }

  @Test
  void splitEvenlyMakesEqualPiecesOfOneRangeInOneDelta() {
    ClusterImage img = base();
    ClusterImage next = accept(img, new Command.SplitEvenly(1000L, 7, 4096));
    assertEquals(img.rangeCount() + 6, next.rangeCount());
    long step = Long.divideUnsigned(MID - 1000L, 7);
    for (int i = 0; i < 7; i++) {
      RangeEntry r = next.range(1 + i);
      assertEquals(1000L + i * step, r.start());
      assertEquals(i == 6 ? MID : 1000L + (i + 1) * step, r.end());
      assertEquals("a", r.owner());
      assertEquals(3, r.epoch(), "pieces keep the parent's epoch");
    }
    // The last range (to 2^64) and the whole ring split too; the remainder goes to the last piece.
    next = accept(img, new Command.SplitEvenly(Q3, 3, 3));
    assertEquals(Ring.RING_END, next.range(next.rangeCount() - 1).end());
    ClusterImage ring = accept(ClusterImage.EMPTY, new Command.SplitEvenly(0L, 4096, 4096));
    assertEquals(4096, ring.rangeCount());
    assertEquals(Long.divideUnsigned(-1L, 4096), ring.range(1).start());
  }

  @Test
  void splitEvenlyIsBoundedAndValidated() {
    ClusterImage img = base();
    reject(img, new Command.SplitEvenly(0L, 5, 4), ErrorCode.RESOURCE_EXHAUSTED,
        "at most 4 pieces", "map.maxSplitPieces");
    reject(img, new Command.SplitEvenly(0L, 1, 4096), ErrorCode.INVALID_ARGUMENT, "at least 2");
    reject(img, new Command.SplitEvenly(0L, -1, 4096), ErrorCode.INVALID_ARGUMENT,
        "at least 2", "4294967295");
    reject(img, new Command.SplitEvenly(0L, 2, Limits.MAX_SPLIT_PIECES + 1),
        ErrorCode.INVALID_ARGUMENT, "2..4096");
    reject(img, new Command.SplitEvenly(0L, 1001, 4096), ErrorCode.INVALID_ARGUMENT,
        "narrower than 1001");
    reject(img, new Command.SplitEvenly(5L, 2, 4096), ErrorCode.NOT_FOUND, "no range starts");
    reject(withHandover(), new Command.SplitEvenly(MID, 2, 4096), ErrorCode.FAILED_PRECONDITION,
        "handover");
  }

  @Test
  void splitPointAtTheRangeStart() {
    ClusterImage img = base();
    reject(img, new SplitRange(1000L, 1000L), ErrorCode.INVALID_ARGUMENT, "at its start",
        Ring.hex(1000L));
    reject(img, new SplitRange(0L, 0L), ErrorCode.INVALID_ARGUMENT, "at its start");
    reject(img, new SplitRange(MID, MID), ErrorCode.INVALID_ARGUMENT, "at its start");
    reject(ClusterImage.EMPTY, new SplitRange(0L, 0L), ErrorCode.INVALID_ARGUMENT, "at its start");
  }

  @Test
  void splitOfAnUnknownRangeStart() {
    ClusterImage img = base();
    reject(img, new SplitRange(500L, 700L), ErrorCode.NOT_FOUND,
        "no range starts at " + Ring.hex(500L), img.range(0).rangeText());
    reject(img, new SplitRange(TOP, 5L), ErrorCode.NOT_FOUND, Ring.hex(TOP),
        img.range(3).rangeText());
  }

  @Test
  void splitOfAWidthOneRangeIsImpossible() {
    ClusterImage img = ClusterImage.of(1L,
        List.of(range(0L, TOP, ""), range(TOP, Ring.RING_END, "")), List.of());
    reject(img, new SplitRange(TOP, TOP), ErrorCode.INVALID_ARGUMENT, "at its start");
    reject(img, new SplitRange(TOP, 0L), ErrorCode.INVALID_ARGUMENT, "outside");
  }

  @Test
  void splitDuringAHandover() {
    reject(withHandover(), new SplitRange(MID, MID + 1), ErrorCode.FAILED_PRECONDITION,
        "handover", "c");
  }

  @Test
  void splitProducesTwoRangesCoveringTheOldOneWithTheSameOwnerAndEpoch() {
    ClusterImage img = base();
    RangeEntry old = img.range(2);
    long at = MID + 7;
    MapDelta d = CommandProcessor.process(img, new SplitRange(MID, at), V + 1);
    assertEquals(List.of(MID), d.removedRangeStarts());
    assertEquals(List.of(new RangeEntry(MID, at, "b", 2, null, false),
        new RangeEntry(at, Q3, "b", 2, null, false)), d.upsertedRanges());
    assertTrue(d.removedServers().isEmpty());
    assertTrue(d.upsertedServers().isEmpty());
    ClusterImage next = accept(img, new SplitRange(MID, at));
    assertEquals(5, next.rangeCount());
    RangeEntry left = next.rangeFor(MID);
    RangeEntry right = next.rangeFor(at);
    assertEquals(old.start(), left.start());
    assertEquals(at, left.end());
    assertEquals(at, right.start());
    assertEquals(old.end(), right.end());
    for (RangeEntry r : List.of(left, right)) {
      assertEquals(old.owner(), r.owner());
      assertEquals(old.epoch(), r.epoch());
      assertEquals(old.pinned(), r.pinned());
      assertNull(r.handover());
    }
    // the other ranges are untouched
    assertEquals(img.range(0), next.range(0));
    assertEquals(img.range(1), next.range(1));
    assertEquals(img.range(3), next.range(4));
  }

  @Test
  void splitOfTheLastRangeAndOfThePinnedAndAtTheEdges() {
    ClusterImage img = accept(base(), new SetPinned(Q3, true));
    img = accept(img, new SplitRange(Q3, TOP)); // [Q3, 2^64-1) · [2^64-1, 2^64)
    RangeEntry last = img.range(img.rangeCount() - 1);
    assertEquals(TOP, last.start());
    assertEquals(Ring.RING_END, last.end());
    assertTrue(last.pinned());
    assertTrue(img.rangeFor(TOP - 1).pinned());
    img = accept(img, new SplitRange(0L, 1L)); // [0, 1) · [1, 1000)
    assertEquals(1L, img.range(0).end());
    assertEquals(1L, img.range(1).start());
    img = accept(img, new SplitRange(1L, 999L));
    assertEquals(range(999L, 1000L, "a", 1), img.rangeFor(999L));
  }

  // ---- merge ----

  @Test
  void mergeOfNonAdjacentRanges() {
    ClusterImage img = base();
    reject(img, new MergeRanges(0L, MID), ErrorCode.INVALID_ARGUMENT, "not adjacent",
        img.range(0).rangeText(), img.range(2).rangeText());
    reject(img, new MergeRanges(1000L, 0L), ErrorCode.INVALID_ARGUMENT, "not adjacent"); // reversed
    reject(img, new MergeRanges(0L, 0L), ErrorCode.INVALID_ARGUMENT, "not adjacent"); // itself
    reject(img, new MergeRanges(Q3, 0L), ErrorCode.INVALID_ARGUMENT, "not adjacent"); // wraps
    reject(ClusterImage.EMPTY, new MergeRanges(0L, 0L), ErrorCode.INVALID_ARGUMENT,
        "not adjacent");
  }

  @Test
  void mergeOfDifferentlyOwnedRanges() {
    ClusterImage img = base();
    reject(img, new MergeRanges(1000L, MID), ErrorCode.FAILED_PRECONDITION, "different owners",
        "(a, b)");
    reject(img, new MergeRanges(MID, Q3), ErrorCode.FAILED_PRECONDITION, "different owners",
        "unassigned");
  }

  @Test
  void mergeOfUnknownRangeStarts() {
    ClusterImage img = base();
    reject(img, new MergeRanges(5L, 1000L), ErrorCode.NOT_FOUND, Ring.hex(5L));
    reject(img, new MergeRanges(0L, 999L), ErrorCode.NOT_FOUND, Ring.hex(999L));
  }

  @Test
  void mergeDuringAHandover() {
    ClusterImage img = accept(withHandover(), new SplitRange(Q3, Q3 + 10));
    // [MID, Q3) b moving to c; make its right neighbour b's too
    img = accept(img, new AssignRange(Q3, "b", false));
    reject(img, new MergeRanges(MID, Q3), ErrorCode.FAILED_PRECONDITION, "handover");
  }

  @Test
  void mergeProducesOneRangeWithTheMaxEpoch() {
    ClusterImage img = base();
    MapDelta d = CommandProcessor.process(img, new MergeRanges(0L, 1000L), V + 1);
    assertEquals(List.of(0L, 1000L), d.removedRangeStarts());
    assertEquals(List.of(new RangeEntry(0L, MID, "a", 3, null, false)), d.upsertedRanges());
    ClusterImage next = accept(img, new MergeRanges(0L, 1000L));
    assertEquals(3, next.rangeCount());
    assertEquals(new RangeEntry(0L, MID, "a", 3, null, false), next.range(0));
    assertEquals(img.range(2), next.range(1));
    assertEquals(img.range(3), next.range(2));
  }

  @Test
  void mergeKeepsAPinAndWorksForUnassignedRanges() {
    ClusterImage img = accept(base(), new SetPinned(1000L, true));
    img = accept(img, new MergeRanges(0L, 1000L));
    assertTrue(img.range(0).pinned());
    img = accept(img, new SplitRange(Q3, Q3 + 1));
    img = accept(img, new MergeRanges(Q3, Q3 + 1));
    assertEquals(range(Q3, Ring.RING_END, ""), img.range(img.rangeCount() - 1));
  }

  @Test
  void splitThenMergeRestoresTheRange() {
    ClusterImage img = base();
    ClusterImage split = accept(img, new SplitRange(MID, MID + 12345));
    ClusterImage merged = accept(split, new MergeRanges(MID, MID + 12345));
    assertEquals(img.ranges(), merged.ranges());
  }

  // ---- register ----

  @Test
  void registerADuplicate() {
    reject(base(), new RegisterServer("a", "h:1", 2.0), ErrorCode.FAILED_PRECONDITION,
        "a", "already registered");
  }

  @Test
  void registerWithBadCapacity() {
    ClusterImage img = base();
    for (double cap : new double[] {0.0, -0.0, -1.0, Double.NaN, Double.POSITIVE_INFINITY,
        Double.NEGATIVE_INFINITY, -Double.MIN_VALUE}) {
      reject(img, new RegisterServer("n", "h:1", cap), ErrorCode.INVALID_ARGUMENT, "capacity",
          Double.toString(cap));
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"-a", ".a", "_a", "a b", " a", "a/b", "a:b", "ä", "a\n", "a@b", "a*",
      "s😀"})
  void registerWithBadIdCharacters(String id) {
    reject(base(), new RegisterServer(id, "h:1", 1.0), ErrorCode.INVALID_ARGUMENT, "server id",
        "'" + id + "'");
  }

  @Test
  void registerWithMissingOrOverlongId() {
    ClusterImage img = base();
    reject(img, new RegisterServer("", "h:1", 1.0), ErrorCode.INVALID_ARGUMENT, "server id",
        "missing");
    reject(img, new RegisterServer(null, "h:1", 1.0), ErrorCode.INVALID_ARGUMENT, "missing");
    reject(img, new RegisterServer("a".repeat(65), "h:1", 1.0), ErrorCode.INVALID_ARGUMENT,
        "longer than 64");
    accept(img, new RegisterServer("a".repeat(64), "h:1", 1.0));
    accept(img, new RegisterServer("A9._-z", "h:1", 1.0));
    accept(img, new RegisterServer("9", "h:1", 1.0));
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "host", "host:", ":80", ":", "host:0", "host:65536", "host:-1",
      "host:http", "host:80x", "host: 80", "host:99999999999"})
  void registerWithBadAddress(String address) {
    PlbException e = reject(base(), new RegisterServer("n", address, 1.0),
        ErrorCode.INVALID_ARGUMENT, "server address");
    if (!address.isEmpty()) {
      assertTrue(e.getMessage().contains("'" + address + "'"), e.getMessage());
    }
  }

  @Test
  void registerWithMissingOrOverlongAddress() {
    ClusterImage img = base();
    reject(img, new RegisterServer("n", null, 1.0), ErrorCode.INVALID_ARGUMENT, "missing");
    String longHost = "h".repeat(250) + ":7000"; // 255 chars is fine
    assertEquals(255, longHost.length());
    accept(img, new RegisterServer("n", longHost, 1.0));
    reject(img, new RegisterServer("n", "h" + longHost, 1.0), ErrorCode.INVALID_ARGUMENT,
        "longer than 255");
  }

  @Test
  void registerHappyPath() {
    ClusterImage img = base();
    MapDelta d = CommandProcessor.process(img, new RegisterServer("n", "[::1]:65535", 2.5), V + 1);
    assertEquals(List.of(new QueueServerInfo("n", "[::1]:65535", 2.5, ServerState.ACTIVE)),
        d.upsertedServers());
    assertTrue(d.upsertedRanges().isEmpty() && d.removedRangeStarts().isEmpty());
    ClusterImage next = accept(img, new RegisterServer("n", "10.0.0.1:1", null));
    assertEquals(new QueueServerInfo("n", "10.0.0.1:1", CommandProcessor.DEFAULT_CAPACITY,
        ServerState.ACTIVE), next.server("n"));
    assertEquals(img.ranges(), next.ranges());
    accept(ClusterImage.EMPTY, new RegisterServer("first", "localhost:7000", Double.MIN_VALUE));
  }

  // ---- update ----

  @Test
  void updateOfAnUnknownServer() {
    reject(base(), new UpdateServer("zz", "h:1", null, null), ErrorCode.NOT_FOUND,
        "no queue server with id zz");
  }

  @Test
  void updateThatChangesNothing() {
    ClusterImage img = base();
    QueueServerInfo a = img.server("a");
    reject(img, new UpdateServer("a", null, null, null), ErrorCode.INVALID_ARGUMENT,
        "changes nothing", "a");
    reject(img, new UpdateServer("a", a.address(), a.capacity(), a.state()),
        ErrorCode.INVALID_ARGUMENT, "changes nothing");
    reject(img, new UpdateServer("d", null, null, ServerState.DRAINING),
        ErrorCode.INVALID_ARGUMENT, "changes nothing");
  }

  @Test
  void updateWithBadFields() {
    ClusterImage img = base();
    reject(img, new UpdateServer("a", "nohost", null, null), ErrorCode.INVALID_ARGUMENT,
        "server address", "nohost");
    reject(img, new UpdateServer("a", "", null, null), ErrorCode.INVALID_ARGUMENT,
        "server address");
    reject(img, new UpdateServer("a", null, Double.NaN, null), ErrorCode.INVALID_ARGUMENT,
        "capacity");
    reject(img, new UpdateServer("a", null, 0.0, null), ErrorCode.INVALID_ARGUMENT, "capacity");
    reject(img, new UpdateServer("a", null, Double.POSITIVE_INFINITY, null),
        ErrorCode.INVALID_ARGUMENT, "capacity");
    reject(img, new UpdateServer("a b", null, 2.0, null), ErrorCode.INVALID_ARGUMENT,
        "server id");
    reject(img, new UpdateServer(null, null, 2.0, null), ErrorCode.INVALID_ARGUMENT,
        "server id");
  }

  @Test
  void updateHappyPath() {
    ClusterImage img = base();
    ClusterImage next = accept(img, new UpdateServer("a", null, null, ServerState.DRAINING));
    assertEquals(new QueueServerInfo("a", "a.example:7000", 1.0, ServerState.DRAINING),
        next.server("a"));
    assertEquals(img.ranges(), next.ranges()); // a keeps its ranges while draining
    next = accept(next, new UpdateServer("a", "new:9", 3.0, null));
    assertEquals(new QueueServerInfo("a", "new:9", 3.0, ServerState.DRAINING), next.server("a"));
    next = accept(next, new UpdateServer("x", null, null, ServerState.ACTIVE));
    assertEquals(ServerState.ACTIVE, next.server("x").state());
  }

  // ---- remove ----

  @Test
  void removeOfAnUnknownServer() {
    reject(base(), new RemoveServer("zz"), ErrorCode.NOT_FOUND, "zz");
    reject(base(), new RemoveServer("bad id"), ErrorCode.INVALID_ARGUMENT, "server id");
  }

  @Test
  void removeOfAServerThatStillOwnsRanges() {
    ClusterImage img = base();
    reject(img, new RemoveServer("a"), ErrorCode.FAILED_PRECONDITION, "a", "2 range(s)",
        img.range(0).rangeText());
    reject(img, new RemoveServer("b"), ErrorCode.FAILED_PRECONDITION, "1 range(s)");
    // c owns nothing but is the target of a handover
    reject(withHandover(), new RemoveServer("c"), ErrorCode.FAILED_PRECONDITION, "c");
  }

  @Test
  void removeHappyPath() {
    ClusterImage img = base();
    MapDelta d = CommandProcessor.process(img, new RemoveServer("c"), V + 1);
    assertEquals(List.of("c"), d.removedServers());
    ClusterImage next = accept(img, new RemoveServer("c"));
    assertNull(next.server("c"));
    next = accept(next, new RemoveServer("x"));
    assertEquals(List.of("a", "b", "d"), List.copyOf(next.servers().keySet()));
  }

  // ---- assign ----

  @Test
  void assignToAnUnknownServerOrRange() {
    ClusterImage img = base();
    reject(img, new AssignRange(Q3, "zz", false), ErrorCode.NOT_FOUND,
        "no queue server with id zz");
    reject(img, new AssignRange(Q3 + 1, "a", false), ErrorCode.NOT_FOUND, Ring.hex(Q3 + 1));
    reject(img, new AssignRange(Q3, "no/such", false), ErrorCode.INVALID_ARGUMENT, "server id");
    reject(img, new AssignRange(Q3, "", false), ErrorCode.INVALID_ARGUMENT, "server id");
  }

  @Test
  void assignToADrainingOrDownServer() {
    ClusterImage img = base();
    reject(img, new AssignRange(Q3, "d", false), ErrorCode.FAILED_PRECONDITION, "d", "DRAINING");
    reject(img, new AssignRange(Q3, "x", false), ErrorCode.FAILED_PRECONDITION, "x", "DOWN");
    reject(img, new AssignRange(0L, "d", true), ErrorCode.FAILED_PRECONDITION, "DRAINING");
    reject(img, new AssignRange(0L, "x", true), ErrorCode.FAILED_PRECONDITION, "DOWN");
  }

  @Test
  void assignOfAnOwnedRangeWithoutForce() {
    ClusterImage img = base();
    reject(img, new AssignRange(0L, "b", false), ErrorCode.FAILED_PRECONDITION,
        img.range(0).rangeText(), "owned by a", "handover");
  }

  @Test
  void assignToTheCurrentOwner() {
    ClusterImage img = base();
    reject(img, new AssignRange(0L, "a", false), ErrorCode.FAILED_PRECONDITION,
        "already owned by a");
    reject(img, new AssignRange(0L, "a", true), ErrorCode.FAILED_PRECONDITION,
        "already owned by a");
  }

  @Test
  void assignDuringAHandover() {
    reject(withHandover(), new AssignRange(MID, "a", true), ErrorCode.FAILED_PRECONDITION,
        "handover");
  }

  @Test
  void assignOfAnOwnedRangeWithForceIncrementsTheEpoch() {
    ClusterImage img = base();
    MapDelta d = CommandProcessor.process(img, new AssignRange(1000L, "c", true), V + 1);
    assertEquals(List.of(new RangeEntry(1000L, MID, "c", 4, null, false)), d.upsertedRanges());
    assertTrue(d.removedRangeStarts().isEmpty());
    ClusterImage next = accept(img, new AssignRange(1000L, "c", true));
    assertEquals(new RangeEntry(1000L, MID, "c", 4, null, false), next.range(1));
    assertEquals(img.range(0), next.range(0));
  }

  @Test
  void assignOfAnUnassignedRangeIncrementsTheEpoch() {
    ClusterImage img = base();
    ClusterImage next = accept(img, new AssignRange(Q3, "c", false));
    assertEquals(range(Q3, Ring.RING_END, "c", 1), next.range(3));
    next = accept(next, new AssignRange(Q3, "a", true));
    assertEquals(range(Q3, Ring.RING_END, "a", 2), next.range(3));
    ClusterImage first = accept(
        accept(ClusterImage.EMPTY, new RegisterServer("s1", "h:1", null)),
        new AssignRange(0L, "s1", false));
    assertEquals(range(0L, Ring.RING_END, "s1", 1), first.range(0));
  }

  @Test
  void assignKeepsThePin() {
    ClusterImage img = accept(base(), new SetPinned(Q3, true));
    img = accept(img, new AssignRange(Q3, "b", false));
    assertTrue(img.range(3).pinned());
  }

  // ---- pin ----

  @Test
  void pinTwice() {
    ClusterImage img = accept(base(), new SetPinned(0L, true));
    reject(img, new SetPinned(0L, true), ErrorCode.FAILED_PRECONDITION, "already pinned",
        img.range(0).rangeText());
    reject(base(), new SetPinned(0L, false), ErrorCode.FAILED_PRECONDITION, "already unpinned");
  }

  @Test
  void pinOfAnUnknownRange() {
    reject(base(), new SetPinned(1L, true), ErrorCode.NOT_FOUND, Ring.hex(1L));
  }

  @Test
  void pinAndUnpin() {
    ClusterImage img = base();
    ClusterImage pinned = accept(img, new SetPinned(MID, true));
    assertTrue(pinned.range(2).pinned());
    assertEquals(img.range(2).epoch(), pinned.range(2).epoch());
    assertEquals(img.range(2).owner(), pinned.range(2).owner());
    ClusterImage unpinned = accept(pinned, new SetPinned(MID, false));
    assertEquals(img.ranges(), unpinned.ranges());
  }

  // ---- describe ----

  @Test
  void describeNamesTheCommand() {
    assertEquals("split range at 0x8000000000000000", new SplitRange(0L, MID).describe());
    assertEquals("assign range at 0x0000000000000000 to a (forced)",
        new AssignRange(0L, "a", true).describe());
    assertEquals("pin range at 0xffffffffffffffff", new SetPinned(TOP, true).describe());
    assertTrue(new MergeRanges(0L, 1000L).describe().contains(Ring.hex(1000L)));
  }

  // ---- Limits ----

  @Test
  void checkKeyRejectsEmptyAndOverlongKeys() {
    PlbException empty = assertThrows(PlbException.class, () -> Limits.checkKey(new byte[0]));
    assertEquals(ErrorCode.INVALID_ARGUMENT, empty.code());
    assertTrue(empty.getMessage().contains("empty"), empty.getMessage());
    PlbException nul = assertThrows(PlbException.class, () -> Limits.checkKey(null));
    assertEquals(ErrorCode.INVALID_ARGUMENT, nul.code());
    PlbException big = assertThrows(PlbException.class, () -> Limits.checkKey(new byte[1025]));
    assertEquals(ErrorCode.INVALID_ARGUMENT, big.code());
    assertTrue(big.getMessage().contains("1025"), big.getMessage());
    assertTrue(big.getMessage().contains("1024"), big.getMessage());
    assertDoesNotThrow(() -> Limits.checkKey(new byte[1]));
    assertDoesNotThrow(() -> Limits.checkKey(new byte[Limits.MAX_KEY_BYTES]));
    assertEquals(1024, Limits.MAX_KEY_BYTES);
  }

  @Test
  void checkCapacityAndAddressDirectly() {
    assertDoesNotThrow(() -> Limits.checkCapacity(Double.MAX_VALUE));
    assertDoesNotThrow(() -> Limits.checkCapacity(1e-300));
    assertEquals(ErrorCode.INVALID_ARGUMENT,
        assertThrows(PlbException.class, () -> Limits.checkCapacity(Double.NaN)).code());
    assertDoesNotThrow(() -> Limits.checkAddress("h:65535"));
    assertDoesNotThrow(() -> Limits.checkAddress("h:1"));
    assertDoesNotThrow(() -> Limits.checkAddress("fe80::1:443")); // last colon splits the port
  }

  @Test
  void rejectedCommandsNeverChangeTheImageEvenAfterManyTries() {
    ClusterImage img = base();
    ClusterImage before = copyOf(img);
    List<Command> bad = List.of(new SplitRange(0L, 0L), new MergeRanges(0L, MID),
        new RegisterServer("a", "h:1", 1.0), new RemoveServer("a"), new AssignRange(0L, "b", false),
        new SetPinned(0L, false), new UpdateServer("a", null, null, null));
    for (Command c : bad) {
      assertThrows(PlbException.class, () -> CommandProcessor.process(img, c, V + 1));
    }
    assertEquals(before, img);
    assertFalse(img.range(0).pinned());
  }
}
