package io.plb.client.watch;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.plb.client.Endpoints;
import io.plb.client.wire.MapChunks;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.WatchMapRequest;
import io.plb.proto.v1.WatchMapResponse;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Subscribes to the shard map of a PLB cluster and keeps the latest image, failing over between
 * nodes: when a stream ends, it reconnects to the next node and resumes after the last version it
 * has, so a subscriber sees every version in order with no gap and never a version go backwards
 * (docs/watch-contract.md). A delta that does not follow the current version is a broken contract:
 * it is counted, logged, and the watcher asks for a full map.
 *
 * <p>A full map comes in chunks ({@link MapChunks}); the watcher gathers them per stream and
 * takes the map only with its last chunk, so a subscriber never sees part of a map. A stream that
 * breaks between chunks leaves the watcher on the map it had; it resumes after that map's
 * version, and a full map then starts again from its first chunk. A chunk that does not continue
 * the map (another version, out of order), or a delta or bookmark between chunks, is a broken
 * contract like a delta that does not follow.
 *
 * <p>A subscriber that learns of a newer version elsewhere (a queue server from its lease grant,
 * a router from a refusal) tells the watcher ({@link #expect}); a stream that has not brought it
 * within {@link #BEHIND_LIMIT_MILLIS} is taken for a silent node — one cut off so that its
 * packets are dropped, which neither side notices for the keep-alive's 50 s — and the watcher
 * moves to the next node.
 *
 * <p>Thread model: stream callbacks arrive on gRPC threads, one stream at a time; the listener is
 * called on those threads, in version order, never concurrently, under the watcher's lock. So
 * {@link #expect} and {@link #image()}, which may be called from any thread holding any lock
 * (a listener takes its subscriber's lock; that subscriber calls {@code expect} under the same
 * lock), never take the watcher's lock. A listener that throws is logged and counted ({@link #listenerFailures}); the
 * watcher stays on its stream and goes on with the next version. It does not repeat the version:
 * the listener had it and may have acted on part of it, so recovering is the listener's own
 * business (the queue server agent's resend round recomputes what is owed). Before, the
 * exception went to gRPC, which cancelled the stream, and the watcher switched node as if the
 * node had failed — and still resumed after that version.
 */
public final class MapWatcher implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(MapWatcher.class);

  /** What a subscriber is told. */
  public interface Listener {
    /**
     * A new image. {@code delta} is the change that led to it, or null when a full map replaced
     * everything (first subscription, or after falling behind the node's history).
     */
    void onMap(ClusterImage image, MapDelta delta);

    /** A progress event: the node has nothing newer than {@code version}. */
    default void onProgress(long version) {}
  }

  private final Endpoints endpoints;
  private final Listener listener;
  private final ScheduledExecutorService reconnector;
  private final Object lock = new Object();
  private final CountDownLatch firstMap = new CountDownLatch(1);
  private volatile ClusterImage image;
  private volatile boolean closed;
  private volatile String connectedTo;
  private int endpointIndex;
  private int failures;
  private long contractViolations;
  private long listenerFailures;
  private long reconnects;
  private long chunksReceived;
  private long floor;
  private long belowFloor;
  private Context.CancellableContext current;
  /** A version known to exist that the image has not reached, and since when (nanos); 0: none. */
  private long expected;
  private long expectedSince;
  /** Times how long the image stays behind an expected version. */
  private final Ticker ticker = Ticker.SYSTEM;
  /** The highest version {@link #expect} was told of (read and raised without the lock). */
  private final java.util.concurrent.atomic.AtomicLong announced =
      new java.util.concurrent.atomic.AtomicLong();
  private boolean behindCheckScheduled;
  private long behindSwitches;

  /** How long the image may stay behind a version known to exist before the node is left. */
  public static final long BEHIND_LIMIT_MILLIS = 2_000;

  public MapWatcher(Endpoints endpoints, Listener listener) {
    this.endpoints = endpoints;
    this.listener = listener;
    this.reconnector = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "plb-map-watcher");
      t.setDaemon(true);
      return t;
    });
  }

  /** Starts watching from scratch (a full map first). */
  public MapWatcher start() {
    return start(0);
  }

  /**
   * Starts watching from scratch, taking no map older than {@code floor}: a full map below it
   * (from a node that is behind) is refused and another node asked, as for a map older than the
   * current one. For a subscriber that restarts having acted on version {@code floor} already —
   * a queue server's agent, whose persisted handover state reflects that version.
   */
  public MapWatcher start(long floor) {
    if (floor < 0) {
      throw new IllegalArgumentException("floor must be at least 0");
    }
    synchronized (lock) {
      this.floor = floor;
    }
    reconnector.execute(this::connect);
    return this;
  }

  /**
   * Version {@code version} exists (a leader named it): if the image has not reached it within
   * {@link #BEHIND_LIMIT_MILLIS}, the node being watched is left for the next one. Cheap; call it
   * as often as such versions are seen.
   */
  public void expect(long version) {
    ClusterImage i = image;
    if (closed || i != null && i.version() >= version) {
      return;
    }
    // Never takes the lock: callers hold their own locks here (a producer handling an answer, an
    // agent handling a lease grant), and this watcher calls their map listeners under its lock.
    if (announced.getAndAccumulate(version, Math::max) < version) {
      try {
        reconnector.execute(() -> noteExpected(version));
      } catch (java.util.concurrent.RejectedExecutionException e) {
        // closing
      }
    }
  }

  /** {@link #expect}, on the watcher's own thread. */
  private void noteExpected(long version) {
    synchronized (lock) {
      if (closed || image != null && image.version() >= version || version <= expected) {
        return;
      }
      if (expected == 0 || image != null && image.version() >= expected) {
        expectedSince = ticker.nanos();
      }
      expected = version;
      if (!behindCheckScheduled) {
        behindCheckScheduled = true;
        scheduleBehindCheck(BEHIND_LIMIT_MILLIS);
      }
    }
  }

  /** Times the watcher left a node whose stream stayed behind a version known to exist. */
  public long behindSwitches() {
    synchronized (lock) {
      return behindSwitches;
    }
  }

  private void scheduleBehindCheck(long delayMillis) {
    try {
      reconnector.schedule(this::checkBehind, delayMillis, TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing
    }
  }

  private void checkBehind() {
    synchronized (lock) {
      behindCheckScheduled = false;
      if (closed || expected == 0 || image != null && image.version() >= expected) {
        expected = 0;
        return;
      }
      long waited = (ticker.nanos() - expectedSince) / 1_000_000L;
      if (waited >= BEHIND_LIMIT_MILLIS) {
        behindSwitches++;
        LOG.warn("map {} exists but {} has not sent it in {} ms (at {}); switching node",
            expected, connectedTo == null ? "no node" : connectedTo, waited,
            image == null ? 0 : image.version());
        expectedSince = ticker.nanos();
        restart(true);
      }
      behindCheckScheduled = true;
      scheduleBehindCheck(Math.max(100, BEHIND_LIMIT_MILLIS - Math.min(waited,
          BEHIND_LIMIT_MILLIS)));
    }
  }

  /** Full maps refused for being older than the floor given at start. */
  public long belowFloor() {
    synchronized (lock) {
      return belowFloor;
    }
  }

  /** The latest image, or null before the first map arrived. */
  public ClusterImage image() {
    return image;
  }

  /** Waits until the first map has arrived. */
  public boolean awaitFirstMap(long timeout, TimeUnit unit) throws InterruptedException {
    return firstMap.await(timeout, unit);
  }

  /** The node the watcher is connected to now, or null. */
  public String connectedTo() {
    return connectedTo;
  }

  public long reconnects() {
    synchronized (lock) {
      return reconnects;
    }
  }

  /** Full-map chunks received, on every stream so far (a whole map in one message counts 1). */
  public long chunksReceived() {
    synchronized (lock) {
      return chunksReceived;
    }
  }

  /**
   * Broken contracts seen (should stay 0): deltas that did not follow the current version, full
   * maps older than the current one, chunks that did not continue their map.
   */
  public long contractViolations() {
    synchronized (lock) {
      return contractViolations;
    }
  }

  /** Listener calls that threw (logged; the watcher went on). */
  public long listenerFailures() {
    synchronized (lock) {
      return listenerFailures;
    }
  }

  /** Calls the listener about {@code version}; what it throws is logged, counted and contained. */
  private void tell(Runnable call, long version) {
    try {
      call.run();
    } catch (RuntimeException e) {
      listenerFailures++;
      LOG.error("map listener failed on version {} ({} failure(s) so far); watching on", version,
          listenerFailures, e);
    }
  }

  private void connect() {
    if (closed) {
      return;
    }
    String address;
    long after;
    Context.CancellableContext ctx;
    synchronized (lock) {
      address = endpoints.get(endpointIndex);
      after = image == null ? 0 : image.version();
      ctx = Context.current().withCancellation();
      current = ctx;
    }
    WatchMapRequest request = WatchMapRequest.newBuilder().setAfterVersion(after).build();
    MapServiceGrpc.MapServiceStub stub = MapServiceGrpc.newStub(endpoints.channel(address));
    ctx.run(() -> stub.watchMap(request, new Observer(address, ctx)));
  }

  private final class Observer implements StreamObserver<WatchMapResponse> {
    private final String address;
    private final Context.CancellableContext ctx;
    /** The chunks of a full map gathered on this stream; dropped with the stream. */
    private final MapChunks.Assembly assembly = new MapChunks.Assembly();

    Observer(String address, Context.CancellableContext ctx) {
      this.address = address;
      this.ctx = ctx;
    }

    @Override
    public void onNext(WatchMapResponse r) {
      synchronized (lock) {
        if (closed || current != ctx) {
          return;
        }
        connectedTo = address;
        failures = 0;
        if (assembly.inProgress() && r.getEventCase() != WatchMapResponse.EventCase.FULL_MAP) {
          contractViolations++;
          LOG.warn("node {} sent {} between the chunks of a full map; trying another node",
              address, r.getEventCase());
          restart(true);
          return;
        }
        switch (r.getEventCase()) {
          case FULL_MAP -> {
            chunksReceived++;
            ClusterImage next;
            try {
              next = assembly.add(r.getFullMap());
            } catch (IllegalStateException e) {
              contractViolations++;
              LOG.warn("node {} sent a broken full map ({}); trying another node", address,
                  e.getMessage());
              restart(true);
              return;
            }
            if (next == null) {
              return; // more chunks to come
            }
            if (image != null && next.version() == image.version()) {
              // Resubscribing at version 0 (a cluster with no writes yet) repeats the same map.
              firstMap.countDown();
              return;
            }
            if (image == null && next.version() < floor) {
              // Not a broken contract: this node is behind what we acted on before a restart.
              belowFloor++;
              LOG.warn("node {} sent map {}, older than {} which this subscriber had acted on "
                  + "before; trying another node", address, next.version(), floor);
              restart(true);
              return;
            }
            if (image != null && next.version() < image.version()) {
              // A node behind the last one we used: never go back; try another node.
              contractViolations++;
              LOG.warn("node {} sent map {} older than {}; trying another node", address,
                  next.version(), image.version());
              restart(true);
              return;
            }
            image = next;
            tell(() -> listener.onMap(next, null), next.version());
            firstMap.countDown();
          }
          case DELTA -> {
            MapDelta d = Wire.fromProto(r.getDelta());
            if (image == null || d.prevVersion() != image.version()) {
              contractViolations++;
              LOG.error("node {} sent delta {} after {}, but we are at {}; asking for a full map",
                  address, d.version(), d.prevVersion(), image == null ? 0 : image.version());
              image = null;
              restart(false);
              return;
            }
            image = image.apply(d);
            ClusterImage now = image;
            tell(() -> listener.onMap(now, d), d.version());
          }
          case PROGRESS -> {
            long version = r.getProgress().getVersion();
            tell(() -> listener.onProgress(version), version);
          }
          default -> { }
        }
      }
    }

    @Override
    public void onError(Throwable t) {
      synchronized (lock) {
        if (closed || current != ctx) {
          return;
        }
        Status s = Status.fromThrowable(t);
        LOG.info("watch stream to {} ended ({}: {}); switching node", address, s.getCode(),
            s.getDescription());
        restart(true);
      }
    }

    @Override
    public void onCompleted() {
      onError(Status.UNAVAILABLE.withDescription("stream completed by server").asException());
    }
  }

  /** Ends the current stream and connects again; to the next node if {@code nextNode}. */
  private void restart(boolean nextNode) {
    if (current != null) {
      current.cancel(null);
    }
    current = null;
    connectedTo = null;
    reconnects++;
    if (nextNode) {
      endpointIndex++;
      failures++;
    }
    long delay = failures <= endpoints.size() ? 0 : Math.min(1000, 50L << Math.min(failures, 5));
    try {
      reconnector.schedule(this::connect, delay, TimeUnit.MILLISECONDS);
    } catch (java.util.concurrent.RejectedExecutionException e) {
      // closing
    }
  }

  @Override
  public void close() {
    synchronized (lock) {
      closed = true;
      if (current != null) {
        current.cancel(null);
      }
    }
    reconnector.shutdownNow();
  }
}
