package io.plb.client.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.client.Endpoints;
import io.plb.client.router.TestMaps;
import io.plb.client.wire.MapChunks;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.Progress;
import io.plb.proto.v1.WatchMapRequest;
import io.plb.proto.v1.WatchMapResponse;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A {@link MapWatcher} against a node whose streams the test scripts, chunk by chunk: a stream
 * that breaks between chunks leaves the watcher on the map it had, and a chunk that does not
 * continue its map, or anything between chunks, is a broken contract.
 */
class MapWatcherChunksTest {
  private static final Duration T = Duration.ofSeconds(10);
  private static final int PER_CHUNK = 3;

  /** One scripted stream: what it sends, given the request; null ends it with UNAVAILABLE. */
  private final ConcurrentLinkedQueue<Function<WatchMapRequest, List<WatchMapResponse>>> scripts =
      new ConcurrentLinkedQueue<>();
  private final List<WatchMapRequest> requests = new CopyOnWriteArrayList<>();
  private Server server;
  private Endpoints endpoints;

  @BeforeEach
  void start() throws Exception {
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new MapServiceGrpc.MapServiceImplBase() {
          @Override
          public void watchMap(WatchMapRequest request, StreamObserver<WatchMapResponse> o) {
            requests.add(request);
            Function<WatchMapRequest, List<WatchMapResponse>> script = scripts.poll();
            if (script == null) {
              return; // no more scripts: the stream stays open and silent
            }
            List<WatchMapResponse> out = script.apply(request);
            for (WatchMapResponse r : out) {
              if (r == null) {
                o.onError(Status.UNAVAILABLE.withDescription("cut").asRuntimeException());
                return;
              }
              o.onNext(r);
            }
          }
        })
        .build().start();
    endpoints = new Endpoints(List.of("127.0.0.1:" + server.getPort()));
  }

  @AfterEach
  void stop() throws Exception {
    endpoints.close();
    server.shutdownNow().awaitTermination();
  }

  private static ClusterImage image(long version, int ranges) {
    List<QueueServerInfo> servers = List.of(
        new QueueServerInfo("q1", "127.0.0.1:9001", 1.0, ServerState.ACTIVE),
        new QueueServerInfo("q2", "127.0.0.1:9002", 1.0, ServerState.ACTIVE));
    List<RangeEntry> list = new ArrayList<>();
    long step = Long.divideUnsigned(-1L, ranges);
    for (int i = 0; i < ranges; i++) {
      list.add(TestMaps.owned(i * step, i + 1 == ranges ? 0L : (i + 1) * step,
          i % 2 == 0 ? "q1" : "q2", 1));
    }
    return ClusterImage.of(version, list, servers);
  }

  private static List<WatchMapResponse> chunks(ClusterImage image) {
    List<WatchMapResponse> out = new ArrayList<>();
    for (int i = 0; i < MapChunks.chunkCount(image, PER_CHUNK); i++) {
      out.add(full(MapChunks.chunk(image, PER_CHUNK, i)));
    }
    return out;
  }

  private static WatchMapResponse full(MapSnapshot chunk) {
    return WatchMapResponse.newBuilder().setFullMap(chunk).build();
  }

  @Test
  void aStreamBrokenBetweenChunksLeavesThePreviousMap() throws Exception {
    ClusterImage a = image(10, 8);
    ClusterImage b = image(20, 12);
    List<WatchMapResponse> bChunks = chunks(b);
    List<Long> imageAtReconnect = new CopyOnWriteArrayList<>();
    List<ClusterImage> seen = new CopyOnWriteArrayList<>();
    try (MapWatcher w = new MapWatcher(endpoints, (image, delta) -> seen.add(image))) {
      scripts.add(req -> {
        List<WatchMapResponse> out = new ArrayList<>(chunks(a));
        out.addAll(bChunks.subList(0, 2)); // two of B's four chunks, then the stream breaks
        out.add(null);
        return out;
      });
      scripts.add(req -> {
        imageAtReconnect.add(w.image().version());
        return bChunks;
      });
      w.start();
      TestMaps.until(() -> w.image() != null && w.image().version() == 20, T, "map 20");
      assertEquals(List.of(a, b), seen, "each map whole, nothing of the broken one");
      assertEquals(List.of(10L), imageAtReconnect, "on map 10 while reconnecting");
      assertEquals(List.of(0L, 10L),
          requests.stream().map(WatchMapRequest::getAfterVersion).toList());
      assertEquals(b, w.image());
      assertEquals(0, w.contractViolations());
      assertEquals(chunks(a).size() + 2 + bChunks.size(), w.chunksReceived());
    }
  }

  @Test
  void aChunkThatDoesNotContinueItsMapIsABrokenContract() throws Exception {
    ClusterImage a = image(10, 8);
    List<WatchMapResponse> aChunks = chunks(a);
    List<WatchMapResponse> bChunks = chunks(image(20, 8));
    WatchMapResponse progress = WatchMapResponse.newBuilder()
        .setProgress(Progress.newBuilder().setVersion(10)).build();
    List<ClusterImage> seen = new CopyOnWriteArrayList<>();
    try (MapWatcher w = new MapWatcher(endpoints, (image, delta) -> seen.add(image))) {
      scripts.add(req -> List.of(aChunks.get(0), aChunks.get(2))); // skips chunk 1
      scripts.add(req -> List.of(aChunks.get(0), bChunks.get(1))); // another version
      scripts.add(req -> List.of(aChunks.get(1)));                 // not from chunk 0
      scripts.add(req -> List.of(aChunks.get(0), progress));       // between chunks
      scripts.add(req -> aChunks);
      w.start();
      TestMaps.until(() -> w.image() != null, T, "a map");
      assertEquals(4, w.contractViolations());
      assertEquals(List.of(a), seen);
      assertEquals(5, requests.size());
      assertTrue(requests.stream().allMatch(r -> r.getAfterVersion() == 0),
          "no map was taken from a broken stream");
    }
  }

  @Test
  void aWatcherWithoutAMapShowsNoneUntilTheLastChunk() throws Exception {
    ClusterImage a = image(10, 20);
    List<WatchMapResponse> aChunks = chunks(a);
    try (MapWatcher w = new MapWatcher(endpoints, (image, delta) -> { })) {
      scripts.add(req -> aChunks.subList(0, aChunks.size() - 1));
      w.start();
      TestMaps.until(() -> w.chunksReceived() == aChunks.size() - 1, T, "all but the last");
      assertNull(w.image());
      assertEquals(0, w.contractViolations());
    }
  }

  /**
   * A listener that throws is contained: the watcher stays on its stream (no reconnect, no node
   * switch) and the listener hears the next map. Before, the exception reached gRPC, which
   * cancelled the stream, and the watcher reconnected as if the node had failed.
   */
  @Test
  void aListenerThatThrowsLeavesTheWatcherOnItsStream() throws Exception {
    ClusterImage a = image(10, 8);
    ClusterImage b = image(20, 8);
    List<Long> seen = new CopyOnWriteArrayList<>();
    try (MapWatcher w = new MapWatcher(endpoints, (image, delta) -> {
      seen.add(image.version());
      if (image.version() == 10) {
        throw new IllegalStateException("listener failure on purpose");
      }
    })) {
      scripts.add(req -> {
        List<WatchMapResponse> out = new ArrayList<>(chunks(a));
        out.addAll(chunks(b));
        return out;
      });
      w.start();
      TestMaps.until(() -> seen.contains(20L), T, "map 20 heard");
      assertEquals(List.of(10L, 20L), seen);
      assertEquals(1, w.listenerFailures());
      assertEquals(1, requests.size(), "one stream, never reconnected: " + requests);
      assertEquals(0, w.reconnects());
      assertEquals(b, w.image());
    }
  }
}
