package io.plb.client.router;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.plb.client.Endpoints;
import io.plb.client.PlbClientException;
import io.plb.core.command.Limits;
import io.plb.core.error.ErrorCode;
import io.plb.core.handover.SendBarrier;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
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
 * <h2>Path of a message</h2>
 *
 * <ol>
 *   <li>{@code publish} validates and numbers the message and appends it to the pending FIFO of
 *       the range its key hashes to in the router's current map.
 *   <li>The head of a range's FIFO is sent when rule C4 allows (below): it is routed under the
 *       current map — tag = map version, {@code range_start}, destination
 *       {@link SendBarrier.Entry#destination()} (the target once a move has switched) — and
 *       appended to the <em>link</em> to that server.
 *   <li>A link is one ordered bidirectional {@code QueueService.Publish} stream per queue server,
 *       opened on first use at the address the map gives. Items leave in link order, batched:
 *       while {@link Config#maxRequestsPerLink} requests are unanswered, new items accumulate, and
 *       each request takes up to {@link Config#maxBatchItems} items / {@link Config#maxBatchBytes}
 *       bytes (Nagle-like, no timer).
 *   <li>The server answers each request with one result per item, in order. {@code ACCEPTED}
 *       completes the future with a {@link PublishAck}. {@code WRONG_OWNER} and
 *       {@code OVERLOADED} turn into resends; {@code REJECTED} fails the future with
 *       {@link PublishRejectedException} and is never resent.
 * </ol>
 *
 * <h2>Rule C4 and the slots</h2>
 *
 * The barrier ({@link SendBarrier}) is kept per <em>slot</em>: the range bounds {@code [start,
 * end)} that sends were routed under, named by a slot id that is never reused, so the barrier's
 * state cannot mix two different ranges that share a start (a split keeps the left half's start).
 * A slot is <em>active</em> while it holds a send that is unsettled (neither acknowledged nor
 * refused) or a refused message not yet resent. Active slots whose bounds are still a range of
 * the current map are <em>current</em>; the others (their range was split or merged since) are
 * <em>stale</em>.
 * <ul>
 *   <li><b>New messages.</b> The head of range R's FIFO, under entry E, is sent only if no stale
 *       slot overlaps R and R's current slot (if any) passes {@code barrier.maySend(slot, E)}:
 *       nothing refused is waiting and every unsettled send went under E. So after a split or
 *       merge, a range waits until every unsettled send of the old ranges overlapping it has
 *       settled (and been resent).
 *   <li><b>Resends.</b> A refused message goes back into its slot's barrier; once the slot has no
 *       unsettled send, the router's map has reached the refusal's version, any backoff has
 *       passed and every range now overlapping the slot has an owner,
 *       {@code takeResends} gives the slot's refused messages in sequence order, and each is
 *       routed by its key's hash under the <em>current</em> map (tag = current version) and sent
 *       at once, before any pending message of the ranges it lands in (those are held by the
 *       refused slot until then).
 * </ul>
 * Invariants, under the lock:
 * <ol>
 *   <li>For each key, every message that is unsettled or awaiting resend is in one slot, all of
 *       them were sent under one entry to one link, in sequence order — new sends of a key need
 *       every active slot overlapping its range to be that range's current slot; resends leave
 *       their slot only once it holds nothing unsettled.
 *   <li>For each key, every sent message has a smaller sequence number than every pending one:
 *       a range's FIFO is only ever sent from its head, and when the map's ranges change the
 *       FIFOs are rebuilt by hash in sequence order.
 *   <li>No two active slots have the same bounds; every pending FIFO's bounds are a range of the
 *       current map.
 * </ol>
 * Between a split or merge and the resends the barrier's unit is finer than the map's: resends of
 * one old range may go into a new range while another old range overlapping it still has
 * unsettled sends. That is safe per key — the keys are different, and the new range's pending
 * messages stay blocked until both have settled.
 *
 * <h2>Failures: at least once</h2>
 *
 * <ul>
 *   <li>{@code WRONG_OWNER}: resent as above once the router's map reaches the version in the
 *       refusal (the router's watch catches up by itself). A refusal that carries no newer version
 *       than the send's tag teaches nothing new; the slot then backs off before resending.
 *   <li>{@code OVERLOADED}: like a refusal, resent in order after a backoff that grows while the
 *       server keeps answering it.
 *   <li>After either, the slot's later messages still waiting on that link (not yet written) are
 *       taken back as refused too: written, they could be accepted ahead of the resend. Messages
 *       already written in other requests cannot be taken back, so with
 *       {@link Config#maxRequestsPerLink} above 1 order also relies on the server: it must not
 *       accept a producer's later message of a range after refusing or overloading an earlier
 *       one on the same stream. For WRONG_OWNER the refusal fence does this; for OVERLOADED each
 *       request carries {@code overloads_seen}, the OVERLOADED results received on the stream so
 *       far, and the server answers OVERLOADED to any item of a range whose last OVERLOADED
 *       answer the request had not seen.
 *   <li>A link that fails (stream error, server gone, a reply that does not match the request):
 *       every unsettled item on it is treated as refused at the router's current version and
 *       resent, in order, when the link's reconnect backoff has passed — to wherever the map
 *       then says. The server may already have stored some of them (only the answer was lost):
 *       those are delivered twice. Delivery is at least once; order holds for first deliveries.
 *   <li>A server removed from the map, or whose address changed: its link is closed and its
 *       unsettled items are resent the same way.
 * </ul>
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
 * Thread-safe. All state is guarded by one lock; {@code publish}, gRPC response callbacks, map
 * changes (the router's watch thread) and timers each take it briefly. All gRPC stream calls
 * (open, write, cancel) run on the session's single I/O thread, submitted under the lock, so each
 * link's requests go out in the order they were built. Futures are completed after the lock is
 * released, on the thread that settled them (a gRPC callback thread, or the closing thread):
 * callbacks attached to them should not block for long.
 */
public final class Producer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Producer.class);

  /** No message has it: {@code barrier.acked} with it only drops a slot's empty state. */
  private static final long NO_SEQ = 0;

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
   *     the server's overload fence (see "Failures" above)
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

  /** One message of the session. Mutable fields are guarded by the lock. */
  private static final class Msg {
    final long seq;
    final long hash;
    final ByteString key;
    final ByteString payload;
    final int size;
    final long publishedNanos;
    final CompletableFuture<PublishAck> future = new CompletableFuture<>();
    Slot slot;
    long tag;
    long rangeStart;
    /**
     * Servers it was written to whose answer never came (the stream broke): any of them may
     * have stored it. Sent with each resend ({@code maybe_stored_at}); usually empty.
     */
    List<String> maybeStoredAt = List.of();

    Msg(long seq, byte[] key, byte[] payload, long publishedNanos) {
      this.seq = seq;
      this.hash = KeyHash.hash(key);
      this.key = ByteString.copyFrom(key);
      this.payload = ByteString.copyFrom(payload);
      this.size = key.length + payload.length + ITEM_OVERHEAD;
      this.publishedNanos = publishedNanos;
    }
  }

  /** Range bounds that sends were routed under; the unit of the barrier. */
  private static final class Slot {
    final long id;
    final long start;
    final long end;
    int unsettled;
    int refused;
    /** No resend before this instant (ticker nanos). */
    long notBefore;
    boolean timerScheduled;
    long timerAt;
    int quietRefusals;

    Slot(long id, long start, long end, long now) {
      this.id = id;
      this.start = start;
      this.end = end;
      this.notBefore = now;
    }
  }

  /** The pending FIFO of one range of the current map. */
  private static final class Bucket {
    final long start;
    final long end;
    final ArrayDeque<Msg> queue = new ArrayDeque<>();

    Bucket(long start, long end) {
      this.start = start;
      this.end = end;
    }
  }

  /** A written request awaiting its response. */
  private record Batch(List<Msg> items) {}

  /** The ordered publish stream to one queue server. */
  private final class Link {
    final String serverId;
    final String address;
    // Guarded by the lock:
    long gen;
    boolean open;
    int failures;
    long retryAt;
    boolean retryScheduled;
    int overloadStreak;
    /** OVERLOADED results received on the current stream: sent as overloads_seen. */
    long overloadsSeen;
    final ArrayDeque<Msg> queue = new ArrayDeque<>();
    final ArrayDeque<Batch> outstanding = new ArrayDeque<>();
    // I/O thread only:
    ClientCallStreamObserver<PublishRequest> ioCall;
    long ioGen = -1;

    Link(String serverId, String address, long now) {
      this.serverId = serverId;
      this.address = address;
      this.retryAt = now;
    }
  }

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
  private ClusterImage view;
  private final SendBarrier<Msg> barrier = new SendBarrier<>();
  private final Map<Long, Bucket> buckets = new HashMap<>();
  private final ArrayDeque<Msg> unrouted = new ArrayDeque<>();
  private final Map<Long, Slot> activeSlots = new HashMap<>();
  private final Map<Long, Slot> currentSlots = new HashMap<>();
  private final List<Slot> staleSlots = new ArrayList<>();
  private final Map<String, Link> links = new HashMap<>();
  private final Set<Link> dirty = new LinkedHashSet<>();
  /** Unfinished messages by seq; the first is the lowest seq the servers must still know. */
  private final TreeMap<Long, Msg> live = new TreeMap<>();
  private final List<Runnable> completions = new ArrayList<>();
  private long nextSeq = 1;
  private long nextSlotId = 1;
  private boolean closing;
  private boolean closed;
  private long published;
  private long acknowledged;
  private long refused;
  private long overloaded;
  private long rejected;
  private long resent;
  private long duplicates;
  private long linkFailures;
  private long requests;

  Producer(Router router, Endpoints endpoints, String id, long epoch, Config config) {
    this.router = router;
    this.endpoints = endpoints;
    this.id = Objects.requireNonNull(id, "id");
    this.epoch = epoch;
    this.config = Objects.requireNonNull(config, "config");
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
      return view == null ? -1 : view.version();
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
    lock.lock();
    try {
      if (closing) {
        throw new IllegalStateException("producer " + id + " is closed");
      }
      if (live.size() >= config.maxOutstanding()) {
        long left = config.blockTimeout().toNanos();
        while (live.size() >= config.maxOutstanding() && !closing) {
          if (left <= 0) {
            return CompletableFuture.failedFuture(PlbClientException.of(
                ErrorCode.RESOURCE_EXHAUSTED,
                "producer " + id + " has " + live.size() + " unfinished messages (the limit) "
                    + "after waiting " + config.blockTimeout().toMillis() + " ms",
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
      Msg m = new Msg(nextSeq++, key, payload, ticker.nanos());
      live.put(m.seq, m);
      published++;
      enqueue(m);
      return m.future;
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
      while (!live.isEmpty()) {
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
      long onWire = 0;
      for (Link l : links.values()) {
        onWire += l.queue.size();
        for (Batch b : l.outstanding) {
          onWire += b.items().size();
        }
      }
      return new Stats(published, acknowledged, refused, overloaded, rejected, resent,
          duplicates, live.size(), live.size() - onWire, linkFailures, requests);
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

  // ---------------------------------------------------------------- routing (under the lock)

  private void enqueue(Msg m) {
    if (view == null) {
      unrouted.add(m);
      return;
    }
    RangeEntry r = view.rangeFor(m.hash);
    Bucket b = buckets.get(r.start());
    if (b == null) {
      b = new Bucket(r.start(), r.end());
      buckets.put(r.start(), b);
    }
    b.queue.add(m);
    if (b.queue.size() == 1) {
      pumpBucket(b); // a longer FIFO's head is blocked: it moves when what blocks it settles
    }
  }

  /** Sends the head of a range's FIFO while C4 allows. */
  private void pumpBucket(Bucket b) {
    RangeEntry r = view.range(view.indexOfStart(b.start)); // invariant 3: the bounds are current
    SendBarrier.Entry e = SendBarrier.Entry.of(r);
    if (sendable(e)) {
      while (!b.queue.isEmpty() && maySendNew(r, e)) {
        send(b.queue.poll(), r, e, false);
      }
    }
    if (b.queue.isEmpty()) {
      buckets.remove(b.start);
    }
  }

  private boolean sendable(SendBarrier.Entry e) {
    String dest = e.destination();
    if (dest.isEmpty()) {
      return false; // unassigned: wait for an owner
    }
    QueueServerInfo s = view.server(dest);
    return s != null && !s.address().isEmpty();
  }

  private boolean maySendNew(RangeEntry r, SendBarrier.Entry e) {
    for (Slot s : staleSlots) {
      if (overlaps(s.start, s.end, r.start(), r.end())) {
        return false; // a split or merge: wait until the old range's sends have settled
      }
    }
    Slot s = currentSlots.get(r.start());
    return s == null || barrier.maySend(s.id, e);
  }

  private void send(Msg m, RangeEntry r, SendBarrier.Entry e, boolean resend) {
    Slot s = currentSlots.get(r.start());
    if (s == null) {
      s = new Slot(nextSlotId++, r.start(), r.end(), ticker.nanos());
      currentSlots.put(r.start(), s);
      activeSlots.put(s.id, s);
    }
    barrier.sent(s.id, m.seq, e);
    s.unsettled++;
    m.slot = s;
    m.tag = view.version();
    m.rangeStart = r.start();
    if (resend) {
      resent++;
    }
    String dest = e.destination();
    Link l = links.get(dest);
    if (l == null) {
      l = new Link(dest, view.server(dest).address(), ticker.nanos());
      links.put(dest, l);
    }
    l.queue.add(m);
    dirty.add(l);
  }

  /** Resends a slot's refused messages if C4 allows now; schedules a retry after a backoff. */
  private void trySlot(Slot s) {
    if (s.refused == 0 || s.unsettled > 0 || activeSlots.get(s.id) != s) {
      return;
    }
    long v = view.version();
    if (v < barrier.refusalVersion(s.id)) {
      return; // the map change will bring us back
    }
    long now = ticker.nanos();
    if (now - s.notBefore < 0) {
      scheduleSlot(s);
      return;
    }
    int first = view.indexOfHash(s.start);
    for (int i = first; i < view.rangeCount(); i++) {
      RangeEntry r = view.range(i);
      if (i > first && !before(r.start(), s.end)) {
        break;
      }
      if (!sendable(SendBarrier.Entry.of(r))) {
        return; // no owner yet: a map change will bring us back
      }
    }
    List<Msg> resends = barrier.takeResends(s.id, v);
    s.refused = 0;
    retireIfIdle(s);
    for (Msg m : resends) {
      RangeEntry r = view.rangeFor(m.hash);
      send(m, r, SendBarrier.Entry.of(r), true);
    }
  }

  private void scheduleSlot(Slot s) {
    long at = s.notBefore;
    if (s.timerScheduled && s.timerAt - at <= 0) {
      return; // a timer fires no later than needed
    }
    s.timerScheduled = true;
    s.timerAt = at;
    schedule(() -> {
      if (s.timerAt == at) {
        s.timerScheduled = false;
      }
      trySlot(s);
      pumpOverlapping(s.start, s.end);
    }, at - ticker.nanos());
  }

  private void retireIfIdle(Slot s) {
    if (s.unsettled == 0 && s.refused == 0 && activeSlots.remove(s.id) != null) {
      if (currentSlots.get(s.start) == s) {
        currentSlots.remove(s.start);
      }
      staleSlots.remove(s);
      barrier.acked(s.id, NO_SEQ); // drops the barrier's empty state for the slot
    }
  }

  /** Sends what settling these slots allows: their resends first, then the ranges over them. */
  private void afterSettle(Set<Slot> touched) {
    for (Slot s : touched) {
      retireIfIdle(s);
    }
    for (Slot s : touched) {
      trySlot(s);
    }
    for (Slot s : touched) {
      pumpOverlapping(s.start, s.end);
    }
  }

  private void pumpOverlapping(long start, long end) {
    if (view == null || buckets.isEmpty()) {
      return;
    }
    int first = view.indexOfHash(start);
    for (int i = first; i < view.rangeCount(); i++) {
      RangeEntry r = view.range(i);
      if (i > first && !before(r.start(), end)) {
        break;
      }
      Bucket b = buckets.get(r.start());
      if (b != null) {
        pumpBucket(b);
      }
    }
  }

  /** Whether position {@code x} lies before the range end {@code end} (0 meaning 2^64). */
  private static boolean before(long x, long end) {
    return end == Ring.RING_END || Long.compareUnsigned(x, end) < 0;
  }

  private static boolean overlaps(long aStart, long aEnd, long bStart, long bEnd) {
    return before(bStart, aEnd) && before(aStart, bEnd);
  }

  // ---------------------------------------------------------------- map changes

  private void onMap(ClusterImage image, MapDelta delta) {
    lock.lock();
    try {
      if (closed || (view != null && image.version() <= view.version())) {
        return;
      }
      view = image;
      rebucketIfNeeded();
      currentSlots.clear();
      staleSlots.clear();
      for (Slot s : activeSlots.values()) {
        int i = image.indexOfStart(s.start);
        if (i >= 0 && image.range(i).end() == s.end && !currentSlots.containsKey(s.start)) {
          currentSlots.put(s.start, s);
        } else {
          staleSlots.add(s);
        }
      }
      for (Link l : new ArrayList<>(links.values())) {
        QueueServerInfo s = image.server(l.serverId);
        if (s == null || !s.address().equals(l.address)) {
          closeLink(l);
        }
      }
      for (Slot s : new ArrayList<>(activeSlots.values())) {
        trySlot(s);
      }
      for (Bucket b : new ArrayList<>(buckets.values())) {
        if (buckets.get(b.start) == b) {
          pumpBucket(b);
        }
      }
    } finally {
      release();
    }
  }

  /** Rebuilds the pending FIFOs by hash, in sequence order, if the ranges they name changed. */
  private void rebucketIfNeeded() {
    boolean same = unrouted.isEmpty();
    if (same) {
      for (Bucket b : buckets.values()) {
        int i = view.indexOfStart(b.start);
        if (i < 0 || view.range(i).end() != b.end) {
          same = false;
          break;
        }
      }
    }
    if (same) {
      return;
    }
    List<Msg> all = new ArrayList<>(unrouted);
    for (Bucket b : buckets.values()) {
      all.addAll(b.queue);
    }
    all.sort(Comparator.comparingLong(m -> m.seq));
    unrouted.clear();
    buckets.clear();
    for (Msg m : all) {
      RangeEntry r = view.rangeFor(m.hash);
      buckets.computeIfAbsent(r.start(), k -> new Bucket(r.start(), r.end())).queue.add(m);
    }
  }

  // ---------------------------------------------------------------- links (under the lock)

  private void flushLink(Link l) {
    if (closed || links.get(l.serverId) != l) {
      return;
    }
    if (!l.open) {
      if (l.queue.isEmpty()) {
        return;
      }
      long now = ticker.nanos();
      if (now - l.retryAt < 0) {
        if (!l.retryScheduled) {
          l.retryScheduled = true;
          schedule(() -> {
            l.retryScheduled = false;
            flushLink(l);
          }, l.retryAt - now);
        }
        return;
      }
      l.open = true;
      l.overloadsSeen = 0;
      long gen = l.gen;
      submitIo(() -> ioOpen(l, gen));
    }
    long gen = l.gen;
    while (l.outstanding.size() < config.maxRequestsPerLink() && !l.queue.isEmpty()) {
      // Every seq below the lowest unfinished one is settled: the server may forget them.
      PublishRequest.Builder rb = PublishRequest.newBuilder().setProducer(id)
          .setProducerEpoch(epoch).setSettledBelow(live.isEmpty() ? nextSeq : live.firstKey())
          .setOverloadsSeen(l.overloadsSeen);
      List<Msg> items = new ArrayList<>();
      long bytes = 0;
      while (!l.queue.isEmpty() && items.size() < config.maxBatchItems()) {
        Msg m = l.queue.peek();
        if (!items.isEmpty() && bytes + m.size > config.maxBatchBytes()) {
          break;
        }
        l.queue.poll();
        items.add(m);
        bytes += m.size;
        rb.addItems(PublishItem.newBuilder()
            .setSeq(m.seq)
            .setKey(m.key)
            .setPayload(m.payload)
            .setMapVersion(m.tag)
            .setRangeStart(m.rangeStart)
            .addAllMaybeStoredAt(m.maybeStoredAt));
      }
      l.outstanding.add(new Batch(items));
      requests++;
      PublishRequest request = rb.build();
      submitIo(() -> ioWrite(l, gen, request));
    }
  }

  /** The link failed: everything unsettled on it is refused at the current version. */
  private void linkFailed(Link l, long gen, String why) {
    if (l.gen != gen || closed) {
      return;
    }
    l.gen++;
    l.open = false;
    l.failures++;
    linkFailures++;
    long now = ticker.nanos();
    l.retryAt = now + backoffNanos(l.failures);
    int unsettled = l.queue.size();
    for (Batch b : l.outstanding) {
      unsettled += b.items().size();
    }
    LOG.info("publish stream to {} at {} failed ({}); {} unsettled messages will be resent; "
        + "reconnecting in {} ms", l.serverId, l.address, why, unsettled,
        (l.retryAt - now) / 1_000_000);
    submitIo(() -> ioCancel(l, gen, "link failed"));
    refuseAll(l, l.retryAt);
  }

  /** The map dropped the server or moved it: close the link; its unsettled items are resent. */
  private void closeLink(Link l) {
    links.remove(l.serverId);
    dirty.remove(l);
    long gen = l.gen;
    l.gen++;
    l.open = false;
    submitIo(() -> ioCancel(l, gen, "server left the map or moved"));
    refuseAll(l, ticker.nanos());
  }

  private void refuseAll(Link l, long notBefore) {
    long v = view.version();
    Set<Slot> touched = new LinkedHashSet<>();
    List<Msg> all = new ArrayList<>();
    for (Batch b : l.outstanding) {
      for (Msg m : b.items()) {
        // Written, unanswered: the server may have stored it (the outcome is unknown).
        if (!m.maybeStoredAt.contains(l.serverId)
            && m.maybeStoredAt.size() < Limits.MAX_MAYBE_STORED_AT) {
          List<String> at = new ArrayList<>(m.maybeStoredAt);
          at.add(l.serverId);
          m.maybeStoredAt = List.copyOf(at);
        }
        all.add(m);
      }
    }
    all.addAll(l.queue);
    l.outstanding.clear();
    l.queue.clear();
    for (Msg m : all) {
      Slot s = m.slot;
      barrier.refused(s.id, m.seq, m, v);
      s.unsettled--;
      s.refused++;
      if (s.notBefore - notBefore < 0) {
        s.notBefore = notBefore;
      }
      touched.add(s);
    }
    afterSettle(touched);
  }

  private void onResponse(Link l, long gen, PublishResponse resp) {
    lock.lock();
    try {
      if (l.gen != gen || closed) {
        return;
      }
      Batch b = l.outstanding.peek();
      String bad = null;
      if (b == null) {
        bad = "a response without a request";
      } else if (resp.getResultsCount() != b.items().size()) {
        bad = resp.getResultsCount() + " results for " + b.items().size() + " items";
      } else {
        for (int i = 0; i < resp.getResultsCount(); i++) {
          if (resp.getResults(i).getSeq() != b.items().get(i).seq) {
            bad = "result " + i + " is for seq " + resp.getResults(i).getSeq() + ", not "
                + b.items().get(i).seq;
            break;
          }
        }
      }
      if (bad != null) {
        LOG.warn("queue server {} broke the publish protocol: {}", l.serverId, bad);
        linkFailed(l, gen, "protocol error: " + bad);
        return;
      }
      l.outstanding.poll();
      l.failures = 0;
      long now = ticker.nanos();
      boolean anyOverloaded = false;
      for (PublishResult res : resp.getResultsList()) {
        if (res.getStatus() == PublishStatus.OVERLOADED) {
          anyOverloaded = true;
          l.overloadsSeen++;
        }
      }
      long overloadUntil = 0;
      if (anyOverloaded) {
        l.overloadStreak++;
        overloadUntil = now + backoffNanos(l.overloadStreak);
      } else {
        l.overloadStreak = 0;
      }
      Set<Slot> touched = new LinkedHashSet<>();
      Map<Slot, Long> turnedBack = new HashMap<>(); // slot -> highest refusal version
      for (int i = 0; i < b.items().size(); i++) {
        Msg m = b.items().get(i);
        PublishResult res = resp.getResults(i);
        Slot s = m.slot;
        touched.add(s);
        s.unsettled--;
        if (res.getStatus() == PublishStatus.WRONG_OWNER
            || res.getStatus() == PublishStatus.OVERLOADED) {
          long v = res.getStatus() == PublishStatus.WRONG_OWNER ? res.getMapVersion() : 0;
          turnedBack.merge(s, v, Math::max);
        }
        switch (res.getStatus()) {
          case ACCEPTED -> {
            barrier.acked(s.id, m.seq);
            s.quietRefusals = 0;
            acknowledged++;
            PublishAck ack = new PublishAck(m.seq, id, l.serverId, m.tag, now - m.publishedNanos,
                res.getDuplicate());
            if (res.getDuplicate()) {
              duplicates++;
            }
            finish(m, () -> m.future.complete(ack));
          }
          case WRONG_OWNER -> {
            barrier.refused(s.id, m.seq, m, res.getMapVersion());
            s.refused++;
            refused++;
            router.expectVersion(res.getMapVersion());
            if (res.getMapVersion() <= m.tag) {
              // The server knows no newer map than we routed by: nothing to wait for, so back
              // off rather than resend in a tight loop.
              s.quietRefusals++;
              long until = now + backoffNanos(s.quietRefusals);
              if (s.notBefore - until < 0) {
                s.notBefore = until;
              }
            }
          }
          case OVERLOADED -> {
            barrier.refused(s.id, m.seq, m, 0);
            s.refused++;
            overloaded++;
            if (s.notBefore - overloadUntil < 0) {
              s.notBefore = overloadUntil;
            }
          }
          default -> {
            barrier.acked(s.id, m.seq); // settled for good: never resent
            rejected++;
            PublishRejectedException e = new PublishRejectedException(m.seq, l.serverId,
                res.getStatus() == PublishStatus.REJECTED ? res.getDetail()
                    : "status " + res.getStatus() + " " + res.getDetail());
            finish(m, () -> m.future.completeExceptionally(e));
          }
        }
      }
      if (!turnedBack.isEmpty()) {
        takeBackUnwritten(l, turnedBack);
      }
      afterSettle(touched);
      dirty.add(l);
    } finally {
      release();
    }
  }

  /**
   * After a refusal or an overload of a slot's message, the slot's later messages still waiting
   * on the link (not yet written) are refused here too. Written, they could reach a server that
   * has room again, or has passed what made it refuse, and be accepted ahead of the resend. They
   * were never sent, so taking them back duplicates nothing.
   */
  private void takeBackUnwritten(Link l, Map<Slot, Long> turnedBack) {
    for (java.util.Iterator<Msg> it = l.queue.iterator(); it.hasNext(); ) {
      Msg m = it.next();
      Long v = turnedBack.get(m.slot);
      if (v != null) {
        it.remove();
        barrier.refused(m.slot.id, m.seq, m, v);
        m.slot.unsettled--;
        m.slot.refused++;
      }
    }
  }

  private void onStreamEnd(Link l, long gen, Throwable t) {
    lock.lock();
    try {
      if (l.gen != gen || closed) {
        return;
      }
      if (t == null && l.outstanding.isEmpty() && l.queue.isEmpty()) {
        l.gen++; // the server ended an idle stream: reopen on next use
        l.open = false;
        return;
      }
      Status s = t == null ? Status.UNAVAILABLE.withDescription("stream completed by server")
          : Status.fromThrowable(t);
      linkFailed(l, gen, s.getCode() + (s.getDescription() == null ? "" : ": "
          + s.getDescription()));
    } finally {
      release();
    }
  }

  /** Takes the message out of the session; its future is completed after the lock. */
  private void finish(Msg m, Runnable completion) {
    if (live.remove(m.seq) == null) {
      return;
    }
    completions.add(completion);
    notFull.signal();
    if (live.isEmpty()) {
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

  /** Flushes the links touched under the lock, releases it, then completes futures. */
  private void release() {
    List<Runnable> todo = null;
    try {
      if (!dirty.isEmpty()) {
        List<Link> list = new ArrayList<>(dirty);
        dirty.clear();
        for (Link l : list) {
          flushLink(l);
        }
      }
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

  private void ioOpen(Link l, long gen) {
    if (l.ioCall != null) {
      l.ioCall.cancel("superseded by a new stream", null);
      l.ioCall = null;
    }
    try {
      QueueServiceGrpc.QueueServiceStub stub =
          QueueServiceGrpc.newStub(endpoints.channel(l.address));
      stub.publish(new ClientResponseObserver<PublishRequest, PublishResponse>() {
        @Override
        public void beforeStart(ClientCallStreamObserver<PublishRequest> requestStream) {
          l.ioCall = requestStream;
          l.ioGen = gen;
        }

        @Override
        public void onNext(PublishResponse value) {
          onResponse(l, gen, value);
        }

        @Override
        public void onError(Throwable t) {
          onStreamEnd(l, gen, t);
        }

        @Override
        public void onCompleted() {
          onStreamEnd(l, gen, null);
        }
      });
    } catch (RuntimeException e) {
      l.ioCall = null;
      lock.lock();
      try {
        linkFailed(l, gen, "cannot open a stream: " + e);
      } finally {
        release();
      }
    }
  }

  private void ioWrite(Link l, long gen, PublishRequest request) {
    if (l.ioCall == null || l.ioGen != gen) {
      return; // the stream failed; these items were refused and will be resent
    }
    try {
      l.ioCall.onNext(request);
    } catch (RuntimeException e) {
      // The call is closing; its onError settles the items.
      LOG.debug("write to {} failed: {}", l.serverId, e.toString());
    }
  }

  private void ioCancel(Link l, long gen, String why) {
    if (l.ioCall != null && l.ioGen == gen) {
      l.ioCall.cancel(why, null);
      l.ioCall = null;
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
        return live.isEmpty();
      }
      closing = true;
      notFull.signalAll();
      long left = timeout.toNanos();
      try {
        while (!live.isEmpty() && left > 0) {
          left = drained.awaitNanos(left);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      settled = live.isEmpty();
      if (!settled) {
        LOG.warn("producer {} closes with {} unfinished messages", id, live.size());
      }
      closed = true;
      for (Msg m : new ArrayList<>(live.values())) {
        PlbClientException e = PlbClientException.of(ErrorCode.UNAVAILABLE,
            "producer " + id + " closed before message " + m.seq + " was acknowledged", null);
        finish(m, () -> m.future.completeExceptionally(e));
      }
      for (Link l : links.values()) {
        long gen = l.gen;
        submitIo(() -> ioCancel(l, gen, "producer closed"));
      }
      links.clear();
      dirty.clear();
      buckets.clear();
      unrouted.clear();
      activeSlots.clear();
      currentSlots.clear();
      staleSlots.clear();
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
