package io.plb.client.router;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.plb.client.Endpoints;
import io.plb.client.PlbClientException;
import io.plb.core.command.Limits;
import io.plb.core.error.ErrorCode;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.publish.PublishSession;
import io.plb.core.publish.PublishSession.Action;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One producer session (DESIGN §5): publishes messages to the queue servers that own their keys,
 * asynchronously and in batches, and keeps each key's messages in the order they were published
 * through handovers, refusals, overload and lost connections. Created by
 * {@link Router#producer(String)}; {@link Router#publish} uses a default session per router.
 *
 * <h2>Session and order</h2>
 *
 * The session's id is the given name or a random UUID; every message gets the next sequence number
 * (1, 2, 3, ... across keys) when {@link #publish} takes it. What PLB promises is per-key order
 * for this session: a key's messages are delivered in sequence order. Calls from several threads
 * are ordered by the moment {@code publish} takes the message. The id must be unique among live
 * sessions: queue servers keep refusal fences per session id.
 *
 * <h2>Idempotence</h2>
 *
 * Each instance has an epoch ({@link #epoch()}): a named one gets it from the PLB cluster when
 * it opens (a restart of the same name gets a higher one, and queue servers refuse the older
 * instance's messages from then on), a random-id one uses 1. Every request carries it and the
 * lowest unfinished seq; a queue server stores a resend of a message it — or the range's earlier
 * owner — already stored at most once, and answers it ACCEPTED with {@link PublishAck#duplicate}
 * (docs/design.md §5 "Idempotent publish"). A resend names the servers an earlier attempt was
 * written to without an answer ({@code maybe_stored_at}): a server that cannot tell whether one
 * of them stored it delivers it flagged redelivered. {@link Config#idempotent} false sends epoch 0:
 * resends after a lost answer may then be stored twice.
 *
 * <h2>Decisions and I/O</h2>
 *
 * Every decision — the pending FIFO of each range, rule C4's slots and barrier, what to send to
 * which server under which map version, batching, what each answer means, resends after a
 * refusal, an overload or a broken stream, {@code settled_below} — is made by a
 * {@link PublishSession}, whose Javadoc gives the path of a message, the rules and their
 * invariants. This class carries its actions out: one ordered bidirectional
 * {@code QueueService.Publish} stream per queue server (a <em>link</em>), the timers of its
 * backoffs ({@link Config#backoffBase} doubling up to {@link Config#backoffMax}, with ±20 %
 * jitter), the futures, and the blocking below. A {@code WRONG_OWNER} answer also tells the
 * router's watch which version to expect. Delivery is at least once; with idempotent publish a
 * resend the server had stored is stored once.
 *
 * <h2>Back-pressure and closing</h2>
 *
 * At most {@link Config#maxOutstanding} messages may be unfinished (pending, in flight or
 * awaiting resend). {@code publish} <em>blocks</em> the caller while the session is full, up to
 * {@link Config#blockTimeout}; if there is still no room it returns a future failed with
 * {@code RESOURCE_EXHAUSTED}. {@link #flush} waits until every message has an outcome;
 * {@link #close} flushes with a deadline, then fails what is left with {@code UNAVAILABLE} (such
 * a message may still have been stored by a server).
 *
 * <h2>Thread model</h2>
 *
 * Thread-safe. The {@link PublishSession} is guarded by one lock; {@code publish}, gRPC response
 * callbacks, map changes (the router's watch thread) and timers each take it briefly, pass their
 * event to the session and carry out the actions it returns. All gRPC stream calls (open, write,
 * cancel) run on the session's single I/O thread, submitted under the lock, so each link's
 * requests go out in the order they were built. Futures are completed after the lock is
 * released, on the thread that settled them (a gRPC callback thread, or the closing thread):
 * callbacks attached to them should not block for long.
 */
public final class Producer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Producer.class);

  /** Per-item overhead counted against {@link Config#maxBatchBytes}. */
  private static final int ITEM_OVERHEAD = 32;

  /**
   * Settings of a producer session.
   *
   * @param maxBatchItems most items in one PublishRequest
   * @param maxBatchBytes most key + payload bytes in one PublishRequest (a single larger item is
   *     still sent alone)
   * @param maxRequestsPerLink PublishRequests a link may have unanswered; further items wait and
   *     form the next batch. Above 1, per-key order after an OVERLOADED answer also relies on
   *     the server's overload fence (see {@link PublishSession}, "Failures")
   * @param maxPayloadBytes largest payload {@code publish} takes
   * @param maxOutstanding most unfinished messages before {@code publish} blocks
   * @param blockTimeout how long {@code publish} blocks while the session is full
   * @param backoffBase first backoff (reconnect, overload, a refusal without a newer version)
   * @param backoffMax largest backoff; backoffs double from the base up to it, with jitter
   * @param closeTimeout how long {@link #close()} waits for unfinished messages
   */
  public record Config(
      int maxBatchItems,
      int maxBatchBytes,
      int maxRequestsPerLink,
      int maxPayloadBytes,
      int maxOutstanding,
      Duration blockTimeout,
      Duration backoffBase,
      Duration backoffMax,
      Duration closeTimeout,
      boolean idempotent) {

    public Config {
      positive(maxBatchItems, "maxBatchItems");
      positive(maxBatchBytes, "maxBatchBytes");
      positive(maxRequestsPerLink, "maxRequestsPerLink");
      if (maxPayloadBytes < 0) {
        throw new IllegalArgumentException("maxPayloadBytes must be >= 0");
      }
      positive(maxOutstanding, "maxOutstanding");
      Objects.requireNonNull(blockTimeout, "blockTimeout");
      Objects.requireNonNull(backoffBase, "backoffBase");
      Objects.requireNonNull(backoffMax, "backoffMax");
      Objects.requireNonNull(closeTimeout, "closeTimeout");
      if (backoffBase.isNegative() || backoffBase.isZero() || backoffMax.compareTo(backoffBase) < 0) {
        throw new IllegalArgumentException("need 0 < backoffBase <= backoffMax");
      }
    }

    private static void positive(int v, String name) {
      if (v <= 0) {
        throw new IllegalArgumentException(name + " must be > 0, got " + v);
      }
    }

    /**
     * 512 items or 1 MiB per request, one request unanswered per link, payloads up to 1 MiB,
     * 10,000 unfinished messages, block up to 30 s, backoff 50 ms to 2 s, close waits 10 s,
     * idempotent.
     */
    public static Config defaults() {
      return new Config(512, 1 << 20, 1, 1 << 20, 10_000, Duration.ofSeconds(30),
          Duration.ofMillis(50), Duration.ofSeconds(2), Duration.ofSeconds(10), true);
    }

    public Config withMaxBatchItems(int v) {
      return new Config(v, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes, maxOutstanding,
          blockTimeout, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withMaxBatchBytes(int v) {
      return new Config(maxBatchItems, v, maxRequestsPerLink, maxPayloadBytes, maxOutstanding,
          blockTimeout, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withMaxRequestsPerLink(int v) {
      return new Config(maxBatchItems, maxBatchBytes, v, maxPayloadBytes, maxOutstanding,
          blockTimeout, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withMaxPayloadBytes(int v) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, v, maxOutstanding,
          blockTimeout, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withMaxOutstanding(int v) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes, v,
          blockTimeout, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withBlockTimeout(Duration v) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes,
          maxOutstanding, v, backoffBase, backoffMax, closeTimeout, idempotent);
    }

    public Config withBackoff(Duration base, Duration max) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes,
          maxOutstanding, blockTimeout, base, max, closeTimeout, idempotent);
    }

    public Config withCloseTimeout(Duration v) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes,
          maxOutstanding, blockTimeout, backoffBase, backoffMax, v, idempotent);
    }

    public Config withIdempotent(boolean v) {
      return new Config(maxBatchItems, maxBatchBytes, maxRequestsPerLink, maxPayloadBytes,
          maxOutstanding, blockTimeout, backoffBase, backoffMax, closeTimeout, v);
    }
  }

  /**
   * Counters of a session, read at one instant.
   *
   * @param published messages {@code publish} took
   * @param acknowledged messages a queue server accepted
   * @param refused WRONG_OWNER answers
   * @param overloaded OVERLOADED answers
   * @param rejected REJECTED answers (futures failed, never resent)
   * @param resent sends of a message after its first
   * @param duplicates acknowledgements of resends the server had stored already (idempotent
   *     publish: stored once)
   * @param inFlight messages without an outcome yet (pending, sent, awaiting resend)
   * @param waiting of those, the ones not handed to a link: pending (behind the barrier, or
   *     waiting for a first map or an owner) or refused and awaiting resend
   * @param linkFailures publish streams that failed
   * @param requests PublishRequests written
   */
  public record Stats(
      long published,
      long acknowledged,
      long refused,
      long overloaded,
      long rejected,
      long resent,
      long duplicates,
      long inFlight,
      long waiting,
      long linkFailures,
      long requests) {}

  // ---------------------------------------------------------------- internal state

  /** What the session keeps of one message; the decisions about it are the core's. */
  private record Msg(long seq, ByteString key, ByteString payload, long publishedNanos,
      CompletableFuture<PublishAck> future) {}

  private final Router router;
  private final Endpoints endpoints;
  private final String id;
  /** The instance's epoch (PublishRequest.producer_epoch); 0 when not idempotent. */
  private final long epoch;
  private final Config config;
  private final Ticker ticker = Ticker.SYSTEM;
  private final ScheduledThreadPoolExecutor io;
  private final BiConsumer<ClusterImage, MapDelta> listener = this::onMap;

  private final ReentrantLock lock = new ReentrantLock();
  private final Condition notFull = lock.newCondition();
  private final Condition drained = lock.newCondition();

  // Guarded by the lock:
  private final PublishSession<Msg> core;
  private final List<Runnable> completions = new ArrayList<>();
  private boolean closing;
  private boolean closed;

  // I/O thread only: the open gRPC calls, by the core's stream id.
  private final Map<Long, ClientCallStreamObserver<PublishRequest>> calls = new HashMap<>();

  Producer(Router router, Endpoints endpoints, String id, long epoch, Config config) {
    this.router = router;
    this.endpoints = endpoints;
    this.id = Objects.requireNonNull(id, "id");
    this.epoch = epoch;
    this.config = Objects.requireNonNull(config, "config");
    this.core = new PublishSession<>(new PublishSession.Config(epoch, config.maxBatchItems(),
        config.maxBatchBytes(), config.maxRequestsPerLink(),
        (why, attempt) -> backoffNanos(attempt)));
    this.io = new ScheduledThreadPoolExecutor(1, r -> {
      Thread t = new Thread(r, "plb-producer-" + id);
      t.setDaemon(true);
      return t;
    });
    io.setRemoveOnCancelPolicy(true);
    io.setExecuteExistingDelayedTasksAfterShutdownPolicy(false); // timers die with the session
  }

  /** Subscribes to the router's map changes and takes its current map. */
  void start() {
    router.addListener(listener);
    ClusterImage image = router.image();
    if (image != null) {
      onMap(image, null);
    }
  }

  /** The producer's id, sent with every request. */
  public String id() {
    return id;
  }

  /** This instance's epoch: a restart of a named producer gets a higher one; 0: not idempotent. */
  public long epoch() {
    return epoch;
  }

  public Config config() {
    return config;
  }

  /** Whether {@link #close} has been called. */
  public boolean isClosed() {
    lock.lock();
    try {
      return closing;
    } finally {
      lock.unlock();
    }
  }

  /** The map version this session routes by; -1 before its first map. */
  public long mapVersion() {
    lock.lock();
    try {
      return core.mapVersion();
    } finally {
      lock.unlock();
    }
  }

  // ---------------------------------------------------------------- publish

  /**
   * Publishes {@code payload} under ordering key {@code key}. Returns at once with a future that
   * completes with the acknowledgement, or fails with {@link PublishRejectedException} (the server
   * refused the message as bad input), or with a {@link PlbClientException} when the session is
   * full for longer than {@link Config#blockTimeout} ({@code RESOURCE_EXHAUSTED}) or closes before
   * the message has an outcome ({@code UNAVAILABLE}). Blocks only while the session is full.
   * Completing or cancelling the returned future does not withdraw the message.
   *
   * @throws IllegalArgumentException if the key is null, empty or over 1 KiB, or the payload is
   *     null or larger than {@link Config#maxPayloadBytes}
   * @throws IllegalStateException if the session is closed
   */
  public CompletableFuture<PublishAck> publish(byte[] key, byte[] payload) {
    if (key == null || key.length == 0) {
      throw new IllegalArgumentException("key is empty: an ordering key has 1 to "
          + Limits.MAX_KEY_BYTES + " bytes");
    }
    if (key.length > Limits.MAX_KEY_BYTES) {
      throw new IllegalArgumentException(
          "key has " + key.length + " bytes; the limit is " + Limits.MAX_KEY_BYTES);
    }
    if (payload == null) {
      throw new IllegalArgumentException("payload is null (use an empty array)");
    }
    if (payload.length > config.maxPayloadBytes()) {
      throw new IllegalArgumentException("payload has " + payload.length
          + " bytes; the limit is " + config.maxPayloadBytes());
    }
    long hash = KeyHash.hash(key);
    lock.lock();
    try {
      if (closing) {
        throw new IllegalStateException("producer " + id + " is closed");
      }
      if (core.unfinished() >= config.maxOutstanding()) {
        long left = config.blockTimeout().toNanos();
        while (core.unfinished() >= config.maxOutstanding() && !closing) {
          if (left <= 0) {
            return CompletableFuture.failedFuture(PlbClientException.of(
                ErrorCode.RESOURCE_EXHAUSTED,
                "producer " + id + " has " + core.unfinished() + " unfinished messages (the "
                    + "limit) after waiting " + config.blockTimeout().toMillis() + " ms",
                null));
          }
          try {
            left = notFull.awaitNanos(left);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return CompletableFuture.failedFuture(PlbClientException.of(ErrorCode.UNAVAILABLE,
                "interrupted while waiting for room in producer " + id, e));
          }
        }
        if (closing) {
          throw new IllegalStateException("producer " + id + " is closed");
        }
      }
      long now = ticker.nanos();
      Msg m = new Msg(core.nextSeq(), ByteString.copyFrom(key), ByteString.copyFrom(payload),
          now, new CompletableFuture<>());
      core.publish(hash, key.length + payload.length + ITEM_OVERHEAD, m, now);
      return m.future();
    } finally {
      release();
    }
  }

  /** Publishes under the UTF-8 bytes of {@code key}; see {@link #publish(byte[], byte[])}. */
  public CompletableFuture<PublishAck> publish(String key, byte[] payload) {
    if (key == null) {
      throw new IllegalArgumentException("key is null");
    }
    return publish(key.getBytes(StandardCharsets.UTF_8), payload);
  }

  /**
   * Waits until every message published so far has an outcome (acknowledged, rejected or
   * failed), or the timeout passes. Returns whether none is left.
   */
  public boolean flush(Duration timeout) throws InterruptedException {
    lock.lock();
    try {
      long left = timeout.toNanos();
      while (core.unfinished() > 0) {
        if (left <= 0) {
          return false;
        }
        left = drained.awaitNanos(left);
      }
      return true;
    } finally {
      lock.unlock();
    }
  }

  /** The session's counters now. */
  public Stats stats() {
    lock.lock();
    try {
      return new Stats(core.published(), core.acknowledged(), core.refused(),
          core.overloaded(), core.rejected(), core.resent(), core.duplicates(),
          core.unfinished(), core.waiting(), core.linkFailures(), core.requests());
    } finally {
      lock.unlock();
    }
  }

  public long published() {
    return stats().published();
  }

  public long acknowledged() {
    return stats().acknowledged();
  }

  /** WRONG_OWNER answers. */
  public long refused() {
    return stats().refused();
  }

  public long resent() {
    return stats().resent();
  }

  public long inFlight() {
    return stats().inFlight();
  }

  // ---------------------------------------------------------------- events (under the lock)

  private void onMap(ClusterImage image, MapDelta delta) {
    lock.lock();
    try {
      if (!closed) {
        core.onMap(image, ticker.nanos());
      }
    } finally {
      release();
    }
  }

  private void onResponse(String server, long stream, PublishResponse resp) {
    lock.lock();
    try {
      if (closed) {
        return;
      }
      List<PublishSession.Result> results = new ArrayList<>(resp.getResultsCount());
      for (PublishResult res : resp.getResultsList()) {
        results.add(switch (res.getStatus()) {
          case ACCEPTED -> PublishSession.Result.accepted(res.getSeq(), res.getDuplicate());
          case WRONG_OWNER -> PublishSession.Result.wrongOwner(res.getSeq(), res.getMapVersion());
          case OVERLOADED -> PublishSession.Result.overloaded(res.getSeq());
          case REJECTED -> PublishSession.Result.rejected(res.getSeq(), res.getDetail());
          default -> PublishSession.Result.rejected(res.getSeq(),
              "status " + res.getStatus() + " " + res.getDetail());
        });
      }
      String bad = core.onResponse(stream, results, ticker.nanos());
      if (bad != null) {
        LOG.warn("queue server {} broke the publish protocol: {}", server, bad);
        return;
      }
      for (PublishResult res : resp.getResultsList()) {
        if (res.getStatus() == PublishStatus.WRONG_OWNER) {
          router.expectVersion(res.getMapVersion());
        }
      }
    } finally {
      release();
    }
  }

  private void onStreamEnd(long stream, Throwable t) {
    lock.lock();
    try {
      if (closed) {
        return;
      }
      long now = ticker.nanos();
      if (t == null) {
        logFailure(core.streamEnded(stream, now), "stream completed by server", now);
      } else {
        Status s = Status.fromThrowable(t);
        String why = s.getCode() + (s.getDescription() == null ? "" : ": " + s.getDescription());
        logFailure(core.streamFailed(stream, why, now), why, now);
      }
    } finally {
      release();
    }
  }

  private void logFailure(PublishSession.LinkFailure f, String why, long now) {
    if (f != null) {
      LOG.info("publish stream to {} at {} failed ({}); {} unsettled messages will be resent; "
          + "reconnecting in {} ms", f.server(), f.address(), why, f.unsettled(),
          (f.retryAt() - now) / 1_000_000);
    }
  }

  /** Carries out what the core decided: stream calls on the I/O thread, timers, outcomes. */
  private void carryOut() {
    List<Action<Msg>> actions = core.drain();
    if (actions.isEmpty()) {
      return;
    }
    long now = ticker.nanos();
    for (Action<Msg> a : actions) {
      if (a instanceof Action.Open<Msg> o) {
        submitIo(() -> ioOpen(o.server(), o.address(), o.stream()));
      } else if (a instanceof Action.Write<Msg> w) {
        PublishSession.Request<Msg> r = w.request();
        PublishRequest.Builder rb = PublishRequest.newBuilder().setProducer(id)
            .setProducerEpoch(r.epoch()).setSettledBelow(r.settledBelow())
            .setOverloadsSeen(r.overloadsSeen());
        for (PublishSession.Item<Msg> i : r.items()) {
          rb.addItems(PublishItem.newBuilder()
              .setSeq(i.seq())
              .setKey(i.message().key())
              .setPayload(i.message().payload())
              .setMapVersion(i.tag())
              .setRangeStart(i.rangeStart())
              .addAllMaybeStoredAt(i.maybeStoredAt()));
        }
        PublishRequest request = rb.build();
        submitIo(() -> ioWrite(r.server(), r.stream(), request));
      } else if (a instanceof Action.Cancel<Msg> c) {
        submitIo(() -> ioCancel(c.stream(), c.reason()));
      } else if (a instanceof Action.WakeAt<Msg> w) {
        schedule(() -> core.timerFired(w.at(), ticker.nanos()), w.at() - now);
      } else if (a instanceof Action.Acked<Msg> k) {
        Msg m = k.message();
        PublishAck ack = new PublishAck(k.seq(), id, k.server(), k.tag(),
            now - m.publishedNanos(), k.duplicate());
        finished(() -> m.future().complete(ack));
      } else if (a instanceof Action.Rejected<Msg> r) {
        PublishRejectedException e =
            new PublishRejectedException(r.seq(), r.server(), r.detail());
        finished(() -> r.message().future().completeExceptionally(e));
      }
    }
  }

  /** A message has its outcome; its future is completed after the lock. */
  private void finished(Runnable completion) {
    completions.add(completion);
    notFull.signal();
    if (core.unfinished() == 0) {
      drained.signalAll();
    }
  }

  private long backoffNanos(int attempt) {
    long base = config.backoffBase().toNanos();
    long max = config.backoffMax().toNanos();
    long d = base << Math.min(Math.max(attempt - 1, 0), 20);
    if (d <= 0 || d > max) {
      d = max;
    }
    // +-20% jitter so that many producers do not come back at once
    return d - d / 5 + ThreadLocalRandom.current().nextLong(d * 2 / 5 + 1);
  }

  /** Runs {@code task} under the lock after {@code delayNanos}. */
  private void schedule(Runnable task, long delayNanos) {
    try {
      io.schedule(() -> {
        lock.lock();
        try {
          if (!closed) {
            task.run();
          }
        } finally {
          release();
        }
      }, Math.max(0, delayNanos), TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException e) {
      // closing
    }
  }

  private void submitIo(Runnable task) {
    try {
      io.execute(task);
    } catch (RejectedExecutionException e) {
      // closing
    }
  }

  /** Carries out the core's actions, releases the lock, then completes futures. */
  private void release() {
    List<Runnable> todo = null;
    try {
      carryOut();
    } finally {
      if (!completions.isEmpty()) {
        todo = new ArrayList<>(completions);
        completions.clear();
      }
      lock.unlock();
    }
    if (todo != null) {
      for (Runnable r : todo) {
        try {
          r.run();
        } catch (RuntimeException e) {
          LOG.warn("a publish callback failed", e);
        }
      }
    }
  }

  // ---------------------------------------------------------------- I/O thread

  private void ioOpen(String server, String address, long stream) {
    try {
      QueueServiceGrpc.QueueServiceStub stub = QueueServiceGrpc.newStub(endpoints.channel(address));
      stub.publish(new ClientResponseObserver<PublishRequest, PublishResponse>() {
        @Override
        public void beforeStart(ClientCallStreamObserver<PublishRequest> requestStream) {
          calls.put(stream, requestStream);
        }

        @Override
        public void onNext(PublishResponse value) {
          onResponse(server, stream, value);
        }

        @Override
        public void onError(Throwable t) {
          onStreamEnd(stream, t);
        }

        @Override
        public void onCompleted() {
          onStreamEnd(stream, null);
        }
      });
    } catch (RuntimeException e) {
      calls.remove(stream);
      lock.lock();
      try {
        if (!closed) {
          long now = ticker.nanos();
          String why = "cannot open a stream: " + e;
          logFailure(core.streamFailed(stream, why, now), why, now);
        }
      } finally {
        release();
      }
    }
  }

  private void ioWrite(String server, long stream, PublishRequest request) {
    ClientCallStreamObserver<PublishRequest> call = calls.get(stream);
    if (call == null) {
      return; // the stream failed; these items were refused and will be resent
    }
    try {
      call.onNext(request);
    } catch (RuntimeException e) {
      // The call is closing; its onError settles the items.
      LOG.debug("write to {} failed: {}", server, e.toString());
    }
  }

  private void ioCancel(long stream, String why) {
    ClientCallStreamObserver<PublishRequest> call = calls.remove(stream);
    if (call != null) {
      call.cancel(why, null);
    }
  }

  // ---------------------------------------------------------------- closing

  /** Closes after waiting up to {@link Config#closeTimeout} for unfinished messages. */
  @Override
  public void close() {
    close(config.closeTimeout());
  }

  /**
   * Stops taking messages, waits up to {@code timeout} for every unfinished one to get its
   * outcome, then fails the rest with {@code UNAVAILABLE} and closes the streams. A message
   * failed this way may still have been stored by a queue server. Returns whether nothing was
   * left unfinished.
   */
  public boolean close(Duration timeout) {
    boolean settled;
    lock.lock();
    try {
      if (closed) {
        return core.unfinished() == 0;
      }
      closing = true;
      notFull.signalAll();
      long left = timeout.toNanos();
      try {
        while (core.unfinished() > 0 && left > 0) {
          left = drained.awaitNanos(left);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      settled = core.unfinished() == 0;
      if (!settled) {
        LOG.warn("producer {} closes with {} unfinished messages", id, core.unfinished());
      }
      closed = true;
      for (Msg m : core.close()) {
        PlbClientException e = PlbClientException.of(ErrorCode.UNAVAILABLE,
            "producer " + id + " closed before message " + m.seq() + " was acknowledged", null);
        finished(() -> m.future().completeExceptionally(e));
      }
      drained.signalAll();
    } finally {
      release();
    }
    router.removeListener(listener);
    router.forget(this);
    io.shutdown();
    try {
      io.awaitTermination(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return settled;
  }

  @Override
  public String toString() {
    return "Producer{" + id + "}";
  }
}
