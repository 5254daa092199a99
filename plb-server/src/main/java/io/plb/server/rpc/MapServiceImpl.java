package io.plb.server.rpc;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.plb.client.wire.MapChunks;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.proto.v1.GetMapRequest;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.Progress;
import io.plb.proto.v1.WatchMapRequest;
import io.plb.proto.v1.WatchMapResponse;
import io.plb.server.publish.MapPublisher;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code WatchMap} and {@code GetMap}: the map as this node has applied it, to any subscriber.
 *
 * <p>Each watch stream is a {@link WatchSession} with nothing but a cursor (the last version it
 * sent): it pulls what follows the cursor from the {@link MapPublisher}'s bounded history while
 * gRPC says the stream is ready, so a slow watcher holds no queue of its own and, once it has
 * fallen behind the history, gets one full map instead (DESIGN §3, docs/watch-contract.md).
 *
 * <p>A full map goes in chunks of at most {@code chunkEntries} entries ({@link MapChunks}), one
 * chunk per ready slot, converted as it is sent: while a session sends one, its cursor is the
 * image being sent and the next chunk's index, and nothing else goes on the stream until the last
 * chunk. {@code GetMap} streams its answer the same way. A delta over
 * {@link MapChunks#MAX_MESSAGE_BYTES} (no command can produce one: the largest, a split into
 * {@code map.maxSplitPieces} pieces, stays far below) would be replaced by a full map.
 *
 * <p><b>Cut off.</b> A node cut off from the other nodes while clients still reach it would go on
 * serving its stale map, with progress events that look healthy, and its watchers would never
 * move (etcd's "require leader" watches answer the same problem). So while the node has heard
 * from no leader for {@code leaderLoss} it ends every watch stream and refuses new ones with
 * UNAVAILABLE, and watchers go to another node; it serves them again once it hears a leader.
 *
 * <p>Thread model: the publisher notifies on the apply thread; sessions drain on
 * {@code drainExecutor}, at most one drain per session at a time (guarded by the session). The
 * leader check runs on {@code timer}.
 */
public final class MapServiceImpl extends MapServiceGrpc.MapServiceImplBase {
  private static final Logger LOG = LoggerFactory.getLogger(MapServiceImpl.class);
  private static final int DELTAS_PER_PULL = 64;
  /** What GetMap waits for its version when the request leaves {@code wait_millis} 0. */
  private static final long DEFAULT_GET_MAP_WAIT_MILLIS = 10_000;

  private final MapPublisher publisher;
  private final ExecutorService drainExecutor;
  private final ScheduledExecutorService timer;
  private final int maxWatchers;
  private final Duration progressInterval;
  private final int chunkEntries;
  private final Set<WatchSession> sessions = ConcurrentHashMap.newKeySet();
  private final AtomicInteger watcherCount = new AtomicInteger();
  private final int maxGetMapWaiters;
  private final AtomicInteger getMapWaiters = new AtomicInteger();
  private final long maxGetMapWaitMillis;
  private final LongSupplier leaderSilenceMillis;
  private final long leaderLossMillis;
  /** Whether the node has heard from no leader for {@code leaderLoss}: watches are refused. */
  private volatile boolean leaderLost;

  public MapServiceImpl(
      MapPublisher publisher,
      ExecutorService drainExecutor,
      ScheduledExecutorService timer,
      int maxWatchers,
      int maxGetMapWaiters,
      Duration maxGetMapWait,
      Duration progressInterval,
      int chunkEntries,
      LongSupplier leaderSilenceMillis,
      Duration leaderLoss) {
    MapChunks.checkPerChunk(chunkEntries);
    this.leaderSilenceMillis = leaderSilenceMillis;
    this.leaderLossMillis = leaderLoss.toMillis();
    this.publisher = publisher;
    this.drainExecutor = drainExecutor;
    this.timer = timer;
    this.maxWatchers = maxWatchers;
    this.maxGetMapWaiters = maxGetMapWaiters;
    this.maxGetMapWaitMillis = maxGetMapWait.toMillis();
    this.progressInterval = progressInterval;
    this.chunkEntries = chunkEntries;
    long every = Math.max(50, Math.min(leaderLossMillis / 4, 500));
    timer.scheduleWithFixedDelay(this::checkLeader, every, every, TimeUnit.MILLISECONDS);
  }

  /** Ends every watch stream while this node has been without a leader for leaderLoss. */
  private void checkLeader() {
    long silent;
    try {
      silent = leaderSilenceMillis.getAsLong();
    } catch (RuntimeException e) {
      LOG.warn("cannot tell whether this node hears a leader: {}", e.toString());
      return;
    }
    boolean lost = silent > leaderLossMillis;
    if (lost != leaderLost) {
      leaderLost = lost;
      if (lost) {
        LOG.warn("no leader heard for {} ms: ending {} watch streams so that watchers move to "
            + "another node", silent, sessions.size());
      } else {
        LOG.info("a leader is heard again: serving watch streams");
      }
    }
    if (lost) {
      for (WatchSession s : sessions) {
        s.fail(leaderLostStatus(silent));
      }
    }
  }

  private Status leaderLostStatus(long silentMillis) {
    return Status.UNAVAILABLE.withDescription("this PLB node has heard from no leader for "
        + silentMillis + " ms (cut off from the other nodes?); its map may be stale: watch "
        + "another node");
  }

  /** Number of open watch streams. */
  public int watcherCount() {
    return watcherCount.get();
  }

  /** Ends every watch stream with UNAVAILABLE (the node is stopping). */
  public void closeAll() {
    for (WatchSession s : sessions) {
      s.fail(Status.UNAVAILABLE.withDescription("PLB node is shutting down"));
    }
  }

  @Override
  public void watchMap(WatchMapRequest request, StreamObserver<WatchMapResponse> observer) {
    ServerCallStreamObserver<WatchMapResponse> call =
        (ServerCallStreamObserver<WatchMapResponse>) observer;
    if (leaderLost) {
      call.onError(leaderLostStatus(leaderSilenceMillis.getAsLong()).asRuntimeException());
      return;
    }
    if (watcherCount.incrementAndGet() > maxWatchers) {
      watcherCount.decrementAndGet();
      call.onError(
          Status.RESOURCE_EXHAUSTED
              .withDescription("this node already serves " + maxWatchers
                  + " watch streams (watch.maxWatchers); try another node")
              .asRuntimeException());
      return;
    }
    WatchSession session =
        new WatchSession(call, request.getAfterVersion(), request.getNearest());
    sessions.add(session);
    call.setOnReadyHandler(session::schedule);
    call.setOnCancelHandler(session::close);
    publisher.addListener(session);
    session.progressTask =
        timer.scheduleAtFixedRate(
            session::progressTick,
            progressInterval.toMillis(),
            progressInterval.toMillis(),
            TimeUnit.MILLISECONDS);
    session.schedule();
  }

  /** GetMap calls waiting for a version this node has not applied yet. */
  public int getMapWaiterCount() {
    return getMapWaiters.get();
  }

  @Override
  public void getMap(GetMapRequest request, StreamObserver<MapSnapshot> observer) {
    ServerCallStreamObserver<MapSnapshot> call = (ServerCallStreamObserver<MapSnapshot>) observer;
    MapReply reply = new MapReply(call);
    call.setOnReadyHandler(reply::schedule);
    long asked = Integer.toUnsignedLong(request.getWaitMillis());
    // Shortened to the node's bound, like a long poll (Consul's blocking queries do the same):
    // the caller sees DEADLINE_EXCEEDED naming the wait used and asks again.
    long wait = Math.min(asked == 0 ? DEFAULT_GET_MAP_WAIT_MILLIS : asked, maxGetMapWaitMillis);
    CompletableFuture<Long> applied = publisher.awaitApplied(request.getMinVersion());
    // A caller that goes away frees its place (if it waits) and its chunks at once.
    call.setOnCancelHandler(() -> {
      reply.cancel();
      applied.cancel(false);
    });
    if (!applied.isDone()) {
      // A waiting call holds a timer and a place in the publisher's list until its version or
      // its deadline comes: bounded per node, like watch streams.
      if (getMapWaiters.incrementAndGet() > maxGetMapWaiters) {
        getMapWaiters.decrementAndGet();
        applied.cancel(false);
        observer.onError(
            Status.RESOURCE_EXHAUSTED
                .withDescription("this node already has " + maxGetMapWaiters + " GetMap calls "
                    + "waiting for a version (watch.maxGetMapWaiters); try again or another node")
                .asRuntimeException());
        return;
      }
      applied.whenComplete((v, e) -> getMapWaiters.decrementAndGet());
    }
    applied
        .orTimeout(wait, TimeUnit.MILLISECONDS)
        .whenComplete(
            (v, error) -> {
              if (error instanceof java.util.concurrent.CancellationException) {
                return; // the caller went away
              }
              if (error == null) {
                reply.begin(publisher.image());
              } else if (error instanceof TimeoutException) {
                reply.fail(
                    Status.DEADLINE_EXCEEDED
                        .withDescription("node has applied only up to "
                            + publisher.appliedIndex() + " after " + wait + " ms; wanted "
                            + request.getMinVersion()
                            + (wait < asked ? " (wait_millis " + asked + " shortened to "
                                + "watch.maxGetMapWait)" : "")));
              } else {
                reply.fail(Status.INTERNAL.withDescription(error.toString()));
              }
            });
  }

  /**
   * Runs {@code drain} on the drain executor unless a run is already scheduled ({@code scheduled}
   * is set until it starts); a node shutting down refuses it, and nothing more is sent.
   */
  private void drainOnce(AtomicBoolean scheduled, Runnable drain) {
    if (scheduled.compareAndSet(false, true)) {
      try {
        drainExecutor.execute(drain);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        scheduled.set(false);
      }
    }
  }

  /** One {@code GetMap} answer: the chunks of one image, sent while the call is ready. */
  private final class MapReply {
    private final ServerCallStreamObserver<MapSnapshot> call;
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private ClusterImage image;
    private int count;
    private int next;
    private boolean done;

    MapReply(ServerCallStreamObserver<MapSnapshot> call) {
      this.call = call;
    }

    synchronized void begin(ClusterImage image) {
      this.image = image;
      this.count = MapChunks.chunkCount(image, chunkEntries);
      schedule();
    }

    void schedule() {
      drainOnce(scheduled, this::drain);
    }

    private synchronized void drain() {
      scheduled.set(false);
      try {
        while (!done && image != null && call.isReady()) {
          call.onNext(MapChunks.chunk(image, chunkEntries, next++));
          if (next == count) {
            done = true;
            image = null;
            call.onCompleted();
          }
        }
      } catch (RuntimeException e) {
        LOG.warn("map read failed: {}", e.toString());
        fail(Status.INTERNAL.withDescription("map read failed: " + e));
      }
    }

    synchronized void fail(Status status) {
      if (!done) {
        done = true;
        image = null;
        try {
          call.onError(status.asRuntimeException());
        } catch (RuntimeException ignored) {
          // the call is already gone
        }
      }
    }

    synchronized void cancel() {
      done = true;
      image = null;
    }
  }

  /** One watch stream. All state is guarded by {@code this}. */
  private final class WatchSession implements MapPublisher.Listener {
    private final ServerCallStreamObserver<WatchMapResponse> call;
    private final AtomicBoolean scheduled = new AtomicBoolean();
    private long cursor;
    /** A new watcher (after_version 0) gets a full map first, whatever the history holds. */
    private boolean needsFullMap;
    private boolean sentSinceTick;
    private boolean closed;
    /** The full map being sent in chunks, or null; the cursor moves to it after its last. */
    private ClusterImage sending;
    private int sendingChunks;
    private int nextChunk;
    private ScheduledFuture<?> progressTask;

    /**
     * Until the first map event, the cursor may be between two versions and continues with the
     * next delta (WatchMapRequest.nearest).
     */
    private boolean nearest;

    WatchSession(ServerCallStreamObserver<WatchMapResponse> call, long afterVersion,
        boolean nearest) {
      this.call = call;
      this.cursor = afterVersion;
      this.needsFullMap = afterVersion == 0;
      this.nearest = nearest;
    }

    @Override
    public void onNewVersion(long version) {
      schedule();
    }

    void schedule() {
      drainOnce(scheduled, this::drain);
    }

    private void drain() {
      scheduled.set(false);
      synchronized (this) {
        try {
          while (!closed && call.isReady()) {
            if (sending != null) {
              MapSnapshot chunk = MapChunks.chunk(sending, chunkEntries, nextChunk++);
              call.onNext(WatchMapResponse.newBuilder().setFullMap(chunk).build());
              if (nextChunk == sendingChunks) {
                cursor = sending.version();
                sending = null;
              }
              sentSinceTick = true;
              continue;
            }
            MapPublisher.Next next = needsFullMap
                ? new MapPublisher.FullMap(publisher.image())
                : publisher.next(cursor, DELTAS_PER_PULL, nearest);
            needsFullMap = false;
            if (!(next instanceof MapPublisher.UpToDate)) {
              // Nearest applies to the cursor the subscriber gave, until something is sent: a
              // cursor at or past this node's map version waits with it (watch contract, V >= C).
              nearest = false;
            }
            if (next instanceof MapPublisher.FullMap full) {
              sending = full.image();
              sendingChunks = MapChunks.chunkCount(sending, chunkEntries);
              nextChunk = 0;
              continue;
            } else if (next instanceof MapPublisher.Deltas deltas) {
              for (MapDelta d : deltas.deltas()) {
                io.plb.proto.v1.MapDelta p = Wire.toProto(d);
                if (p.getSerializedSize() > MapChunks.MAX_MESSAGE_BYTES) {
                  LOG.error("delta {} takes {} bytes, over the {} a map message may take; "
                      + "sending a full map instead", d.version(), p.getSerializedSize(),
                      MapChunks.MAX_MESSAGE_BYTES);
                  needsFullMap = true;
                  break;
                }
                call.onNext(WatchMapResponse.newBuilder().setDelta(p).build());
                cursor = d.version();
                if (!call.isReady()) {
                  break;
                }
              }
            } else {
              break;
            }
            sentSinceTick = true;
          }
        } catch (RuntimeException e) {
          LOG.warn("watch stream failed: {}", e.toString());
          fail(Status.INTERNAL.withDescription("watch stream failed: " + e));
        }
      }
    }

    synchronized void progressTick() {
      if (closed || !call.isReady()) {
        return;
      }
      if (!sentSinceTick && sending == null && cursor >= publisher.image().version()) {
        call.onNext(
            WatchMapResponse.newBuilder()
                .setProgress(
                    Progress.newBuilder()
                        .setVersion(cursor)
                        .setAppliedIndex(publisher.appliedIndex()))
                .build());
      }
      sentSinceTick = false;
    }

    synchronized void fail(Status status) {
      if (!closed) {
        close();
        try {
          call.onError(status.asRuntimeException());
        } catch (RuntimeException ignored) {
          // the stream is already gone
        }
      }
    }

    synchronized void close() {
      if (closed) {
        return;
      }
      closed = true;
      publisher.removeListener(this);
      sessions.remove(this);
      watcherCount.decrementAndGet();
      if (progressTask != null) {
        progressTask.cancel(false);
      }
    }
  }
}
