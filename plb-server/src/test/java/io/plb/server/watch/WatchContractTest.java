package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.proto.v1.GetMapRequest;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.Progress;
import io.plb.proto.v1.WatchMapResponse;
import io.plb.proto.v1.WatchMapResponse.EventCase;
import io.plb.server.publish.MapPublisher;
import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The WatchMap contract of docs/watch-contract.md, guarantee by guarantee, against real 3-node
 * clusters. Each test names the guarantee it checks; {@link WatchChecker} checks raw streams and
 * reports the first violation with its event index.
 *
 * <p>Three clusters, one at a time and each started once (tests run in order, grouped by the
 * cluster they need): the default one, one keeping a history of 5 deltas, and one keeping 50 deltas
 * with at most 2 watch streams per node. Run alone, a test starts the cluster it needs.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class WatchContractTest {
  private static final Duration T = Duration.ofSeconds(20);
  /** TestCluster sets watch.progressInterval to 1 s. */
  private static final Duration PROGRESS_INTERVAL = Duration.ofSeconds(1);

  /** The clusters the tests need. */
  enum Kind {
    MAIN(Map.of()),
    SMALL_HISTORY(Map.of("watch.historyEntries", "5")),
    LIMITS(Map.of("watch.historyEntries", "50", "watch.maxWatchers", "2"));

    final Map<String, String> settings;

    Kind(Map<String, String> settings) {
      this.settings = settings;
    }
  }

  @TempDir static Path dir;
  static Kind kind;
  static TestCluster cluster;
  static PlbAdminClient admin;
  static Writer writer;
  /** A Raft index that is no map version (a new leader's own entry); found by the failover test. */
  static long gapVersion;

  static void use(Kind k) throws IOException {
    if (kind == k) {
      return;
    }
    stop();
    cluster = TestCluster.start(dir.resolve(k.name()), 3, k.settings);
    kind = k;
    cluster.awaitLeader(T);
    admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
    writer = new Writer(admin);
  }

  @AfterAll
  static void stop() {
    if (admin != null) {
      admin.close();
      admin = null;
    }
    if (cluster != null) {
      cluster.close();
      cluster = null;
    }
    kind = null;
  }

  /**
   * Map writes through the admin client: a cycle of register server, split the newest range, and
   * force-assign it to the newest server, so deltas touch both servers and ranges. Remembers
   * every version written.
   */
  static final class Writer {
    final PlbAdminClient admin;
    final List<Long> versions = new ArrayList<>();
    int n;
    int splits;
    long newestRange;
    String newestServer;

    Writer(PlbAdminClient admin) {
      this.admin = admin;
    }

    long write() {
      int i = n++;
      long v;
      switch (i % 3) {
        case 0 -> {
          newestServer = "s" + i;
          v = admin.registerServer(newestServer, "127.0.0.1:" + (10_000 + i), 1.0);
        }
        case 1 -> {
          long at = (long) (++splits) << 40;
          v = admin.splitAtHash(newestRange, at);
          newestRange = at;
        }
        default -> v = admin.assign(newestRange, newestServer, true);
      }
      return remember(v);
    }

    /** A write whose delta is large (about 350 bytes): a server with the longest id and address. */
    long heavyWrite() {
      int i = n++;
      String id = String.format("heavy-%058d", i);
      String address = "h".repeat(240) + ".test:" + (10_000 + i % 50_000);
      return remember(admin.registerServer(id, address, 1.0));
    }

    List<Long> write(int count) {
      List<Long> out = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        out.add(write());
      }
      return out;
    }

    private long remember(long v) {
      if (!versions.isEmpty()) {
        assertTrue(v > last(), "write versions grow: " + v + " after " + last());
      }
      versions.add(v);
      return v;
    }

    long last() {
      return versions.get(versions.size() - 1);
    }
  }

  private static ManagedChannel channel(int node) {
    return NettyChannelBuilder.forTarget(cluster.endpoint(node)).usePlaintext().build();
  }

  private static void close(ManagedChannel c) throws InterruptedException {
    c.shutdownNow();
    c.awaitTermination(5, TimeUnit.SECONDS);
  }

  // ================================================================== the checker itself

  private static WatchMapResponse full(long version) {
    return WatchMapResponse.newBuilder().setFullMap(MapSnapshot.newBuilder()
        .setVersion(version)
        .addRanges(io.plb.proto.v1.RangeEntry.newBuilder().setStart(0).setEnd(0)))
        .build();
  }

  private static WatchMapResponse delta(long prev, long version) {
    return WatchMapResponse.newBuilder().setDelta(io.plb.proto.v1.MapDelta.newBuilder()
        .setPrevVersion(prev)
        .setVersion(version)
        .addUpsertedRanges(io.plb.proto.v1.RangeEntry.newBuilder()
            .setStart(0).setEnd(0).setPinned(version % 2 == 0))
        .setCause("test"))
        .build();
  }

  private static WatchMapResponse progress(long version) {
    return WatchMapResponse.newBuilder()
        .setProgress(Progress.newBuilder().setVersion(version).setAppliedIndex(version))
        .build();
  }

  private static void assertViolation(WatchChecker.Violation v, String guarantee, int index) {
    assertNotNull(v, "a violation of " + guarantee + " is reported");
    assertEquals(guarantee, v.guarantee(), v.toString());
    assertEquals(index, v.eventIndex(), v.toString());
  }

  /** The checker reports each broken guarantee by name, at the first event that breaks it. */
  @Test
  @Order(0)
  void checkerReportsTheFirstViolation() {
    WatchChecker good = WatchChecker.replay(0, null,
        List.of(full(5), delta(5, 7), progress(7), delta(7, 8), progress(8)));
    assertNull(good.firstViolation());
    assertNull(good.checkOneFullMap(5));
    assertNull(good.checkAtomic(List.of(7L, 8L)));
    assertEquals(8, good.image().version());

    assertViolation(WatchChecker.replay(0, null, List.of(full(5), delta(6, 7))).checkNoGaps(),
        WatchChecker.NO_GAPS, 1);
    assertViolation(WatchChecker.replay(0, null, List.of(delta(0, 3))).checkNoGaps(),
        WatchChecker.NO_GAPS, 0);
    assertViolation(WatchChecker.replay(0, null, List.of(full(5), full(4))).checkOrdered(),
        WatchChecker.ORDERED, 1);
    assertViolation(WatchChecker.replay(0, null, List.of(full(5), delta(5, 6), full(9)))
        .checkOneFullMap(0), WatchChecker.ONE_FULL_MAP, 2);
    assertViolation(WatchChecker.replay(7, null, List.of(progress(7), full(9))).checkResumable(),
        WatchChecker.RESUMABLE, 1);
    assertViolation(WatchChecker.replay(0, null, List.of(full(5), delta(5, 6), progress(5)))
        .firstViolation(), WatchChecker.ORDERED, 2);
    assertViolation(WatchChecker.replay(0, null, List.of(full(5), progress(6))).checkBookmarks(),
        WatchChecker.BOOKMARKS, 1);
    assertViolation(WatchChecker.replay(0, null, List.of(full(5), delta(5, 7), delta(7, 9)))
        .checkAtomic(List.of(7L, 8L, 9L)), WatchChecker.ATOMIC, 3);
  }

  // ================================================================== the default cluster

  /**
   * Ordered, No gaps, Atomic: a subscriber from version 0 gets one full map, then one delta per
   * committed write, each following the last; the image it builds equals the node's map.
   */
  @Test
  @Order(1)
  void orderedNoGapsAtomic() throws Exception {
    use(Kind.MAIN);
    writer.write(3);
    // The full map must already hold these three, or their deltas would follow it.
    cluster.awaitAllApplied(writer.last(), T);
    try (WatchChecker w = WatchChecker.open(cluster.endpoint(0), 0)) {
      WatchChecker.Event first = w.awaitEvent(T, "the first event", e -> true);
      assertEquals(EventCase.FULL_MAP, first.kind(), "a new subscriber starts with a full map");
      List<Long> writes = writer.write(30);
      long last = writer.last();
      w.awaitVersion(last, T);

      w.assertHolds(w.checkOrdered());
      w.assertHolds(w.checkNoGaps());
      w.assertHolds(w.checkAtomic(writes));
      w.assertHolds(w.checkOneFullMap(0));
      w.assertContract();
      assertEquals(1, w.fullMaps());
      assertEquals(31, w.mapEvents().size(), "one full map and one delta per write");
      assertEquals(last, w.lastVersion());
      ClusterImage expected = admin.getMap(last);
      assertEquals(last, expected.version());
      assertEquals(expected, w.image(), "the subscriber's image is the node's map");
      cluster.awaitAllApplied(last, T);
      for (int i = 0; i < 3; i++) {
        assertEquals(expected, cluster.node(i).image(), "replica " + i);
      }
    }
  }

  /**
   * Resumable: WatchMap(after_version = V) on a node other than the one that served V continues
   * with the delta whose prev_version is V — no full map — since versions are Raft indexes, the
   * same on every replica.
   */
  @Test
  @Order(2)
  void resumableOnAnyNode() throws Exception {
    use(Kind.MAIN);
    try (WatchChecker base = WatchChecker.open(cluster.endpoint(0), 0)) {
      base.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
      List<Long> writes = writer.write(10);
      base.awaitVersion(writer.last(), T);
      long v = writes.get(4);
      ClusterImage atV = base.imageAt(v);
      assertNotNull(atV, "the base stream passed through " + v);
      cluster.awaitAllApplied(writer.last(), T);

      List<WatchChecker> resumed = new ArrayList<>();
      try {
        for (int node = 1; node < 3; node++) {
          resumed.add(WatchChecker.open(cluster.endpoint(node), v, atV));
        }
        List<Long> more = writer.write(3);
        for (WatchChecker r : resumed) {
          r.awaitVersion(writer.last(), T);
          WatchChecker.Event first = r.mapEvents().get(0);
          assertEquals(EventCase.DELTA, first.kind());
          assertEquals(v, first.prevVersion(), "the first delta follows the cursor");
          r.assertHolds(r.checkResumable());
          r.assertHolds(r.checkAtomic(concat(writes, more)));
          r.assertContract();
          assertEquals(0, r.fullMaps());
          assertEquals(admin.getMap(writer.last()), r.image());
        }
      } finally {
        resumed.forEach(WatchChecker::close);
      }
    }
  }

  /**
   * Resumable, on a node behind the subscriber: a cursor ahead of the node's map gets nothing
   * until the node has applied past it (bookmarks name the cursor meanwhile), then the delta that
   * follows it — or one full map, had the cursor been no map version.
   */
  @Test
  @Order(3)
  void cursorAheadOfTheNodeWaitsThenContinues() throws Exception {
    use(Kind.MAIN);
    long current = writer.write();
    cluster.awaitAllApplied(current, T);
    long ahead = current + 3;
    try (WatchChecker a = WatchChecker.open(cluster.endpoint(1), ahead);
        WatchChecker witness = WatchChecker.open(cluster.endpoint(1), current)) {
      long behind = writer.write();
      assertTrue(behind <= ahead, "test premise: the next write is not past the cursor");
      witness.awaitVersion(behind, T);
      assertTrue(a.mapEvents().isEmpty(),
          "nothing at or below the cursor is sent: " + a.summary());
      // While it waits, bookmarks name the subscriber's cursor; applied_index is the node's.
      WatchChecker.Event p = a.awaitEvent(PROGRESS_INTERVAL.multipliedBy(3), "a bookmark",
          e -> e.kind() == EventCase.PROGRESS);
      assertEquals(ahead, p.version());
      assertTrue(p.appliedIndex() >= behind && p.appliedIndex() < ahead, "applied index "
          + p.appliedIndex());
      assertTrue(a.mapEvents().isEmpty(), a.summary());
      List<Long> writes = writer.write(5);
      a.awaitVersion(writer.last(), T);
      a.assertContract();
      WatchChecker.Event first = a.mapEvents().get(0);
      assertTrue(first.version() > ahead, "first map event is past the cursor: " + first);
      if (writer.versions.contains(ahead)) {
        a.assertHolds(a.checkResumable());
        assertEquals(0, a.fullMaps());
      } else {
        a.assertHolds(a.checkOneFullMap(0));
      }
      a.assertHolds(a.checkAtomic(writes));
    }
  }

  /**
   * Bookmarks: an idle stream gets a progress event within 3 × watch.progressInterval, carrying
   * the node's current version, and again after each change once the stream is idle.
   */
  @Test
  @Order(4)
  void bookmarksOnIdleStreams() throws Exception {
    use(Kind.MAIN);
    long current = writer.write();
    cluster.awaitAllApplied(current, T);
    Duration within = PROGRESS_INTERVAL.multipliedBy(3);
    try (WatchChecker idle = WatchChecker.open(cluster.endpoint(2), current);
        WatchChecker fresh = WatchChecker.open(cluster.endpoint(0), 0)) {
      long opened = System.nanoTime();
      WatchChecker.Event p = idle.awaitEvent(within, "a bookmark",
          e -> e.kind() == EventCase.PROGRESS);
      assertTrue(System.nanoTime() - opened < within.toNanos());
      assertEquals(current, p.version(), "the bookmark carries the current version");
      assertTrue(p.appliedIndex() >= current, "applied index " + p.appliedIndex());
      assertTrue(idle.mapEvents().isEmpty(), "a subscriber at the current version gets no map");

      fresh.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
      WatchChecker.Event fp = fresh.awaitEvent(within.plus(PROGRESS_INTERVAL), "a bookmark",
          e -> e.kind() == EventCase.PROGRESS);
      assertEquals(current, fp.version());

      long next = writer.write();
      idle.awaitVersion(next, T);
      int seen = idle.events().size();
      long changed = System.nanoTime();
      WatchChecker.Event p2 = idle.awaitEvent(within, "a bookmark after the change",
          e -> e.index() >= seen && e.kind() == EventCase.PROGRESS);
      assertTrue(System.nanoTime() - changed < within.toNanos());
      assertEquals(next, p2.version());
      for (WatchChecker w : List.of(idle, fresh)) {
        w.assertHolds(w.checkBookmarks());
        w.assertContract();
      }
      idle.assertHolds(idle.checkResumable());
    }
  }

  /**
   * Read-your-writes: after a write returns version V, GetMap(min_version = V) on every node —
   * followers included — answers with a map at V or later; a version the node will not reach in
   * time is DEADLINE_EXCEEDED.
   */
  @Test
  @Order(5)
  void readYourWrites() throws Exception {
    use(Kind.MAIN);
    List<ManagedChannel> channels = new ArrayList<>();
    try {
      for (int node = 0; node < 3; node++) {
        channels.add(channel(node));
      }
      for (int i = 0; i < 6; i++) {
        long v = writer.write();
        for (int node = 0; node < 3; node++) {
          MapSnapshot s = MapServiceGrpc.newBlockingStub(channels.get(node))
              .withDeadlineAfter(10, TimeUnit.SECONDS)
              .getMap(GetMapRequest.newBuilder().setMinVersion(v).build()).next();
          assertTrue(s.getVersion() >= v, "node " + node + " answered " + s.getVersion()
              + " for min_version " + v);
          assertEquals(v, Wire.fromProto(s).version());
        }
      }
      long far = writer.last() + 1_000;
      StatusRuntimeException e = assertThrows(
          StatusRuntimeException.class,
          () -> MapServiceGrpc.newBlockingStub(channels.get(1))
              .withDeadlineAfter(10, TimeUnit.SECONDS)
              .getMap(GetMapRequest.newBuilder().setMinVersion(far).setWaitMillis(200).build())
              .next());
      assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
      assertTrue(e.getStatus().getDescription().contains("wanted " + far),
          e.getStatus().getDescription());
    } finally {
      for (ManagedChannel c : channels) {
        close(c);
      }
    }
  }

  /** Records what a {@link MapWatcher} delivers, and every break of order or chain. */
  static final class Recorder implements MapWatcher.Listener {
    final List<Long> versions = new ArrayList<>();
    final List<MapDelta> deltas = new ArrayList<>();
    final List<String> violations = new ArrayList<>();
    int fullMaps;
    volatile long last = -1;

    @Override
    public synchronized void onMap(ClusterImage image, MapDelta delta) {
      int index = versions.size();
      if (image.version() <= last) {
        violations.add(WatchChecker.ORDERED + " at #" + index + ": " + last + " then "
            + image.version());
      }
      if (delta == null) {
        fullMaps++;
      } else {
        deltas.add(delta);
        if (delta.prevVersion() != last) {
          violations.add(WatchChecker.NO_GAPS + " at #" + index + ": delta " + delta.version()
              + " follows " + delta.prevVersion() + ", subscriber was at " + last);
        }
      }
      versions.add(image.version());
      last = image.version();
    }

    synchronized String summary() {
      return versions + ", full maps " + fullMaps + ", violations " + violations;
    }
  }

  /**
   * Ordered and No gaps across reconnects: a MapWatcher whose node stops resumes on another node
   * from its last version: versions keep growing, deltas keep chaining, and no full map is needed
   * because the new node still has the history. The watcher starts on the leader (the first of
   * its endpoints), so stopping it also makes a new leader, whose own log entry leaves a version
   * gap that the next test uses.
   */
  @Test
  @Order(6)
  void mapWatcherFailsOverWithoutGap() throws Exception {
    use(Kind.MAIN);
    int leader = cluster.awaitLeader(T);
    List<String> order = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      order.add(cluster.endpoint((leader + i) % 3));
    }
    Recorder rec = new Recorder();
    int stopped = -1;
    List<Long> written = new ArrayList<>();
    try (Endpoints endpoints = new Endpoints(order);
        MapWatcher watcher = new MapWatcher(endpoints, rec)) {
      watcher.start();
      assertTrue(watcher.awaitFirstMap(20, TimeUnit.SECONDS));
      List<Long> before = writer.write(5);
      long lastBefore = writer.last();
      TestCluster.await(T, "the watcher at " + lastBefore, () -> rec.last >= lastBefore);
      TestCluster.await(T, "a connected watcher", () -> watcher.connectedTo() != null);
      stopped = cluster.endpoints().indexOf(watcher.connectedTo());
      assertTrue(stopped >= 0, "connected to " + watcher.connectedTo());
      cluster.stopNode(stopped);

      List<Long> after = writer.write(10);
      long last = writer.last();
      written.addAll(concat(before, after));
      TestCluster.await(T, "the watcher at " + last + " (" + rec.summary() + ")",
          () -> rec.last >= last);
      int dead = stopped;
      TestCluster.await(T, "the watcher on a live node", () -> watcher.connectedTo() != null
          && !watcher.connectedTo().equals(cluster.endpoint(dead)));

      synchronized (rec) {
        assertEquals(List.of(), rec.violations, rec.summary());
        assertEquals(1, rec.fullMaps, "no full map after the reconnect: " + rec.summary());
        assertEquals(last, rec.last);
        for (long v : concat(before, after)) {
          assertTrue(rec.versions.contains(v), "version " + v + " delivered: " + rec.summary());
        }
        for (MapDelta d : rec.deltas) {
          if (d.version() > d.prevVersion() + 1) {
            gapVersion = d.prevVersion() + 1;
          }
        }
      }
      assertEquals(0, watcher.contractViolations());
      assertTrue(watcher.reconnects() >= 1);
      assertEquals(admin.getMap(last), watcher.image());
    } finally {
      if (stopped >= 0 && cluster.node(stopped) == null) {
        cluster.startNode(stopped);
        cluster.awaitAllApplied(writer.last(), T);
      }
    }

    // Resumable on the restarted node too: its history survived the restart (RocksDB) and grew
    // by the entries it caught up on, so a cursor from before the stop continues by deltas.
    long from = written.get(0);
    try (WatchChecker r = WatchChecker.open(cluster.endpoint(stopped), from)) {
      r.awaitVersion(writer.last(), T);
      r.assertHolds(r.checkResumable());
      r.assertHolds(r.checkAtomic(written.subList(1, written.size())));
      r.assertContract();
      assertEquals(written.size() - 1, r.mapEvents().size(), r.summary());
    }
  }

  /**
   * One full map after a gap, for a cursor that is no map version (a Raft index of the leader's
   * own entry): every node answers with exactly one full map at its current version, then deltas.
   */
  @Test
  @Order(7)
  void cursorThatIsNoMapVersionGetsOneFullMap() throws Exception {
    use(Kind.MAIN);
    if (gapVersion == 0) {
      makeGapByLeaderChange();
    }
    long current = writer.last();
    cluster.awaitAllApplied(current, T);
    assertTrue(gapVersion < current);
    assertTrue(!writer.versions.contains(gapVersion), "no write produced version " + gapVersion);
    List<WatchChecker> streams = new ArrayList<>();
    try {
      for (int node = 0; node < 3; node++) {
        streams.add(WatchChecker.open(cluster.endpoint(node), gapVersion));
      }
      for (WatchChecker s : streams) {
        s.awaitVersion(current, T);
      }
      long next = writer.write();
      for (WatchChecker s : streams) {
        s.awaitVersion(next, T);
        s.assertHolds(s.checkOneFullMap(current));
        s.assertContract();
        assertEquals(2, s.mapEvents().size(), s.summary());
        assertEquals(admin.getMap(next), s.image());
      }
    } finally {
      streams.forEach(WatchChecker::close);
    }
  }

  /**
   * A cursor between two versions that is at or past the node's current map version, with
   * {@code nearest} (what {@code plbctl watch --from} sends): nothing is due yet; once the next
   * change commits, it comes as a delta, not a full map. The map at the cursor is the map at the
   * current version, which is that delta's {@code prev_version}.
   */
  @Test
  @Order(7)
  void nearestCursorAtTheHeadGetsTheNextChangeAsADelta() throws Exception {
    use(Kind.MAIN);
    long a = writer.write();
    admin.setBalancerPaused(true, "watch contract"); // a log entry that is no map version
    admin.setBalancerPaused(false, "watch contract");
    MapPublisher node = cluster.node(1).publisher();
    TestCluster.await(T, "node 1 applies the pause entries", () -> node.appliedIndex() >= a + 2);
    assertEquals(a, node.image().version(), "the pause entries made no map version");
    long cursor = node.appliedIndex();
    ManagedChannel channel = NettyChannelBuilder.forTarget(cluster.endpoint(1)).usePlaintext()
        .build();
    try {
      java.util.Iterator<WatchMapResponse> it = MapServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(T.toMillis(), TimeUnit.MILLISECONDS)
          .watchMap(io.plb.proto.v1.WatchMapRequest.newBuilder().setAfterVersion(cursor)
              .setNearest(true).build());
      // The stream's first pull finds nothing due (a bookmark shows it is open), then the change.
      WatchMapResponse first = it.next();
      assertEquals(EventCase.PROGRESS, first.getEventCase(), first.toString());
      long v = writer.write();
      WatchMapResponse r = it.next();
      while (r.getEventCase() == EventCase.PROGRESS) {
        r = it.next();
      }
      assertEquals(EventCase.DELTA, r.getEventCase(), "a delta, not a full map: " + r);
      assertEquals(v, r.getDelta().getVersion());
      assertEquals(a, r.getDelta().getPrevVersion());
    } finally {
      close(channel);
    }
  }

  /** Stops the leader, writes through the new one, restarts the old one; records the gap. */
  private static void makeGapByLeaderChange() throws IOException {
    long before = writer.write();
    int leader = cluster.awaitLeader(T);
    cluster.stopNode(leader);
    long v = writer.write();
    cluster.startNode(leader);
    cluster.awaitAllApplied(v, T);
    assertTrue(v > before + 1, "a new leader's entry between " + before + " and " + v);
    gapVersion = v - 1;
  }

  // ================================================================== history of 5 deltas

  /**
   * One full map after a gap, for a cursor older than the node's history (watch.historyEntries =
   * 5): exactly one full map at the node's current version, then deltas. The oldest cursor a node
   * can continue from is the prev_version of its oldest kept delta; one version earlier is too old.
   */
  @Test
  @Order(8)
  void cursorOlderThanHistoryGetsOneFullMap() throws Exception {
    use(Kind.SMALL_HISTORY);
    List<Long> writes = writer.write(20);
    long current = writer.last();
    cluster.awaitAllApplied(current, T);
    long early = writes.get(0);
    List<WatchChecker> streams = new ArrayList<>();
    try {
      for (int node = 0; node < 3; node++) {
        assertEquals(current, cluster.node(node).image().version());
        streams.add(WatchChecker.open(cluster.endpoint(node), early));
      }
      for (WatchChecker s : streams) {
        s.awaitVersion(current, T);
      }
      List<Long> more = writer.write(3);
      ClusterImage expected = admin.getMap(writer.last());
      for (WatchChecker s : streams) {
        s.awaitVersion(writer.last(), T);
        s.assertHolds(s.checkOneFullMap(current));
        s.assertHolds(s.checkAtomic(more));
        s.assertContract();
        assertEquals(1 + more.size(), s.mapEvents().size(), s.summary());
        assertEquals(expected, s.image());
      }

      // The edge of the history, on a follower.
      cluster.awaitAllApplied(writer.last(), T);
      int node = (cluster.awaitLeader(T) + 1) % 3;
      MapPublisher publisher = cluster.node(node).publisher();
      assertEquals(5, publisher.historySize());
      List<Long> all = writer.versions;
      int oldest = all.indexOf(publisher.oldestRetainedVersion());
      assertTrue(oldest >= 2, "oldest kept delta " + publisher.oldestRetainedVersion());
      long edge = all.get(oldest - 1);
      long tooOld = all.get(oldest - 2);
      try (WatchChecker resumed = WatchChecker.open(cluster.endpoint(node), edge);
          WatchChecker reset = WatchChecker.open(cluster.endpoint(node), tooOld)) {
        resumed.awaitVersion(writer.last(), T);
        reset.awaitVersion(writer.last(), T);
        resumed.assertHolds(resumed.checkResumable());
        assertEquals(5, resumed.mapEvents().size(), resumed.summary());
        reset.assertHolds(reset.checkOneFullMap(writer.last()));
        assertEquals(1, reset.mapEvents().size(), reset.summary());
      }
    } finally {
      streams.forEach(WatchChecker::close);
    }
  }

  // ================================================================== history 50, 2 watchers

  /**
   * Back-pressure: a subscriber that reads one message and then nothing while 300 writes commit
   * holds no queue on the node (it is left behind the 50-delta history); when it reads again it
   * gets a full map and chaining deltas up to the final version. Meanwhile the node serves other
   * watchers, reads and health checks as usual.
   */
  @Test
  @Order(9)
  void slowWatcherHoldsNoQueue() throws Exception {
    use(Kind.LIMITS);
    writer.write(2);
    int node = (cluster.awaitLeader(T) + 1) % 3;
    cluster.awaitAllApplied(writer.last(), T);
    // A 16 KiB flow-control window: the node can buffer the window, gRPC's 32 KiB ready threshold
    // and one pull of at most 64 deltas; of these deltas (about 700 bytes with their cause) that
    // is far fewer than the 250 that would keep the slow stream inside the 50-delta history.
    try (WatchChecker slow = WatchChecker.openSlow(cluster.endpoint(node), 0, 1, 16 * 1024);
        WatchChecker normal = WatchChecker.open(cluster.endpoint(node), 0)) {
      WatchChecker.Event first = slow.awaitEvent(T, "the first map",
          e -> e.kind() == EventCase.FULL_MAP);
      assertEquals(writer.last(), first.version());
      normal.awaitVersion(writer.last(), T);
      long startedAt = writer.last();
      List<Long> writes = new ArrayList<>();
      for (int i = 0; i < 300; i++) {
        writes.add(writer.heavyWrite());
      }
      long last = writer.last();

      // The node stays healthy: other watchers keep up, reads and health checks answer.
      normal.awaitVersion(last, T);
      normal.assertContract();
      normal.assertHolds(normal.checkAtomic(writes));
      assertEquals(1, slow.events().size(), "the slow subscriber asked for one message");
      assertNull(slow.terminal());
      assertEquals(2, cluster.node(node).watcherCount());
      ManagedChannel c = channel(node);
      try {
        assertEquals(HealthCheckResponse.ServingStatus.SERVING,
            HealthGrpc.newBlockingStub(c).withDeadlineAfter(5, TimeUnit.SECONDS)
                .check(HealthCheckRequest.getDefaultInstance()).getStatus());
        assertEquals(last, MapServiceGrpc.newBlockingStub(c).withDeadlineAfter(5, TimeUnit.SECONDS)
            .getMap(GetMapRequest.newBuilder().setMinVersion(last).build()).next()
            .getVersion());
      } finally {
        close(c);
      }

      slow.request(Integer.MAX_VALUE);
      slow.awaitVersion(last, T);
      slow.assertContract();
      assertNull(slow.terminal(), "the slow stream is still open");
      assertEquals(admin.getMap(last), slow.image(), "the slow subscriber ends consistent");
      List<WatchChecker.Event> maps = slow.mapEvents();
      int deltasBeforeReset = 0;
      for (int i = 1; i < maps.size() && maps.get(i).kind() == EventCase.DELTA; i++) {
        deltasBeforeReset++;
      }
      assertEquals(2, slow.fullMaps(), "left behind the history, the slow subscriber gets a "
          + "full map instead of 300 queued deltas: " + slow.summary());
      assertTrue(deltasBeforeReset < 300 - 50,
          "the node buffered only what the stream could take: " + deltasBeforeReset);
      WatchChecker.Event reset = maps.get(1 + deltasBeforeReset);
      assertEquals(EventCase.FULL_MAP, reset.kind());
      assertTrue(reset.version() > startedAt && reset.version() <= last);
      System.out.printf("slow watcher: %d deltas buffered, then a full map at %d, then %d deltas%n",
          deltasBeforeReset, reset.version(), maps.size() - deltasBeforeReset - 2);
    }
  }

  /**
   * The watcher limit: with watch.maxWatchers = 2, a third concurrent stream on one node fails
   * with RESOURCE_EXHAUSTED naming the limit; a closed stream frees its place.
   */
  @Test
  @Order(10)
  void watcherLimit() throws Exception {
    use(Kind.LIMITS);
    int node = 0;
    TestCluster.await(T, "no watchers on node 0", () -> cluster.node(node).watcherCount() == 0);
    WatchChecker a = WatchChecker.open(cluster.endpoint(node), 0);
    try (WatchChecker b = WatchChecker.open(cluster.endpoint(node), 0)) {
      a.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
      b.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
      try (WatchChecker c = WatchChecker.open(cluster.endpoint(node), 0)) {
        Status s = c.awaitTerminal(T);
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
        assertTrue(s.getDescription().contains("watch.maxWatchers")
            && s.getDescription().contains("2 watch streams"), s.getDescription());
        assertTrue(c.events().isEmpty());
      }
      assertEquals(2, cluster.node(node).watcherCount());
      a.close();
      TestCluster.await(T, "a freed place", () -> cluster.node(node).watcherCount() == 1);
      try (WatchChecker d = WatchChecker.open(cluster.endpoint(node), 0);
          WatchChecker other = WatchChecker.open(cluster.endpoint(1), 0)) {
        d.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
        other.awaitEvent(T, "a full map", e -> e.kind() == EventCase.FULL_MAP);
        long v = writer.write();
        b.awaitVersion(v, T);
        d.awaitVersion(v, T);
        for (WatchChecker w : List.of(b, d, other)) {
          w.assertContract();
        }
      }
    } finally {
      a.close();
    }
  }

  private static List<Long> concat(List<Long> a, List<Long> b) {
    List<Long> out = new ArrayList<>(a);
    out.addAll(b);
    return out;
  }
}
