package io.plb.client.agent;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.admin.PlbAdminClient.Report;
import io.plb.client.PlbClientException;
import io.plb.client.wire.Wire;
import io.plb.core.error.ErrorCode;
import io.plb.core.load.HotKeys;
import io.plb.core.load.LoadReport;
import io.plb.core.load.SliceLoadAccumulator;
import io.plb.client.agent.HandoverStore.BufferedHandover;
import io.plb.client.agent.HandoverStore.Held;
import io.plb.client.watch.MapWatcher;
import io.plb.core.handover.OwnerLease;
import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.Participant.TransferVerdict;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.HeartbeatRequest;
import io.plb.proto.v1.HeartbeatResponse;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferHeldResponse;
import io.plb.proto.v1.TransferOutcome;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The PLB agent a queue server embeds (DESIGN §5). It watches the shard map, applies the hold
 * rules of the pure {@link Participant} to every arriving message and transfer, carries out the
 * actions those rules return against the server's {@link HandoverStore}, sends transfers to peer
 * servers, and reports {@code HandoverReady}, {@code HandoverDrained} and {@code AbortReversed}
 * plus heartbeats to the PLB leader.
 *
 * <p><b>Thread model.</b> One lock guards the participant and orders every step that touches the
 * range state: map versions (from the watch thread), placements (the server calls {@link #place}
 * inside {@link #locked} together with its durable append, which makes C1's "seal and take the
 * hold buffer" one step), transfer verdicts and the answers to our own transfers. Network calls
 * run outside the lock: heartbeats and load reports each on a thread of their own; handover
 * reports, transfers and the late sender on the I/O pool, bounded in threads and queue
 * ({@link Builder#io}), where a send that finds it full is dropped and made again while owed
 * ({@link #submitIo}). The same report or transfer is never queued twice.
 *
 * <p><b>Invariants.</b> Actions on the store are carried out before the state they lead to is
 * persisted, and every action is idempotent, so a crash at any point repeats at most an action.
 * Reports and transfers leave only after that persist: what they announce (a seal, a stored
 * prefix) is durable before anyone can act on it. Reports and transfers still owed are sent
 * again every {@code resendInterval} ({@link Participant#resend}): every one of them is keyed by
 * {@code (range, handoverEpoch)} and a late or duplicated one is ignored by its receiver. What
 * the server still holds of ranges it lost while DOWN is found in the store on every map version
 * and resend round and placed by key in the current map, whatever splits and merges happened
 * since: taken back into the server's own queue, or sent to the keys' owners as late messages
 * until nothing is left. One late sender runs at a time (on an I/O thread, outside the lock but
 * for reading and dropping copies); it has at most one batch unanswered and sends it again
 * unchanged, so its receiver, which keeps a receipt of the last batch per sender, stores it once.
 * Only the sides are persisted, and only when they changed; refusal fences live while their
 * producer session has a publish stream here ({@link #streamsEnded}). A handover's transfer
 * goes in chunks read from the store one at a time, one unanswered, so memory holds a chunk
 * (transfer.chunk*) and a late batch (lateBatch.*) whatever the buffers and backlog hold; a
 * received chunk is stored with the transfer's progress in one write, and the participant hears
 * of a transfer only once its final chunk is stored.
 *
 * <p><b>Load reports</b> (DESIGN §6). The server counts its traffic into {@link #load()}; every
 * {@code reportInterval} the agent's own reporter thread drains it, adds the queue depth and
 * oldest age per slice that the server samples ({@link Builder#loadGauges}), and sends the report
 * to the leader, numbered within this run ({@code session}, {@code seq}). A report the leader did
 * not take stays queued and goes again, before newer ones, on the next round; the leader counts a
 * resent one once. At most {@value #MAX_PENDING_REPORTS} reports wait: older ones are dropped
 * (counted in {@link #loadReportsDropped()}), so a leader unreachable for longer loses the oldest
 * intervals' load, nothing else, and memory stays bounded. Report sending never holds the agent's
 * lock and never blocks the heartbeat or the handover reports.
 *
 * <p><b>Ownership lease</b> (docs/design.md §5 "Owner leases"). Heartbeats go from a thread of
 * their own every {@code heartbeatInterval}; the leader's answer grants a lease that runs from
 * the heartbeat's send time on this server's monotonic clock ({@link OwnerLease}). The server
 * accepts publishes and delivers messages only while {@link #holdsLease()}: a server paused or
 * cut off from the PLB cluster for longer than its lease stops serving every range before the
 * leader may force any of them away, and starts again only with a fresh lease and a map at least
 * as new as the one the grant named. Late messages are not taken without a lease either.
 */
public final class QueueServerAgent implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(QueueServerAgent.class);

  /** The producer name under which late messages are placed (no real producer has it). */
  private static final String LATE_PRODUCER = "\u0000late";

  private final String serverId;
  private final HandoverStore store;
  private final Participant participant;
  private final Endpoints plbEndpoints;
  private final PlbAdminClient leader;
  private final MapWatcher watcher;
  private final Duration resendInterval;
  private final Duration heartbeatInterval;
  private final Duration transferDeadline;
  private final LongSupplier heldCount;
  private final LongSupplier queuedCount;
  private final Ticker ticker;
  private final OwnerLease lease = new OwnerLease();
  private final List<Runnable> servingListeners = new CopyOnWriteArrayList<>();
  private final PlbAdminClient heartbeatClient;
  private final ScheduledExecutorService heartbeats;
  /** Whether the lease was held at the last check: changes are logged and announced. */
  private volatile boolean leaseHeld;
  private volatile String lastGrantRefusal = "";
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition versionAdvanced = lock.newCondition();
  private final Set<Long> awaitingBacklog = new HashSet<>();
  /** The sides as last written to the store. Under the lock. */
  private Set<Participant.Side> persistedSides = Set.of();
  private final AtomicLong statesWritten = new AtomicLong();
  private final Set<String> transfersInFlight = ConcurrentHashMap.newKeySet();
  /** Copies in the late batch awaiting its answer: not taken back meanwhile. Under the lock. */
  private final Set<Held> lateInFlight = new HashSet<>();
  /**
   * Ranges (start → end) whose queued messages here were marked late since they became another
   * server's; under the lock.
   */
  private final Map<Long, Long> markedLeftovers = new HashMap<>();
  private final AtomicBoolean lateRunning = new AtomicBoolean();
  private volatile boolean lateKicked;
  /** The late batch sent and not yet answered; only the late sender touches it. */
  private volatile LateBatch pendingLate;
  private long lateBatchSeq;
  private final int lateBatchMessages;
  private final long lateBatchBytes;
  private final int chunkMessages;
  private final long chunkBytes;
  /**
   * Where each transfer of ours stands at its receiver, as the receiver last said, so a transfer
   * resent after a failed call resumes there. Lost in a restart: the receiver's answer to the
   * first chunk sent again says where to go on.
   */
  private final Map<String, Resume> resumes = new ConcurrentHashMap<>();

  /** The next chunk of a transfer to send and the cursor it starts after. */
  private record Resume(long chunk, byte[] cursor) {}

  /** Reports and transfers that leave once the state that led to them is persisted. */
  private final List<Send> pendingSends = new ArrayList<>();
  /** Handover reports queued or on their way: the same report is not queued twice. */
  private final Set<String> reportsInFlight = ConcurrentHashMap.newKeySet();
  private final AtomicLong ioDropped = new AtomicLong();
  private final Map<String, ManagedChannel> peers = new ConcurrentHashMap<>();
  /** Reports, transfers and the late sender: bounded in threads and queue (see submitIo). */
  private final ThreadPoolExecutor io;
  private final ScheduledExecutorService timers;
  private final AtomicLong reportsSent = new AtomicLong();
  private final AtomicLong transfersSent = new AtomicLong();
  private final AtomicLong lateReceived = new AtomicLong();
  private final SliceLoadAccumulator load;
  private final SliceLoadAccumulator.Gauges gauges;
  private final Duration reportInterval;
  private final LongSupplier wallMillis;
  private final PlbAdminClient loadClient;
  private final ScheduledExecutorService reporter;
  private final ArrayDeque<io.plb.proto.v1.LoadReport> outbox = new ArrayDeque<>();
  private final AtomicLong loadReportsSent = new AtomicLong();
  private final AtomicLong loadReportsDropped = new AtomicLong();
  private final long session;
  private long loadSeq;
  private long lastReportMillis;
  private volatile ClusterImage image = ClusterImage.EMPTY;
  /** The map version the restored sides were written at: no older map is taken after a restart. */
  private long mapFloor;

  /** Messages a late transfer carries at most, by default. */
  public static final int DEFAULT_LATE_BATCH_MESSAGES = 1000;
  /** Message bytes a late transfer carries at most, by default. */
  public static final long DEFAULT_LATE_BATCH_BYTES = 4L << 20;
  public static final int MAX_LATE_BATCH_MESSAGES = 100_000;

  /** Messages a chunk of a FORWARD or REVERSE transfer carries at most, by default. */
  public static final int DEFAULT_CHUNK_MESSAGES = 1000;
  /** Message bytes a chunk of a FORWARD or REVERSE transfer carries at most, by default. */
  public static final long DEFAULT_CHUNK_BYTES = 4L << 20;

  /** Refuses late batch limits outside their ranges (see {@link Builder#lateBatch}). */
  public static void checkLateBatch(long messages, long bytes) {
    checkBatch("lateBatch.messages", "lateBatch.bytes", messages, bytes);
  }

  /** Refuses transfer chunk limits outside their ranges (see {@link Builder#transferChunk}). */
  public static void checkTransferChunk(long messages, long bytes) {
    checkBatch("transfer.chunkMessages", "transfer.chunkBytes", messages, bytes);
  }

  /**
   * One rule for every batch a transfer carries: 1..{@value #MAX_LATE_BATCH_MESSAGES} messages
   * and 64 KiB..64 MiB, far under what a queue server takes in one request (256 MiB).
   */
  private static void checkBatch(String messagesKey, String bytesKey, long messages,
      long bytes) {
    if (messages < 1 || messages > MAX_LATE_BATCH_MESSAGES) {
      throw new IllegalArgumentException(messagesKey + " must be 1.." + MAX_LATE_BATCH_MESSAGES
          + ", not " + messages);
    }
    if (bytes < (64 << 10) || bytes > (64 << 20)) {
      throw new IllegalArgumentException(bytesKey + " must be 65536..67108864 (64 KiB..64 MiB), "
          + "not " + bytes);
    }
  }

  /** Threads of the agent's I/O pool, by default. */
  public static final int DEFAULT_IO_THREADS = 16;
  /** Sends that may wait for an I/O thread, by default. */
  public static final int DEFAULT_IO_QUEUE = 1000;

  /** Refuses I/O pool bounds outside their ranges (see {@link Builder#io}). */
  public static void checkIo(long threads, long queue) {
    // Two at least: the late sender may hold one thread for a long round.
    if (threads < 2 || threads > 1024) {
      throw new IllegalArgumentException("agentIo.threads must be 2..1024, not " + threads);
    }
    if (queue < 1 || queue > 1_000_000) {
      throw new IllegalArgumentException("agentIo.queue must be 1..1000000, not " + queue);
    }
  }

  /** Load reports kept for resending while the leader does not take them. */
  public static final int MAX_PENDING_REPORTS = 10;
  private volatile boolean closed;

  private QueueServerAgent(Builder b) {
    this.serverId = b.serverId;
    this.store = b.store;
    this.participant = new Participant(serverId);
    this.plbEndpoints = new Endpoints(b.plbEndpoints);
    this.leader = PlbAdminClient.newBuilder().endpoints(b.plbEndpoints)
        .deadline(Duration.ofSeconds(5)).build();
    this.resendInterval = b.resendInterval;
    this.heartbeatInterval = b.heartbeatInterval;
    this.transferDeadline = b.transferDeadline;
    this.lateBatchMessages = b.lateBatchMessages;
    this.lateBatchBytes = b.lateBatchBytes;
    this.chunkMessages = b.chunkMessages;
    this.chunkBytes = b.chunkBytes;
    this.heldCount = b.heldCount;
    this.queuedCount = b.queuedCount;
    this.ticker = b.ticker;
    // A heartbeat answered late only shortens the lease it brings (it counts from the send), so
    // its deadline is a couple of intervals, bounded to 1..5 s.
    this.heartbeatClient = PlbAdminClient.newBuilder().endpoints(b.plbEndpoints)
        .deadline(Duration.ofMillis(Math.max(1000,
            Math.min(5000, 2 * b.heartbeatInterval.toMillis())))).build();
    this.heartbeats = Executors.newSingleThreadScheduledExecutor(
        daemon("plb-agent-heartbeat-" + serverId));
    this.watcher = new MapWatcher(plbEndpoints, this::onMap);
    this.io = new ThreadPoolExecutor(b.ioThreads, b.ioThreads, 60, TimeUnit.SECONDS,
        new ArrayBlockingQueue<>(b.ioQueue), daemon("plb-agent-io-" + serverId),
        new ThreadPoolExecutor.AbortPolicy());
    io.allowCoreThreadTimeOut(true);
    this.timers = Executors.newSingleThreadScheduledExecutor(daemon("plb-agent-timer-" + serverId));
    this.load = new SliceLoadAccumulator(b.hotKeys);
    this.gauges = b.gauges;
    this.reportInterval = b.reportInterval;
    this.wallMillis = b.wallMillis;
    // A report waits at most two intervals (0.5..5 s) for a leader, then goes again next round.
    long wait = Math.max(500, Math.min(5000, 2 * b.reportInterval.toMillis()));
    this.loadClient = PlbAdminClient.newBuilder().endpoints(b.plbEndpoints)
        .deadline(Duration.ofMillis(wait)).build();
    this.reporter = Executors.newSingleThreadScheduledExecutor(daemon("plb-agent-load-" + serverId));
    this.session = Math.max(1, wallMillis.getAsLong());
    this.lastReportMillis = wallMillis.getAsLong();
  }

  public static Builder builder(String serverId, HandoverStore store) {
    return new Builder(serverId, store);
  }

  /** Settings of an agent. */
  public static final class Builder {
    private final String serverId;
    private final HandoverStore store;
    private List<String> plbEndpoints = Endpoints.LOCAL_CLUSTER;
    private Duration resendInterval = Duration.ofMillis(500);
    private Duration heartbeatInterval = Duration.ofSeconds(1);
    private Duration transferDeadline = Duration.ofSeconds(10);
    private int lateBatchMessages = DEFAULT_LATE_BATCH_MESSAGES;
    private long lateBatchBytes = DEFAULT_LATE_BATCH_BYTES;
    private int ioThreads = DEFAULT_IO_THREADS;
    private int ioQueue = DEFAULT_IO_QUEUE;
    private int chunkMessages = DEFAULT_CHUNK_MESSAGES;
    private long chunkBytes = DEFAULT_CHUNK_BYTES;
    private LongSupplier heldCount = () -> 0;
    private LongSupplier queuedCount = () -> 0;
    private Duration reportInterval = Duration.ofSeconds(1);
    private int hotKeys = 32;
    private SliceLoadAccumulator.Gauges gauges = SliceLoadAccumulator.NO_GAUGES;
    private LongSupplier wallMillis = System::currentTimeMillis;
    private Ticker ticker = Ticker.SYSTEM;

    private Builder(String serverId, HandoverStore store) {
      this.serverId = Objects.requireNonNull(serverId, "serverId");
      this.store = Objects.requireNonNull(store, "store");
    }

    public Builder plbEndpoints(List<String> addresses) {
      this.plbEndpoints = List.copyOf(addresses);
      return this;
    }

    /** How often reports and transfers still owed are sent again. */
    public Builder resendInterval(Duration d) {
      this.resendInterval = positive(d, "resendInterval");
      return this;
    }

    public Builder heartbeatInterval(Duration d) {
      this.heartbeatInterval = positive(d, "heartbeatInterval");
      return this;
    }

    /** How long a transfer waits for its receiver to reach the sender's map version. */
    public Builder transferDeadline(Duration d) {
      this.transferDeadline = positive(d, "transferDeadline");
      return this;
    }

    /**
     * The most messages ({@code lateBatch.messages}, 1..{@value #MAX_LATE_BATCH_MESSAGES}) and
     * payload bytes ({@code lateBatch.bytes}, 64 KiB..64 MiB; a larger message goes alone) one
     * late transfer carries.
     */
    public Builder lateBatch(long messages, long bytes) {
      checkLateBatch(messages, bytes);
      this.lateBatchMessages = (int) messages;
      this.lateBatchBytes = bytes;
      return this;
    }

    /**
     * The I/O pool's bounds: threads sending reports, transfers and late batches at once
     * ({@code agentIo.threads}, 2..1024) and sends waiting for one ({@code agentIo.queue},
     * 1..1000000). A send that finds both full is dropped and made again later (see submitIo).
     */
    public Builder io(long threads, long queue) {
      checkIo(threads, queue);
      this.ioThreads = (int) threads;
      this.ioQueue = (int) queue;
      return this;
    }

    /**
     * The most messages ({@code transfer.chunkMessages}, 1..{@value #MAX_LATE_BATCH_MESSAGES})
     * and payload bytes ({@code transfer.chunkBytes}, 64 KiB..64 MiB; a larger message goes
     * alone) one chunk of a FORWARD or REVERSE transfer carries: what the sender reads into
     * memory at a time, and the receiver takes in one request.
     */
    public Builder transferChunk(long messages, long bytes) {
      checkTransferChunk(messages, bytes);
      this.chunkMessages = (int) messages;
      this.chunkBytes = bytes;
      return this;
    }

    /** Figures the heartbeat carries. */
    public Builder loadFigures(LongSupplier queued, LongSupplier held) {
      this.queuedCount = queued;
      this.heldCount = held;
      return this;
    }

    /**
     * How often a load report goes to the leader ({@code telemetry.reportInterval}) and how many
     * hot keys it tracks ({@code telemetry.hotKeys}, 1..1024).
     */
    public Builder telemetry(Duration reportInterval, int hotKeys) {
      this.reportInterval = positive(reportInterval, "telemetry.reportInterval");
      if (hotKeys < 1 || hotKeys > HotKeys.MAX_KEYS) {
        throw new IllegalArgumentException("telemetry.hotKeys must be 1.."
            + HotKeys.MAX_KEYS + ", not " + hotKeys);
      }
      this.hotKeys = hotKeys;
      return this;
    }

    /** Where load reports get each slice's queue depth and oldest age from. */
    public Builder loadGauges(SliceLoadAccumulator.Gauges gauges) {
      this.gauges = Objects.requireNonNull(gauges, "gauges");
      return this;
    }

    /** The wall clock load reports are timed with (and the report session is taken from). */
    public Builder wallClock(LongSupplier wallMillis) {
      this.wallMillis = Objects.requireNonNull(wallMillis, "wallMillis");
      return this;
    }

    /** The monotonic clock the ownership lease is measured on. */
    public Builder ticker(Ticker ticker) {
      this.ticker = Objects.requireNonNull(ticker, "ticker");
      return this;
    }

    public QueueServerAgent build() {
      return new QueueServerAgent(this);
    }

    private static Duration positive(Duration d, String name) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + " must be positive");
      }
      return d;
    }
  }

  /** Restores the persisted state and starts watching the map, resending and heartbeating. */
  public QueueServerAgent start() {
    lock.lock();
    try {
      AgentState restored = AgentState.decode(store.loadAgentState());
      restored.restoreInto(participant);
      mapFloor = restored.mapVersion();
      persistedSides = new HashSet<>(participant.sides());
      if (!participant.sides().isEmpty()) {
        LOG.info("{}: restored {} open handover side(s)", serverId, participant.sides().size());
      }
    } finally {
      lock.unlock();
    }
    watcher.start(mapFloor);
    long resend = resendInterval.toMillis();
    timers.scheduleWithFixedDelay(this::resendOwed, resend, resend, TimeUnit.MILLISECONDS);
    long hb = heartbeatInterval.toMillis();
    heartbeats.scheduleWithFixedDelay(this::heartbeat, 0, hb, TimeUnit.MILLISECONDS);
    long every = reportInterval.toMillis();
    reporter.scheduleWithFixedDelay(this::reportLoad, every, every, TimeUnit.MILLISECONDS);
    return this;
  }

  // ------------------------------------------------------------------ load reports

  /**
   * Where the server counts its traffic: {@code recordIn} for every message it accepts from a
   * producer, {@code recordOut} for every message it delivers to a consumer.
   */
  public SliceLoadAccumulator load() {
    return load;
  }

  /** Makes and sends one load report now (the reporter thread does this every interval). */
  void reportLoad() {
    if (closed) {
      return;
    }
    try {
      long now = wallMillis.getAsLong();
      SliceLoadAccumulator.Drained d = load.drain(now, gauges);
      LoadReport report = new LoadReport(serverId, session, ++loadSeq,
          Math.max(0, now - lastReportMillis), d.slices(), d.hotKeys());
      lastReportMillis = now;
      outbox.addLast(Wire.toProto(report));
      while (outbox.size() > MAX_PENDING_REPORTS) {
        outbox.removeFirst();
        loadReportsDropped.incrementAndGet();
      }
      while (!outbox.isEmpty() && !closed) {
        try {
          loadClient.reportLoad(outbox.peekFirst());
          outbox.removeFirst();
          loadReportsSent.incrementAndGet();
        } catch (PlbClientException e) {
          if (e.code() == ErrorCode.INVALID_ARGUMENT || e.code() == ErrorCode.NOT_FOUND
              || e.code() == ErrorCode.FAILED_PRECONDITION) {
            // The leader will never take this one: sending it again cannot help.
            outbox.removeFirst();
            loadReportsDropped.incrementAndGet();
            LOG.warn("{}: load report refused: {}", serverId, e.getMessage());
          } else {
            LOG.debug("{}: load report not taken yet ({} waiting): {}", serverId, outbox.size(),
                e.getMessage());
            break;
          }
        }
      }
    } catch (RuntimeException e) {
      LOG.warn("{}: load report round failed", serverId, e);
    }
  }

  /** Load reports the leader took. */
  public long loadReportsSent() {
    return loadReportsSent.get();
  }

  /** Load reports dropped: refused, or pushed out while the leader did not take reports. */
  public long loadReportsDropped() {
    return loadReportsDropped.get();
  }

  public String serverId() {
    return serverId;
  }

  /** The map version this server has applied (0 before the first map). */
  public long version() {
    return image.version();
  }

  public ClusterImage image() {
    return image;
  }

  // ------------------------------------------------------------------ the publish path

  /** A step run under the agent's lock. */
  public interface LockedStep<T> {
    T run();
  }

  /**
   * Runs {@code step} under the agent's lock: a server places a batch with {@link #place} and
   * appends it durably inside one such step, so no map version or seal comes between.
   */
  public <T> T locked(LockedStep<T> step) {
    lock.lock();
    try {
      return step.run();
    } finally {
      lock.unlock();
    }
  }

  /**
   * Where a message goes (Participant rules C1–C3 and the refusal fence). Call inside
   * {@link #locked}, and store the message as decided before leaving it.
   */
  public Decision place(long hash, long tag, String producer) {
    if (!lock.isHeldByCurrentThread()) {
      throw new IllegalStateException("place must be called inside locked()");
    }
    return participant.place(hash, tag, producer);
  }

  /**
   * Every publish stream of producer session {@code producer} to this server has ended, after
   * its last request was handled: drops the session's refusal fences (DESIGN §5). Whatever the
   * producer has no answer for comes again on a new stream, in its order.
   */
  public void streamsEnded(String producer) {
    lock.lock();
    try {
      participant.dropFences(producer);
    } finally {
      lock.unlock();
    }
  }

  /** Producer sessions holding refusal fences here. */
  public int fencedProducers() {
    return locked(participant::fencedProducers);
  }

  /** How many times the agent state was written to the store since start. */
  public long statesWritten() {
    return statesWritten.get();
  }

  /** Waits until this server has applied map {@code version}; false on timeout. */
  public boolean awaitVersion(long version, Duration timeout) throws InterruptedException {
    long nanos = timeout.toNanos();
    lock.lock();
    try {
      while (image.version() < version) {
        if (nanos <= 0 || closed) {
          return false;
        }
        nanos = versionAdvanced.awaitNanos(nanos);
      }
      return true;
    } finally {
      lock.unlock();
    }
  }

  /**
   * Consumers acknowledged messages at these ring positions: if a range waiting for its backlog
   * to drain is now empty, seal it and transfer its hold buffer (C1). Call without holding locks.
   */
  public void onAcked(long hash) {
    boolean relevant;
    lock.lock();
    try {
      relevant = false;
      for (long start : awaitingBacklog) {
        RangeEntry r = rangeAt(start);
        if (r != null && Ring.contains(r.start(), r.end(), hash)) {
          relevant = true;
          break;
        }
      }
      if (relevant) {
        checkBacklogs();
      }
    } finally {
      lock.unlock();
    }
  }

  // ------------------------------------------------------------------ transfers received

  /**
   * A peer's {@code TransferHeld}: waits (up to the transfer deadline) for the map version it was
   * sent under, decides, stores an accepted chunk durably, and answers. A FORWARD or REVERSE
   * transfer comes in chunks (docs/design.md §5 "Chunked transfers"): each is stored with the
   * transfer's progress in one write; only the next chunk is stored, one already stored is
   * answered ALREADY_STORED, any other CHUNK_OUT_OF_ORDER, and every answer says how far the
   * transfer is stored. The participant hears of the transfer only when its final chunk is
   * stored. Blocking; call it from a thread that may block.
   */
  public TransferHeldResponse onTransfer(TransferHeldRequest req) throws InterruptedException {
    if (req.getDirection() == TransferDirection.LATE) {
      return onLate(req);
    }
    Direction dir = req.getDirection() == TransferDirection.FORWARD
        ? Direction.FORWARD : Direction.REVERSE;
    if (!awaitVersion(req.getMapVersion(), transferDeadline)) {
      return transferReply(TransferOutcome.TRANSFER_REFUSED,
          "this server has not reached map version " + req.getMapVersion());
    }
    long range = req.getRangeStart();
    long he = req.getHandoverEpoch();
    Buffer into = dir == Direction.FORWARD ? Buffer.PREFIX : Buffer.RETURNED;
    // An older sender sends the whole transfer in one request without a chunk number.
    long chunk = req.getChunk() == 0 ? 1 : req.getChunk();
    boolean last = req.getChunk() == 0 || req.getFinalChunk();
    lock.lock();
    try {
      TransferVerdict v = participant.acceptTransfer(range, he, dir, req.getMapVersion());
      switch (v) {
        case ACCEPT -> {
          HandoverStore.Progress p = store.transferProgress(range, he, into);
          if (p.complete()) {
            // Stored whole before a crash that came before the participant heard of it.
            execute(participant.onTransferStored(range, he, dir));
            persist();
            return progressReply(TransferOutcome.ALREADY_STORED, p);
          }
          if (chunk <= p.chunks()) {
            return progressReply(TransferOutcome.ALREADY_STORED, p);
          }
          if (chunk != p.chunks() + 1) {
            return progressReply(TransferOutcome.CHUNK_OUT_OF_ORDER, p);
          }
          HandoverStore.Progress next = new HandoverStore.Progress(chunk,
              req.getCursor().toByteArray(), last);
          if (last) {
            // The sender's sequences ride on the final chunk; merged before it is stored (a
            // resend of the chunk merges again, which changes nothing). They also take out of
            // the buffer this side filled with publishes meanwhile the resends of messages the
            // sender had stored.
            store.mergeSequences(req.getSequencesList(), range, he,
                dir == Direction.FORWARD ? Buffer.HELD : Buffer.POST_ABORT);
          }
          store.storeChunk(range, he, into, req.getMessagesList(), next);
          if (last) {
            execute(participant.onTransferStored(range, he, dir));
            persist();
            LOG.info("{}: stored {} transfer of range {} (handover epoch {}): {} chunk(s)",
                serverId, dir, Ring.hex(range), he, chunk);
          }
          return progressReply(TransferOutcome.STORED, next);
        }
        case DUPLICATE -> {
          // Repeat the stored step's follow-up: its report may have been lost.
          execute(participant.onTransferStored(range, he, dir));
          persist();
          HandoverStore.Progress p = store.transferProgress(range, he, into);
          return progressReply(TransferOutcome.ALREADY_STORED,
              new HandoverStore.Progress(Math.max(p.chunks(), chunk), p.cursor(), true));
        }
        default -> {
          return transferReply(TransferOutcome.TRANSFER_REFUSED,
              "no open " + dir + " handover of range " + Ring.hex(range)
                  + " at handover epoch " + he + " here");
        }
      }
    } finally {
      lock.unlock();
    }
  }

  private TransferHeldResponse progressReply(TransferOutcome outcome,
      HandoverStore.Progress p) {
    return transferReply(outcome, "").toBuilder().setStoredChunks(p.chunks())
        .setCursor(com.google.protobuf.ByteString.copyFrom(p.cursor()))
        .setComplete(p.complete()).build();
  }

  /**
   * Late messages from a server that lost ranges while DOWN. Each is placed like a new arrival of
   * no producer session: taken when its key is ours to queue now (we own its range, outside a
   * handover that holds arrivals), otherwise left for the sender to send on — the answer names
   * those. Late messages lost their order guarantee with their server; they join the back of the
   * queue. What we took is stored with a receipt of the batch, so a resend of it (a lost answer)
   * is answered the same and stores nothing again.
   */
  private TransferHeldResponse onLate(TransferHeldRequest req) throws InterruptedException {
    if (!awaitVersion(req.getMapVersion(), transferDeadline)) {
      return transferReply(TransferOutcome.TRANSFER_REFUSED,
          "this server has not reached map version " + req.getMapVersion());
    }
    lock.lock();
    try {
      LateReceipt last = LateReceipt.decode(store.lateReceipt(req.getFromServer()));
      if (last.session() == req.getLateSession()) {
        if (last.batch() == req.getLateBatch()) {
          return transferReply(TransferOutcome.ALREADY_STORED, "")
              .toBuilder().addAllNotTaken(last.notTaken()).build();
        }
        if (Long.compareUnsigned(req.getLateBatch(), last.batch()) < 0) {
          return transferReply(TransferOutcome.TRANSFER_REFUSED, "late batch "
              + req.getLateBatch() + " of " + req.getFromServer() + " was answered before batch "
              + last.batch() + ", which this server took");
        }
      }
      if (!holdsLease()) {
        // Its map may be stale: the sender tries again once this server is fenced no more.
        return transferReply(TransferOutcome.TRANSFER_REFUSED,
            "queue server " + serverId + " holds no ownership lease now");
      }
      List<StoredMessage> taken = new ArrayList<>();
      List<Integer> notTaken = new ArrayList<>();
      for (int i = 0; i < req.getMessagesCount(); i++) {
        StoredMessage m = req.getMessages(i);
        Decision d = participant.place(KeyHash.hash(m.getKey().toByteArray()),
            participant.version(), LATE_PRODUCER);
        if (d.placement() == Participant.Placement.QUEUE) {
          taken.add(m);
        } else {
          notTaken.add(i);
        }
      }
      if (!notTaken.isEmpty()) {
        // No order to keep among late messages, so no fence either.
        participant.dropFences(LATE_PRODUCER);
      }
      if (taken.isEmpty()) {
        return transferReply(TransferOutcome.TRANSFER_REFUSED,
            "this server takes none of these keys now");
      }
      store.queueLate(taken, req.getFromServer(),
          new LateReceipt(req.getLateSession(), req.getLateBatch(), notTaken).encode());
      lateReceived.addAndGet(taken.size());
      LOG.warn("{}: took {} late message(s) from {}{}", serverId, taken.size(),
          req.getFromServer(), notTaken.isEmpty() ? ""
              : "; " + notTaken.size() + " are not this server's to take now");
      return transferReply(notTaken.isEmpty() ? TransferOutcome.STORED
          : TransferOutcome.PARTLY_STORED, "").toBuilder().addAllNotTaken(notTaken).build();
    } finally {
      lock.unlock();
    }
  }

  private TransferHeldResponse transferReply(TransferOutcome outcome, String detail) {
    return TransferHeldResponse.newBuilder().setOutcome(outcome).setMapVersion(image.version())
        .setDetail(detail).build();
  }

  // ------------------------------------------------------------------ map versions

  private void onMap(ClusterImage next, MapDelta delta) {
    lock.lock();
    try {
      image = next;
      execute(participant.onMap(next));
      awaitingBacklog.removeIf(start -> participant.side(start) == null);
      findOrphans();
      persist();
      versionAdvanced.signalAll();
      if (!leaseHeld && !closed) {
        try {
          heartbeats.execute(this::checkLease); // a grant may have waited for this version
        } catch (java.util.concurrent.RejectedExecutionException e) {
          // closing
        }
      }
      servingChanged();
    } catch (RuntimeException e) {
      LOG.error("{}: applying map version {} failed", serverId, next.version(), e);
      throw e;
    } finally {
      lock.unlock();
    }
  }

  // ------------------------------------------------------------------ actions

  /** Carries out the participant's actions in order. Under the lock. */
  private void execute(List<Action> actions) {
    for (Action a : actions) {
      if (a instanceof Action.ReportReady r) {
        report(Report.READY, r.rangeStart(), r.handoverEpoch());
      } else if (a instanceof Action.ReportDrained r) {
        report(Report.DRAINED, r.rangeStart(), r.handoverEpoch());
      } else if (a instanceof Action.ReportReversed r) {
        report(Report.REVERSED, r.rangeStart(), r.handoverEpoch());
      } else if (a instanceof Action.AwaitBacklog w) {
        awaitingBacklog.add(w.rangeStart());
        checkBacklogs();
      } else if (a instanceof Action.Transfer t) {
        sendTransfer(t);
      } else if (a instanceof Action.Release r) {
        store.release(r.rangeStart(), r.handoverEpoch(), r.buffers());
        LOG.info("{}: released {} of range {} (handover epoch {})", serverId, r.buffers(),
            Ring.hex(r.rangeStart()), r.handoverEpoch());
      } else if (a instanceof Action.Discard d) {
        store.discard(d.rangeStart(), d.handoverEpoch(), d.buffers());
      } else if (a instanceof Action.Orphaned o) {
        // What we hold of it is found in the store by findOrphans, after these actions.
        LOG.info("{}: lost range {} (handover epoch {}) without handing it over", serverId,
            Ring.hex(o.rangeStart()), o.handoverEpoch());
      }
    }
  }

  /** Seals every range waiting for its backlog whose backlog is gone. Under the lock. */
  private void checkBacklogs() {
    for (Long start : new ArrayList<>(awaitingBacklog)) {
      RangeEntry r = rangeAt(start);
      if (r == null) {
        awaitingBacklog.remove(start);
        continue;
      }
      if (store.backlog(r.start(), r.end()) == 0) {
        awaitingBacklog.remove(start);
        List<Action> next = participant.onBacklogEmpty(start);
        if (!next.isEmpty()) {
          LOG.info("{}: backlog of {} drained: sealed, transferring the hold buffer", serverId,
              r.rangeText());
        }
        execute(next);
        persist();
      }
    }
  }

  private void report(Report kind, long rangeStart, long handoverEpoch) {
    if (closed) {
      return;
    }
    String key = kind + "/" + rangeStart + "/" + handoverEpoch;
    if (!reportsInFlight.add(key)) {
      return; // the same report is queued or on its way; the resend round makes it again if owed
    }
    reportsSent.incrementAndGet();
    // Sent once the state that led to it is persisted (see persist()).
    pendingSends.add(new Send(() -> {
      try {
        var out = leader.report(kind, serverId, rangeStart, handoverEpoch);
        LOG.info("{}: reported {} for range {} (handover epoch {}){}", serverId, kind,
            Ring.hex(rangeStart), handoverEpoch, out.getIgnored() ? " — ignored: "
                + out.getDetail() : " → version " + out.getVersion());
      } catch (RuntimeException e) {
        // Sent again by the resend timer while still owed.
        LOG.debug("{}: report {} for range {} failed: {}", serverId, kind, Ring.hex(rangeStart),
            e.getMessage());
      } finally {
        reportsInFlight.remove(key);
      }
    }, () -> reportsInFlight.remove(key)));
  }

  /**
   * Sends a transfer unless the same one is already on its way. Under the lock. The call leaves
   * with the reports, once the state that led to it is persisted (see {@link #persist}): a
   * forward transfer carries a sealed hold buffer, and had it left before the seal was durable,
   * a source restarted without the seal would take more into its hold buffer and send that
   * again; the target, which stored the first, would acknowledge the second as a duplicate, and
   * the rest would be discarded when the handover completed.
   */
  private void sendTransfer(Action.Transfer t) {
    String key = transferKey(t);
    if (closed || !transfersInFlight.add(key)) {
      return;
    }
    QueueServerInfo peer = image.server(t.to());
    long tag = image.version();
    RangeEntry range = rangeAt(t.rangeStart());
    long end = range == null ? 0 : range.end();
    transfersSent.incrementAndGet();
    pendingSends.add(new Send(() -> {
      try {
        if (peer == null) {
          throw new IllegalStateException("server " + t.to() + " is not in the map");
        }
        streamTransfer(t, key, peer.address(), tag, end);
      } catch (RuntimeException e) {
        LOG.info("{}: {} transfer of range {} to {} failed (will resend): {}", serverId,
            t.direction(), Ring.hex(t.rangeStart()), t.to(), e.getMessage());
      } finally {
        transfersInFlight.remove(key);
      }
    }, () -> transfersInFlight.remove(key)));
  }

  private static String transferKey(Action.Transfer t) {
    return transferKey(t.rangeStart(), t.handoverEpoch(), t.direction());
  }

  private static String transferKey(long rangeStart, long handoverEpoch, Direction d) {
    return rangeStart + "/" + handoverEpoch + "/" + d;
  }

  /**
   * Sends a transfer chunk by chunk on this I/O thread, one chunk unanswered at a time (the
   * flow control), each read from the store just before it goes: memory holds one chunk however
   * large the buffers are, and the agent's lock is taken only to hear the outcome. The sealed
   * buffers do not change while the transfer runs, so a chunk read again after a restart is the
   * same. Every answer says how far the receiver has stored the transfer, and the next chunk
   * follows that, so a resend after either side crashed resumes after the last chunk stored
   * durably. The transfer is acknowledged to the participant only once the receiver has stored
   * the final chunk; a refusal ends it as before. Stops when the participant no longer owes it.
   */
  private void streamTransfer(Action.Transfer t, String key, String address, long tag,
      long rangeEnd) {
    QueueServiceGrpc.QueueServiceBlockingStub stub =
        QueueServiceGrpc.newBlockingStub(peerChannel(address));
    Resume at = resumes.getOrDefault(key, new Resume(1, new byte[0]));
    long messages = 0;
    while (!closed) {
      if (!locked(() -> owes(t))) {
        resumes.remove(key);
        return;
      }
      HandoverStore.Chunk chunk = store.readChunk(t.rangeStart(), t.handoverEpoch(), t.buffers(),
          at.cursor(), chunkMessages, chunkBytes);
      TransferHeldRequest.Builder rb = TransferHeldRequest.newBuilder()
          .setFromServer(serverId)
          .setRangeStart(t.rangeStart())
          .setRangeEnd(rangeEnd)
          .setHandoverEpoch(t.handoverEpoch())
          .setDirection(t.direction() == Direction.FORWARD
              ? TransferDirection.FORWARD : TransferDirection.REVERSE)
          .setMapVersion(tag)
          .setChunk(at.chunk())
          .setFinalChunk(chunk.last())
          .setCursor(com.google.protobuf.ByteString.copyFrom(chunk.cursor()))
          .addAllMessages(chunk.messages());
      if (chunk.last()) {
        // What recognises producers' resends of the range's keys travels with it.
        rb.addAllSequences(store.sequencesIn(t.rangeStart(), rangeEnd));
      }
      TransferHeldRequest req = rb.build();
      TransferHeldResponse resp = stub
          .withDeadlineAfter(transferDeadline.toMillis() + 5_000, TimeUnit.MILLISECONDS)
          .transferHeld(req);
      TransferOutcome outcome = resp.getOutcome();
      if (outcome == TransferOutcome.TRANSFER_REFUSED) {
        resumes.remove(key);
        LOG.info("{}: {} transfer of range {} refused by {}: {}", serverId, t.direction(),
            Ring.hex(t.rangeStart()), t.to(), resp.getDetail());
        locked(() -> {
          execute(participant.onTransferRefused(t.rangeStart(), t.handoverEpoch()));
          persist();
          return null;
        });
        return;
      }
      if (outcome != TransferOutcome.STORED && outcome != TransferOutcome.ALREADY_STORED
          && outcome != TransferOutcome.CHUNK_OUT_OF_ORDER) {
        throw new IllegalStateException("unknown answer " + outcome);
      }
      if (outcome == TransferOutcome.STORED) {
        messages += chunk.messages().size();
      }
      if (resp.getComplete()) {
        resumes.remove(key);
        LOG.info("{}: {} transfer of range {} stored by {} ({} chunk(s); {} message(s) sent "
            + "in this run)", serverId, t.direction(), Ring.hex(t.rangeStart()), t.to(),
            resp.getStoredChunks(), messages);
        locked(() -> {
          execute(participant.onTransferAcked(t.rangeStart(), t.handoverEpoch(),
              t.direction()));
          persist();
          return null;
        });
        return;
      }
      if (resp.getStoredChunks() == 0 && outcome == TransferOutcome.STORED) {
        // A receiver that does not know chunks took this one as a whole transfer: nothing
        // follows it there, so the handover cannot complete (our buffer stays; the drain
        // timeout reverses it).
        throw new IllegalStateException(t.to() + " does not take chunked transfers");
      }
      at = new Resume(resp.getStoredChunks() + 1, resp.getCursor().toByteArray());
      resumes.put(key, at);
    }
  }

  /** Whether the participant still owes this transfer (its side is open and unacknowledged). */
  private boolean owes(Action.Transfer t) {
    Participant.Side s = participant.side(t.rangeStart());
    return s != null && s.handoverEpoch() == t.handoverEpoch() && s.sealed()
        && !s.bufferTransferred() && s.source() == (t.direction() == Direction.FORWARD);
  }

  /** Starts the late sender unless it runs; it looks again even if it is finishing a round. */
  private void kickLate() {
    if (closed) {
      return;
    }
    lateKicked = true;
    if (lateRunning.compareAndSet(false, true)) {
      submitIo(this::sendLate, () -> lateRunning.set(false));
    }
  }

  /**
   * The late sender: one at a time per server, rounds while anything moves. A round ends when
   * nothing it can send is taken; the next map version or resend round starts another.
   */
  private void sendLate() {
    try {
      while (!closed) {
        lateKicked = false;
        if (!sendLateRound()) {
          lateRunning.set(false);
          if (!lateKicked || closed || !lateRunning.compareAndSet(false, true)) {
            return;
          }
        }
      }
    } catch (RuntimeException e) {
      LOG.warn("{}: sending late messages failed", serverId, e);
    }
    lateRunning.set(false);
  }

  /**
   * Sends late batches — each to the owner of its messages' keys now, one destination at a time
   * — until nothing sendable is left or every destination refused. Returns whether anything was
   * taken. A batch whose answer was lost is sent again, the same, first: the receiver answers it
   * from its receipt.
   */
  private boolean sendLateRound() {
    boolean progress = false;
    Set<String> refusing = new HashSet<>();
    while (!closed) {
      LateBatch b = pendingLate;
      if (b != null && !stillReachable(b.to())) {
        // Its owner went DOWN or away with the outcome unknown: the messages are kept and go to
        // the new owners (at least once — the old one, if it took them, hands them on too).
        LOG.warn("{}: late batch {} to {} left unanswered; sending its messages anew", serverId,
            b.request().getLateBatch(), b.to());
        forget(b);
        b = null;
      }
      if (b == null) {
        b = locked(() -> nextLateBatch(refusing));
        if (b == null) {
          return progress;
        }
        pendingLate = b;
      }
      TransferHeldResponse resp;
      try {
        resp = QueueServiceGrpc.newBlockingStub(peerChannel(b.address()))
            .withDeadlineAfter(transferDeadline.toMillis() + 5_000, TimeUnit.MILLISECONDS)
            .transferHeld(b.request());
      } catch (RuntimeException e) {
        LOG.info("{}: late batch {} to {} not answered (will send it again): {}", serverId,
            b.request().getLateBatch(), b.to(), e.getMessage());
        return progress;
      }
      int n = b.request().getMessagesCount();
      Set<Integer> notTaken = new HashSet<>();
      switch (resp.getOutcome()) {
        case STORED -> { }
        case PARTLY_STORED, ALREADY_STORED -> notTaken.addAll(resp.getNotTakenList());
        case TRANSFER_REFUSED -> {
          for (int i = 0; i < n; i++) {
            notTaken.add(i);
          }
        }
        default -> {
          LOG.warn("{}: late batch {} to {}: unknown answer {}", serverId,
              b.request().getLateBatch(), b.to(), resp.getOutcome());
          return progress;
        }
      }
      List<Held> sent = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        if (!notTaken.contains(i)) {
          sent.addAll(b.copies().get(i));
        }
      }
      LateBatch done = b;
      locked(() -> {
        store.drop(sent);
        forget(done);
        return null;
      });
      int taken = n - (int) notTaken.stream().filter(i -> i >= 0 && i < n).count();
      if (taken > 0) {
        progress = true;
        LOG.warn("{}: sent {} late message(s) to {}, their keys' owner{}", serverId, taken,
            b.to(), taken < n ? "; " + (n - taken) + " not its keys at version "
                + resp.getMapVersion() + ", kept" : "");
      } else {
        refusing.add(b.to());
        LOG.info("{}: {} took none of {} late message(s) at version {}: {}", serverId, b.to(), n,
            resp.getMapVersion(), resp.getDetail());
      }
    }
    return progress;
  }

  /** A late batch: its request and, per message, the stored copies it came from. */
  private record LateBatch(String to, String address, TransferHeldRequest request,
      List<List<Held>> copies) {}

  /** Whether a batch's receiver is still in the map and not DOWN. */
  private boolean stillReachable(String server) {
    QueueServerInfo info = image.server(server);
    return info != null && info.state() != ServerState.DOWN;
  }

  /** The batch is answered or given up: its copies may be taken back again. */
  private void forget(LateBatch b) {
    locked(() -> {
      for (List<Held> l : b.copies()) {
        lateInFlight.removeAll(l);
      }
      return null;
    });
    pendingLate = null;
  }

  /**
   * The next late batch: queued messages of ranges we do not own, then the copies in buffers of
   * handovers no longer open here, all of whose keys belong to one server now (the first found
   * that has not refused in this round), one per message id, within the batch limits. Null when
   * nothing can be sent now. Under the lock.
   */
  private LateBatch nextLateBatch(Set<String> refusing) {
    if (image.version() == 0) {
      return null;
    }
    // The queue first: a key's queued messages came before what its handover buffers hold.
    LateCollector c = new LateCollector(refusing);
    for (RangeEntry r : rangesWithBacklog()) {
      if (leftoverQueue(r) && !c.offerAll(store.queued(r.start(), r.end(), lateBatchMessages,
          lateBatchBytes))) {
        break;
      }
    }
    for (BufferedHandover h : store.bufferedHandovers()) {
      if (c.full()) {
        break;
      }
      if (!isOpen(h)) {
        c.offerAll(store.buffered(h.rangeStart(), h.handoverEpoch(), lateBatchMessages,
            lateBatchBytes));
      }
    }
    if (c.to == null) {
      return null;
    }
    TransferHeldRequest.Builder req = TransferHeldRequest.newBuilder().setFromServer(serverId)
        .setDirection(TransferDirection.LATE).setMapVersion(image.version())
        .setLateSession(session).setLateBatch(++lateBatchSeq);
    List<List<Held>> copies = new ArrayList<>();
    for (List<Held> l : c.byId.values()) {
      req.addMessages(l.get(0).message());
      copies.add(l);
      lateInFlight.addAll(l);
    }
    return new LateBatch(c.to, image.server(c.to).address(), req.build(), copies);
  }

  /** Gathers one late batch. Under the lock. */
  private final class LateCollector {
    final Set<String> refusing;
    final Map<String, List<Held>> byId = new java.util.LinkedHashMap<>();
    String to;
    long bytes;

    LateCollector(Set<String> refusing) {
      this.refusing = refusing;
    }

    boolean full() {
      return byId.size() >= lateBatchMessages || bytes >= lateBatchBytes;
    }

    /** Offers copies in order; false once the batch is full. */
    boolean offerAll(List<Held> copies) {
      for (Held h : copies) {
        String dest = lateDestination(h.hash());
        if (dest == null || refusing.contains(dest) || lateInFlight.contains(h)
            || to != null && !to.equals(dest)) {
          continue;
        }
        List<Held> same = byId.get(h.id());
        if (same != null) {
          same.add(h); // another copy of a message in the batch: dropped with it
          continue;
        }
        long size = h.message().getSerializedSize();
        if (full() || !byId.isEmpty() && bytes + size > lateBatchBytes) {
          return false;
        }
        to = dest;
        bytes += size;
        byId.computeIfAbsent(h.id(), k -> new ArrayList<>()).add(h);
      }
      return !full();
    }
  }

  /**
   * The server a late message of ring position {@code hash} goes to now: its range's owner when
   * that is another server, not DOWN, and would queue it (no handover of the range past PREPARE);
   * null while it cannot be sent — our own range, unassigned, or in a handover we take part in or
   * that holds arrivals.
   */
  private String lateDestination(long hash) {
    RangeEntry r = image.rangeFor(hash);
    if (!r.isAssigned() || r.owner().equals(serverId) || participant.side(r.start()) != null
        || r.handover() != null && r.handover().phase() != HandoverPhase.PREPARE) {
      return null;
    }
    QueueServerInfo owner = image.server(r.owner());
    // A DRAINING owner still serves its ranges; a DOWN one's are about to be forced.
    return owner != null && owner.state() != ServerState.DOWN ? r.owner() : null;
  }

  /** Whether this buffered handover is one we take part in now. */
  private boolean isOpen(BufferedHandover h) {
    Participant.Side side = participant.side(h.rangeStart());
    return side != null && side.handoverEpoch() == h.handoverEpoch();
  }

  /**
   * The ranges of the map with messages in our deliverable queue, in map order: found from the
   * store's side, since this runs on every map version and resend round and a map may hold a
   * million ranges. Under the lock.
   */
  private List<RangeEntry> rangesWithBacklog() {
    List<RangeEntry> out = new ArrayList<>();
    for (OptionalLong h = store.nextQueuedHash(0); h.isPresent(); ) {
      RangeEntry r = image.rangeFor(h.getAsLong());
      out.add(r);
      h = r.end() == Ring.RING_END ? OptionalLong.empty() : store.nextQueuedHash(r.end());
    }
    return out;
  }

  /**
   * Whether the messages queued here of {@code r} — one of {@link #rangesWithBacklog}, so it has
   * some — are no longer ours: another server owns it and we take no part in a handover of it.
   */
  private boolean leftoverQueue(RangeEntry r) {
    return r.isAssigned() && !r.owner().equals(serverId) && participant.side(r.start()) == null;
  }

  private void resendOwed() {
    if (closed) {
      return;
    }
    lock.lock();
    try {
      execute(participant.resend());
      checkBacklogs();
      findOrphans(); // left over by a crash, or refused by the owner until now
      persist();
    } catch (RuntimeException e) {
      LOG.warn("{}: resend round failed", serverId, e);
    } finally {
      lock.unlock();
    }
  }

  /**
   * Sends one heartbeat and takes the lease its answer grants, measured from the send. Runs on
   * the heartbeat thread, which also notices the lease running out between answers.
   */
  private void heartbeat() {
    if (closed) {
      return;
    }
    long sent = ticker.nanos();
    try {
      HeartbeatResponse resp = heartbeatClient.heartbeat(HeartbeatRequest.newBuilder()
          .setServerId(serverId).setMapVersion(image.version())
          .setQueued(queuedCount.getAsLong()).setHeld(heldCount.getAsLong()).build());
      // The lease counts only from that version on: a watch that does not bring it soon is on a
      // node that cannot (cut off silently), and the watcher moves on.
      watcher.expect(resp.getVersion());
      if (resp.getLeaseMillis() > 0) {
        boolean heldBefore = holdsLease();
        lease.granted(sent, TimeUnit.MILLISECONDS.toNanos(resp.getLeaseMillis()),
            resp.getVersion());
        lastGrantRefusal = "";
        if (!heldBefore && leaseHeld && holdsLease()) {
          // The lease ran out and came back between two checks (a heartbeat answered late):
          // checkLease sees no change, but whoever found it gone meanwhile — the dispatcher —
          // is waiting to be told that it may serve again.
          servingChanged();
        }
      } else if (!resp.getDetail().equals(lastGrantRefusal)) {
        lastGrantRefusal = resp.getDetail();
        LOG.warn("{}: the PLB leader grants no lease: {}", serverId, resp.getDetail());
      }
    } catch (RuntimeException e) {
      LOG.debug("{}: heartbeat failed: {}", serverId, e.getMessage());
    } finally {
      checkLease();
    }
  }

  /**
   * Whether this server holds its ownership lease now: only then may it accept publishes and
   * deliver messages (docs/design.md §5 "Owner leases"). Cheap; any thread.
   */
  public boolean holdsLease() {
    return lease.holds(ticker.nanos(), image.version());
  }

  /**
   * Whether the key at ring position {@code hash} is in a range in a handover, by the map this
   * server has applied, with this server its source or its target.
   */
  public boolean inHandover(long hash) {
    ClusterImage now = image;
    if (now.rangeCount() == 0) {
      return false;
    }
    RangeEntry r = now.rangeFor(hash);
    return r.handover() != null
        && (serverId.equals(r.owner()) || serverId.equals(r.handover().target()));
  }

  /** Whether the key at ring position {@code hash} is in a range this server owns now. */
  public boolean owns(long hash) {
    ClusterImage now = image;
    return now.rangeCount() > 0 && serverId.equals(now.rangeFor(hash).owner());
  }

  /** Milliseconds left on the ownership lease (0 when none is held). */
  public long leaseRemainingMillis() {
    return TimeUnit.NANOSECONDS.toMillis(lease.remainingNanos(ticker.nanos(), image.version()));
  }

  /**
   * Runs {@code listener} (on an agent thread) whenever what this server may serve can have
   * grown: it comes to hold its lease, or applies a map version (a range may be its own again).
   */
  public void onServingChange(Runnable listener) {
    servingListeners.add(Objects.requireNonNull(listener, "listener"));
  }

  private void servingChanged() {
    for (Runnable r : servingListeners) {
      try {
        r.run();
      } catch (RuntimeException e) {
        LOG.warn("{}: serving listener failed", serverId, e);
      }
    }
  }

  /** Logs a change of the lease and tells the listeners when it is held again. */
  private void checkLease() {
    boolean now = holdsLease();
    if (now == leaseHeld) {
      return;
    }
    leaseHeld = now;
    if (now) {
      LOG.info("{}: holds its ownership lease ({} ms left) at map version {}: serving", serverId,
          leaseRemainingMillis(), image.version());
      servingChanged();
    } else {
      long awaited = lease.awaitedVersion();
      LOG.warn("{}: ownership lease lost ({}): accepting and delivering nothing until the PLB "
          + "leader renews it", serverId, awaited > image.version()
              ? "waiting for map version " + awaited + ", at " + image.version()
              : "no renewal from the PLB leader in time");
    }
  }

  /**
   * Persists the participant's sides, then sends the reports it led to. Under the lock. Sides
   * equal to the last ones written are not written again: the resend round persists every
   * {@code resendInterval}, and each write is synced.
   */
  private void persist() {
    Set<Participant.Side> sides = new HashSet<>(participant.sides());
    if (!sides.equals(persistedSides)) {
      store.saveAgentState(new AgentState(List.copyOf(sides), image.version()).encode());
      // A handover whose side is gone for good takes no transfer any more: its progress goes.
      Set<HandoverStore.BufferedHandover> open = new HashSet<>();
      for (Participant.Side side : sides) {
        open.add(new HandoverStore.BufferedHandover(side.rangeStart(), side.handoverEpoch()));
      }
      for (Participant.Side gone : persistedSides) {
        if (!open.contains(new HandoverStore.BufferedHandover(gone.rangeStart(),
            gone.handoverEpoch()))) {
          store.forgetTransfers(gone.rangeStart(), gone.handoverEpoch());
          for (Direction d : Direction.values()) {
            resumes.remove(transferKey(gone.rangeStart(), gone.handoverEpoch(), d));
          }
        }
      }
      persistedSides = sides;
      statesWritten.incrementAndGet();
    }
    for (Send send : pendingSends) {
      submitIo(send.task(), send.dropped());
    }
    pendingSends.clear();
  }

  /** A report or transfer to send, and what undoes its in-flight mark if it is dropped. */
  private record Send(Runnable task, Runnable dropped) {}

  /**
   * Runs {@code task} on the I/O pool; when its threads and queue are full (or it is closed) the
   * task is dropped: {@code dropped} runs here and the drop is counted. Dropping keeps the
   * promise because everything the pool runs is made again until it is done: a handover report
   * or transfer still owed is re-issued every {@code resendInterval} ({@link Participant#resend};
   * each is keyed by {@code (range, handoverEpoch)}, so a late duplicate is ignored), and the
   * late sender is kicked again by every map version and resend round ({@link #findOrphans}),
   * keeping its unanswered batch to send unchanged. {@code dropped} clears the in-flight mark
   * that would otherwise stop that repeat. The submitter must not wait instead: it holds the
   * agent's lock ({@link #persist}), which a transfer's answer needs. Heartbeats and load
   * reports have threads of their own and never go through this pool.
   */
  void submitIo(Runnable task, Runnable dropped) {
    try {
      io.execute(task);
    } catch (RejectedExecutionException e) {
      dropped.run();
      if (!closed) {
        long n = ioDropped.incrementAndGet();
        if (n == 1 || n % 100 == 0) {
          LOG.warn("{}: I/O pool full ({} threads, {} queued; agentIo.threads, agentIo.queue): "
              + "{} send(s) dropped so far, each is made again while still owed", serverId,
              io.getMaximumPoolSize(), io.getQueue().size(), n);
        }
      }
    }
  }

  /** Reports, transfers and late-sender runs dropped because the I/O pool was full. */
  public long ioDropped() {
    return ioDropped.get();
  }

  /**
   * What this server still holds of ranges it lost while DOWN: the buffers of handovers no longer
   * open here, and queued messages of ranges it does not own — found in the store, since the
   * participant's {@code Orphaned} action is not persisted and a crash may come before its
   * messages are sent. Held by the range they came in, they are placed by key now, whatever
   * splits and merges happened since: buffered messages whose keys are ours again go back into
   * our own queue, marked late; the rest are sent to their keys' owners as late messages.
   * Under the lock.
   */
  private void findOrphans() {
    if (image.version() == 0) {
      return;
    }
    boolean toSend = false;
    for (BufferedHandover h : store.bufferedHandovers()) {
      if (isOpen(h)) {
        continue;
      }
      // Read at most lateBatch.bytes at a time, and take back at most lateBatch.messages a
      // round: a large leftover neither fills memory nor holds up publishes for long.
      int taken = 0;
      while (taken < lateBatchMessages) {
        List<Held> copies = store.buffered(h.rangeStart(), h.handoverEpoch(),
            lateBatchMessages - taken, lateBatchBytes);
        List<Held> ours = new ArrayList<>();
        for (Held c : copies) {
          if (!lateInFlight.contains(c) && image.rangeFor(c.hash()).owner().equals(serverId)) {
            ours.add(c);
          }
        }
        if (!ours.isEmpty()) {
          LOG.warn("{}: took back {} message(s) it still held of range {} (handover epoch {}) "
              + "as late messages", serverId, ours.size(), Ring.hex(h.rangeStart()),
              h.handoverEpoch());
          store.requeueLate(ours);
          taken += ours.size();
        }
        if (ours.size() < copies.size()) {
          toSend = true;
          break; // what is left at the front goes to other owners first
        }
        if (copies.isEmpty()) {
          break;
        }
      }
    }
    Map<Long, Long> leftovers = new HashMap<>();
    for (RangeEntry r : rangesWithBacklog()) {
      if (!leftoverQueue(r)) {
        continue;
      }
      toSend = true;
      leftovers.put(r.start(), r.end());
      if (!Long.valueOf(r.end()).equals(markedLeftovers.get(r.start()))) {
        // Another server owns these keys now. Marked late before they are sent on: should the
        // range come back here first, they are delivered as late, not as if in order ahead of
        // what the other owner delivered meanwhile (found by the seeded simulation).
        int n = store.markQueuedLate(r.start(), r.end());
        if (n > 0) {
          LOG.warn("{}: {} message(s) queued here of range {}, now {}'s, marked late", serverId,
              n, r.rangeText(), r.owner());
        }
      }
    }
    // Marked once per stretch while it stays another's; a range ours again is forgotten, so
    // what it queues afterwards is marked when it is lost again.
    markedLeftovers.clear();
    markedLeftovers.putAll(leftovers);
    if (toSend) {
      kickLate();
    }
  }

  private RangeEntry rangeAt(long start) {
    int i = image.indexOfStart(start);
    return i < 0 ? null : image.range(i);
  }

  private ManagedChannel peerChannel(String address) {
    return peers.computeIfAbsent(address, a -> NettyChannelBuilder.forTarget(a).usePlaintext()
        .maxInboundMessageSize(256 << 20).build());
  }

  /** Open handover sides, for status pages. */
  public List<Participant.Side> sides() {
    return locked(participant::sides);
  }

  public long lateReceived() {
    return lateReceived.get();
  }

  @Override
  public void close() {
    closed = true;
    watcher.close();
    timers.shutdownNow();
    heartbeats.shutdownNow();
    reporter.shutdownNow();
    io.shutdownNow();
    lock.lock();
    try {
      versionAdvanced.signalAll();
    } finally {
      lock.unlock();
    }
    for (ManagedChannel c : peers.values()) {
      c.shutdownNow();
    }
    leader.close();
    heartbeatClient.close();
    loadClient.close();
    plbEndpoints.close();
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    AtomicLong n = new AtomicLong();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }
}
