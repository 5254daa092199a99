package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.Endpoints;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.agent.HandoverStore;
import io.plb.client.agent.QueueServerAgent;
import io.plb.client.router.Router;
import io.plb.client.watch.MapWatcher;
import io.plb.client.wire.MapChunks;
import io.plb.core.error.ErrorCode;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.StoredMessage;
import io.plb.server.testing.CuttableProxy;
import io.plb.server.testing.LargeMaps;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * A map of 1,000,000 ranges on a real PLB node (Ratis, RocksDB, gRPC), built through the state
 * machine with splits into equal pieces (503 map changes), then read whole by clients that start
 * fresh: a {@link MapWatcher}, {@code GetMap}, a {@link Router} that routes keys by it, and a
 * {@link QueueServerAgent}. The full map (29 MB on the wire) is far over the 4 MiB a client takes
 * in one message, so it reaches them only in chunks; a watch stream cut between chunks leaves the
 * watcher without a map until a whole one has come on its next stream.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LargeMapTest {
  /** One node: the map is built in one replica, which keeps the test within CI's time. */
  private static final int NODES = 1;
  private static final int TOP_PIECES = 250;
  private static final int PIECES = 4000;
  private static final int RANGES = TOP_PIECES * PIECES;
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir static Path dir;
  static TestCluster cluster;
  static PlbAdminClient admin;
  static long version;

  @BeforeAll
  static void build() throws Exception {
    cluster = TestCluster.start(dir, NODES, Map.of(
        "watch.historyEntries", "20",
        "map.maxSplitPieces", Integer.toString(PIECES)));
    cluster.awaitLeader(Duration.ofSeconds(20));
    admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
        .deadline(Duration.ofSeconds(30)).build();
    admin.registerServer("q1", "127.0.0.1:9001", null);
    admin.registerServer("q2", "127.0.0.1:9002", null);
    long started = System.nanoTime();
    version = LargeMaps.build(admin, List.of("q1", "q2"), TOP_PIECES, PIECES);
    cluster.awaitAllApplied(version, T);
    System.out.printf("built a map of %,d ranges in %d ms (version %d)%n",
        cluster.node(0).publisher().image().rangeCount(),
        (System.nanoTime() - started) / 1_000_000, version);
  }

  @AfterAll
  static void stop() {
    if (admin != null) {
      admin.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  private static ClusterImage leaderImage() {
    return cluster.node(cluster.awaitLeader(T)).publisher().image();
  }

  @Test
  @Order(1)
  void theMapHasAMillionRanges() {
    ClusterImage image = leaderImage();
    assertEquals(RANGES, image.rangeCount());
    assertEquals(version, image.version());
    for (int i = 0; i < cluster.size(); i++) {
      assertEquals(image, cluster.node(i).publisher().image(), "replica " + i);
    }
  }

  @Test
  @Order(2)
  void splitsIntoPiecesAreValidatedAndRefusedOnesChangeNothing() {
    long start = leaderImage().range(7).start();
    PlbClientException tooMany = assertThrows(PlbClientException.class,
        () -> admin.splitEvenly(start, PIECES + 1));
    assertEquals(ErrorCode.RESOURCE_EXHAUSTED, tooMany.code());
    assertTrue(tooMany.getMessage().contains("map.maxSplitPieces"), tooMany.getMessage());
    PlbClientException one = assertThrows(PlbClientException.class,
        () -> admin.splitEvenly(start, 1));
    assertEquals(ErrorCode.INVALID_ARGUMENT, one.code());
    PlbClientException nowhere = assertThrows(PlbClientException.class,
        () -> admin.splitEvenly(start + 1, 2));
    assertEquals(ErrorCode.NOT_FOUND, nowhere.code());
    assertEquals(version, leaderImage().version(), "refused splits change nothing");
    assertEquals(version, admin.getMap(0).version());
  }

  @Test
  @Order(3)
  void aFreshWatcherGetsTheWholeMap() throws Exception {
    List<ClusterImage> seen = new CopyOnWriteArrayList<>();
    Runtime rt = Runtime.getRuntime();
    System.gc();
    long heapBefore = rt.totalMemory() - rt.freeMemory();
    long started = System.nanoTime();
    try (Endpoints eps = new Endpoints(cluster.endpoints());
        MapWatcher watcher = new MapWatcher(eps, (image, delta) -> seen.add(image)).start()) {
      assertTrue(watcher.awaitFirstMap(T.toSeconds(), TimeUnit.SECONDS),
          "no map within " + T.toSeconds() + " s");
      long millis = (System.nanoTime() - started) / 1_000_000;
      System.gc();
      long heapAfter = rt.totalMemory() - rt.freeMemory();
      System.out.printf("a fresh watcher got %,d ranges in %d ms over %d chunks; heap +%d MB%n",
          watcher.image().rangeCount(), millis, watcher.chunksReceived(),
          (heapAfter - heapBefore) >> 20);
      assertEquals(leaderImage(), watcher.image());
      assertEquals(1, seen.size(), "one map, given whole");
      assertEquals(0, watcher.contractViolations());
      assertTrue(watcher.chunksReceived() > 1, "the map came in chunks");
    }
  }

  @Test
  @Order(4)
  void aFreshReaderGetsTheWholeMap() {
    long started = System.nanoTime();
    ClusterImage image = admin.getMap(version);
    System.out.printf("GetMap read %,d ranges in %d ms%n", image.rangeCount(),
        (System.nanoTime() - started) / 1_000_000);
    assertEquals(leaderImage(), image);
  }

  @Test
  @Order(5)
  void aFreshRouterRoutesByIt() throws Exception {
    ClusterImage expected = leaderImage();
    long started = System.nanoTime();
    try (Router router = Router.start(cluster.endpoints())) {
      assertTrue(router.awaitVersion(version, T), "router reached " + router.version());
      System.out.printf("a fresh router could route by it after %d ms%n",
          (System.nanoTime() - started) / 1_000_000);
      for (int k = 0; k < 1000; k++) {
        byte[] key = ("customer-" + k).getBytes(StandardCharsets.UTF_8);
        RangeEntry r = expected.rangeFor(KeyHash.hash(key));
        assertEquals(r.owner(), router.route(key).owner(), "key " + k);
        assertEquals(r.owner().equals("q1") ? "127.0.0.1:9001" : "127.0.0.1:9002",
            router.route(key).address());
      }
      assertEquals(0, router.contractViolations());
    }
  }

  @Test
  @Order(6)
  void aFreshQueueServerAgentGetsIt() {
    long started = System.nanoTime();
    try (QueueServerAgent agent = QueueServerAgent.builder("q1", new EmptyStore())
        .plbEndpoints(cluster.endpoints()).build().start()) {
      TestCluster.await(T, "the agent at version " + version, () -> agent.version() == version);
      System.out.printf("a fresh agent had it after %d ms%n",
          (System.nanoTime() - started) / 1_000_000);
      assertEquals(leaderImage(), agent.image());
    }
  }

  /**
   * The connection of a fresh watcher to its first node is cut after the first chunks: the
   * watcher shows no map (never a part of one), and gets the whole map from the next node, from
   * its first chunk. Only one map reaches the listener.
   */
  @Test
  @Order(7)
  void aStreamBrokenBetweenChunksLeavesNoPartialMap() throws Exception {
    ClusterImage expected = leaderImage();
    int chunks = MapChunks.chunkCount(expected, cluster.config(0).chunkEntries());
    List<ClusterImage> seen = new CopyOnWriteArrayList<>();
    List<MapDelta> deltas = new CopyOnWriteArrayList<>();
    try (CuttableProxy proxy = new CuttableProxy(cluster.endpoint(0));
        Endpoints eps = new Endpoints(List.of(proxy.address(), cluster.endpoint(0)));
        MapWatcher watcher = new MapWatcher(eps, (image, delta) -> {
          seen.add(image);
          deltas.add(delta == null ? EMPTY : delta);
        })) {
      watcher.start();
      TestCluster.await(T, "the first chunks", () -> watcher.chunksReceived() > 0);
      proxy.cut();
      assertNull(watcher.image(), "no map before its last chunk");
      assertTrue(seen.isEmpty());
      assertTrue(watcher.awaitFirstMap(T.toSeconds(), TimeUnit.SECONDS));
      assertEquals(expected, watcher.image());
      assertEquals(1, seen.size(), "one map, given whole");
      assertEquals(EMPTY, deltas.get(0), "a full map");
      assertTrue(watcher.reconnects() >= 1);
      // The chunks of the broken stream were dropped; the next stream began at chunk 0 (any
      // other first chunk would be a contract violation).
      assertTrue(watcher.chunksReceived() > chunks,
          watcher.chunksReceived() + " chunks for a map of " + chunks);
      assertEquals(0, watcher.contractViolations());
    }
  }

  private static final MapDelta EMPTY =
      new MapDelta(0, 0, List.of(), List.of(), List.of(), List.of(), "");

  /** A queue server's store that holds nothing: the agent takes part in no handover here. */
  private static final class EmptyStore implements HandoverStore {
    public long backlog(long start, long end) {
      return 0;
    }

    public Chunk readChunk(long r, long e, List<Buffer> b, byte[] cursor, int max,
        long maxBytes) {
      return new Chunk(List.of(), cursor, true);
    }

    public Progress transferProgress(long r, long e, Buffer into) {
      return Progress.NONE;
    }

    public void forgetTransfers(long r, long e) {}

    public void storeChunk(long r, long e, Buffer into, List<StoredMessage> m, Progress p) {}

    public void release(long r, long e, List<Buffer> b) {}

    public void discard(long r, long e, List<Buffer> b) {}

    public List<BufferedHandover> bufferedHandovers() {
      return List.of();
    }

    public java.util.OptionalLong nextQueuedHash(long from) {
      return java.util.OptionalLong.empty();
    }

    public List<Held> buffered(long rangeStart, long handoverEpoch, int max,
        long maxBytes) {
      return List.of();
    }

    public List<Held> queued(long start, long end, int max, long maxBytes) {
      return List.of();
    }

    public void drop(List<Held> copies) {}

    public void requeueLate(List<Held> copies) {}

    public void queueLate(List<StoredMessage> m, String fromServer, byte[] receipt) {}

    public byte[] lateReceipt(String fromServer) {
      return new byte[0];
    }

    public void saveAgentState(byte[] state) {}

    public byte[] loadAgentState() {
      return new byte[0];
    }

    public int markQueuedLate(long start, long end) {
      return 0;
    }

    public List<io.plb.proto.v1.ProducerSequence> sequencesIn(long start, long end) {
      return List.of();
    }

    public void mergeSequences(List<io.plb.proto.v1.ProducerSequence> sequences,
        long rangeStart, long handoverEpoch, Buffer buffer) {}
  }
}
