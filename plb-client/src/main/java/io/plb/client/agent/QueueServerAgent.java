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
import io.plb.core.handover.AgentCore;
import io.plb.core.handover.AgentCore.Effect;
import io.plb.core.handover.OwnerLease;
import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
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
 * The PLB agent a queue server embeds (DESIGN §5): the I/O around {@link AgentCore}, which makes
 * every decision — the hold rules of its {@link Participant} for each arriving message and
 * transfer, which handovers this server takes part in, when to seal, report, transfer, release,
 * where a chunked transfer resumes, what to do with leftovers of lost ranges, when to persist,
 * whether the lease holds. This class watches the shard map, reads the server's
 * {@link HandoverStore} for the core and carries out the effects it emits (store writes, the
 * saved state, reports to the PLB leader, chunked transfers and late batches to peer servers),
 * and sends heartbeats and load reports.
 *
 * <p><b>Thread model.</b> One lock guards the core and orders every step that touches the
 * range state: map versions (from the watch thread), placements (the server calls {@link #place}
 * inside {@link #locked} together with its durable append, which makes C1's "seal and take the
 * hold buffer" one step), transfer verdicts and the answers to our own transfers. Network calls
 * run outside the lock: heartbeats and load reports each on a thread of their own; handover
 * reports, transfers and the late sender on the I/O pool, bounded in threads and queue
 * ({@link Builder#io}), where a send that finds it full is dropped and made again while owed
 * ({@link #submitIo}). The same report or transfer is never queued twice.
 *
 * <p><b>Invariants</b> (kept by the core; see {@link AgentCore}). Actions on the store are
 * carried out before the state they lead to is persisted, and every action is idempotent, so a
 * crash at any point repeats at most an action. Reports and transfers leave only after that
 * persist: what they announce (a seal, a stored prefix) is durable before anyone can act on it.
 * Reports and transfers still owed are sent again every {@code resendInterval}
 * ({@link AgentCore#onResendTimer}): every one of them is keyed by
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
  /** The agent's decisions; this class carries out its effects. Under the lock. */
  private final AgentCore<Held> core;
  private final Endpoints plbEndpoints;
  private final PlbAdminClient leader;
  private final MapWatcher watcher;
  private final Duration resendInterval;
  private final Duration heartbeatInterval;
  private final Duration transferDeadline;
  private final LongSupplier heldCount;
  private final LongSupplier queuedCount;
  private final Ticker ticker;
  private final List<Runnable> servingListeners = new CopyOnWriteArrayList<>();
  private final PlbAdminClient heartbeatClient;
  private final ScheduledExecutorService heartbeats;
  /** Whether the lease was held at the last check: changes are logged and announced. */
  private volatile boolean leaseHeld;
  private volatile String lastGrantRefusal = "";
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition versionAdvanced = lock.newCondition();
  private final AtomicLong statesWritten = new AtomicLong();
  private final Set<String> transfersInFlight = ConcurrentHashMap.newKeySet();
  private final AtomicBoolean lateRunning = new AtomicBoolean();
  private volatile boolean lateKicked;
  /** The late batch sent and not yet answered; only the late sender touches it. */
  private volatile LateBatch pendingLate;
  private final int lateBatchMessages;
  private final long lateBatchBytes;
  private final int chunkMessages;
  private final long chunkBytes;
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
    this.core = new AgentCore<>(serverId, new AgentCore.Settings(b.chunkMessages, b.chunkBytes,
        b.lateBatchMessages, b.lateBatchBytes), new StoreHost());
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
      core.restore(restored.sides());
      mapFloor = restored.mapVersion();
      if (!core.sides().isEmpty()) {
        LOG.info("{}: restored {} open handover side(s)", serverId, core.sides().size());
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
    return core.image().version();
  }

  public ClusterImage image() {
    return core.image();
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
    return core.place(hash, tag, producer);
  }

  /**
   * Every publish stream of producer session {@code producer} to this server has ended, after
   * its last request was handled: drops the session's refusal fences (DESIGN §5). Whatever the
   * producer has no answer for comes again on a new stream, in its order.
   */
  public void streamsEnded(String producer) {
    lock.lock();
    try {
      core.dropFences(producer);
    } finally {
      lock.unlock();
    }
  }

  /** Producer sessions holding refusal fences here. */
  public int fencedProducers() {
    return locked(core::fencedProducers);
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
      while (core.image().version() < version) {
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
    lock.lock();
    try {
      if (core.awaitsBacklog()) {
        core.onAcked(hash);
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
      AgentCore.ChunkDecision d = core.receiveChunk(range, he, dir, req.getMapVersion(), chunk,
          last, req.getCursor().toByteArray());
      switch (d.verdict()) {
        case STORE -> {
          HandoverStore.Progress next = toStore(d.progress());
          if (last) {
            // The sender's sequences ride on the final chunk; merged before it is stored (a
            // resend of the chunk merges again, which changes nothing). They also take out of
            // the buffer this side filled with publishes meanwhile the resends of messages the
            // sender had stored.
            store.mergeSequences(req.getSequencesList(), range, he,
                dir == Direction.FORWARD ? Buffer.HELD : Buffer.POST_ABORT);
          }
          store.storeChunk(range, he, into, req.getMessagesList(), next);
          core.onChunkStored(range, he, dir, last);
          if (last) {
            LOG.info("{}: stored {} transfer of range {} (handover epoch {}): {} chunk(s)",
                serverId, dir, Ring.hex(range), he, chunk);
          }
          return progressReply(TransferOutcome.STORED, next);
        }
        case ALREADY_STORED -> {
          return progressReply(TransferOutcome.ALREADY_STORED, toStore(d.progress()));
        }
        case OUT_OF_ORDER -> {
          return progressReply(TransferOutcome.CHUNK_OUT_OF_ORDER, toStore(d.progress()));
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

  private static HandoverStore.Progress toStore(AgentCore.Progress p) {
    return new HandoverStore.Progress(p.chunks(), p.cursor(), p.complete());
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
        Decision d = core.place(KeyHash.hash(m.getKey().toByteArray()),
            core.version(), LATE_PRODUCER);
        if (d.placement() == Participant.Placement.QUEUE) {
          taken.add(m);
        } else {
          notTaken.add(i);
        }
      }
      if (!notTaken.isEmpty()) {
        // No order to keep among late messages, so no fence either.
        core.dropFences(LATE_PRODUCER);
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
    return TransferHeldResponse.newBuilder().setOutcome(outcome)
        .setMapVersion(core.image().version())
        .setDetail(detail).build();
  }

  // ------------------------------------------------------------------ map versions

  private void onMap(ClusterImage next, MapDelta delta) {
    lock.lock();
    try {
      core.onMap(next);
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

  // ------------------------------------------------------------------ effects

  /**
   * The store and network side of the core: reads the store for it and carries out each effect
   * as it is emitted. Under the lock (the core is called only under it).
   */
  private final class StoreHost implements AgentCore.Host<Held> {
    @Override
    public long backlog(long start, long end) {
      return store.backlog(start, end);
    }

    @Override
    public List<AgentCore.BufferedHandover> bufferedHandovers() {
      List<AgentCore.BufferedHandover> out = new ArrayList<>();
      for (BufferedHandover h : store.bufferedHandovers()) {
        out.add(new AgentCore.BufferedHandover(h.rangeStart(), h.handoverEpoch()));
      }
      return out;
    }

    @Override
    public OptionalLong nextQueuedHash(long from) {
      return store.nextQueuedHash(from);
    }

    @Override
    public List<Held> buffered(long rangeStart, long handoverEpoch, int max, long maxBytes) {
      return store.buffered(rangeStart, handoverEpoch, max, maxBytes);
    }

    @Override
    public List<Held> queued(long start, long end, int max, long maxBytes) {
      return store.queued(start, end, max, maxBytes);
    }

    @Override
    public AgentCore.Progress transferProgress(long rangeStart, long handoverEpoch,
        Buffer into) {
      HandoverStore.Progress p = store.transferProgress(rangeStart, handoverEpoch, into);
      return new AgentCore.Progress(p.chunks(), p.cursor(), p.complete());
    }

    @Override
    public long hashOf(Held copy) {
      return copy.hash();
    }

    @Override
    public String idOf(Held copy) {
      return copy.id();
    }

    @Override
    public long sizeOf(Held copy) {
      return copy.message().getSerializedSize();
    }

    @Override
    public void apply(Effect<Held> e) {
      if (e instanceof Effect.Report<Held> r) {
        report(switch (r.kind()) {
          case READY -> Report.READY;
          case DRAINED -> Report.DRAINED;
          case REVERSED -> Report.REVERSED;
        }, r.rangeStart(), r.handoverEpoch());
      } else if (e instanceof Effect.Transfer<Held> t) {
        sendTransfer(t);
      } else if (e instanceof Effect.Release<Held> r) {
        store.release(r.rangeStart(), r.handoverEpoch(), r.buffers());
        LOG.info("{}: released {} of range {} (handover epoch {})", serverId, r.buffers(),
            Ring.hex(r.rangeStart()), r.handoverEpoch());
      } else if (e instanceof Effect.Discard<Held> d) {
        store.discard(d.rangeStart(), d.handoverEpoch(), d.buffers());
      } else if (e instanceof Effect.Orphaned<Held> o) {
        LOG.info("{}: lost range {} (handover epoch {}) without handing it over", serverId,
            Ring.hex(o.rangeStart()), o.handoverEpoch());
      } else if (e instanceof Effect.Sealed<Held> x) {
        LOG.info("{}: backlog of range {} drained: sealed, transferring the hold buffer",
            serverId, Ring.hex(x.rangeStart()));
      } else if (e instanceof Effect.RequeueLate<Held> r) {
        LOG.warn("{}: took back {} message(s) it still held of range {} (handover epoch {}) "
            + "as late messages", serverId, r.copies().size(), Ring.hex(r.rangeStart()),
            r.handoverEpoch());
        store.requeueLate(r.copies());
      } else if (e instanceof Effect.MarkQueuedLate<Held> m) {
        int n = store.markQueuedLate(m.start(), m.end());
        if (n > 0) {
          LOG.warn("{}: {} message(s) queued here of range [{}, {}), now {}'s, marked late",
              serverId, n, Ring.hex(m.start()), Ring.hex(m.end()), m.owner());
        }
      } else if (e instanceof Effect.KickLate<Held>) {
        kickLate();
      } else if (e instanceof Effect.Save<Held> x) {
        store.saveAgentState(new AgentState(x.sides(), x.mapVersion()).encode());
        statesWritten.incrementAndGet();
      } else if (e instanceof Effect.ForgetTransfers<Held> f) {
        store.forgetTransfers(f.rangeStart(), f.handoverEpoch());
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
    // The core emits it only once the state that led to it is saved.
    submitIo(() -> {
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
    }, () -> reportsInFlight.remove(key));
  }

  /**
   * Sends a transfer unless the same one is already on its way. Under the lock. The core emits
   * it only once the state that led to it is saved: a forward transfer carries a sealed hold
   * buffer, and had it left before the seal was durable, a source restarted without the seal
   * would take more into its hold buffer and send that again; the target, which stored the
   * first, would acknowledge the second as a duplicate, and the rest would be discarded when the
   * handover completed.
   */
  private void sendTransfer(Effect.Transfer<Held> e) {
    Action.Transfer t = e.transfer();
    String key = AgentCore.transferKey(t);
    if (closed || !transfersInFlight.add(key)) {
      return;
    }
    QueueServerInfo peer = core.image().server(t.to());
    transfersSent.incrementAndGet();
    submitIo(() -> {
      try {
        if (peer == null) {
          throw new IllegalStateException("server " + t.to() + " is not in the map");
        }
        streamTransfer(t, peer.address(), e.tag(), e.rangeEnd());
      } catch (RuntimeException ex) {
        LOG.info("{}: {} transfer of range {} to {} failed (will resend): {}", serverId,
            t.direction(), Ring.hex(t.rangeStart()), t.to(), ex.getMessage());
      } finally {
        transfersInFlight.remove(key);
      }
    }, () -> transfersInFlight.remove(key));
  }

  /**
   * Sends a transfer chunk by chunk on this I/O thread, one chunk unanswered at a time (the
   * flow control), each read from the store just before it goes: memory holds one chunk however
   * large the buffers are, and the agent's lock is taken only to ask the core whether it is still
   * owed and to give it the answer. The sealed buffers do not change while the transfer runs, so
   * a chunk read again after a restart is the same. Where to go on, and when the transfer is
   * over, the core decides from each answer ({@link AgentCore#onChunkAnswer}).
   */
  private void streamTransfer(Action.Transfer t, String address, long tag, long rangeEnd) {
    QueueServiceGrpc.QueueServiceBlockingStub stub =
        QueueServiceGrpc.newBlockingStub(peerChannel(address));
    AgentCore.ChunkPosition at = locked(() -> core.transferStart(t));
    long messages = 0;
    while (!closed) {
      if (!locked(() -> core.owes(t))) {
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
      AgentCore.ChunkOutcome o = switch (outcome) {
        case TRANSFER_REFUSED -> AgentCore.ChunkOutcome.REFUSED;
        case STORED -> AgentCore.ChunkOutcome.STORED;
        case ALREADY_STORED -> AgentCore.ChunkOutcome.ALREADY_STORED;
        case CHUNK_OUT_OF_ORDER -> AgentCore.ChunkOutcome.OUT_OF_ORDER;
        default -> throw new IllegalStateException("unknown answer " + outcome);
      };
      if (o == AgentCore.ChunkOutcome.REFUSED) {
        LOG.info("{}: {} transfer of range {} refused by {}: {}", serverId, t.direction(),
            Ring.hex(t.rangeStart()), t.to(), resp.getDetail());
      }
      if (o == AgentCore.ChunkOutcome.STORED) {
        messages += chunk.messages().size();
      }
      if (!resp.getComplete() && resp.getStoredChunks() == 0 && o == AgentCore.ChunkOutcome.STORED) {
        // A receiver that does not know chunks took this one as a whole transfer: nothing
        // follows it there, so the handover cannot complete (our buffer stays; the drain
        // timeout reverses it).
        throw new IllegalStateException(t.to() + " does not take chunked transfers");
      }
      if (resp.getComplete()) {
        LOG.info("{}: {} transfer of range {} stored by {} ({} chunk(s); {} message(s) sent "
            + "in this run)", serverId, t.direction(), Ring.hex(t.rangeStart()), t.to(),
            resp.getStoredChunks(), messages);
      }
      AgentCore.ChunkStep step = locked(() -> core.onChunkAnswer(t, o, resp.getStoredChunks(),
          resp.getCursor().toByteArray(), resp.getComplete()));
      if (step.finished()) {
        return;
      }
      at = step.next();
    }
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
      final LateBatch pending = pendingLate;
      LateBatch b = pending;
      if (b != null && !locked(() -> core.stillReachable(pending.to()))) {
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

  /** A late batch: the core's, its request and where it goes. */
  private record LateBatch(AgentCore.LateBatch<Held> batch, String address,
      TransferHeldRequest request) {
    String to() {
      return batch.to();
    }

    List<List<Held>> copies() {
      return batch.copies();
    }
  }

  /** The batch is answered or given up: its copies may be taken back again. */
  private void forget(LateBatch b) {
    locked(() -> {
      core.lateBatchDone(b.batch());
      return null;
    });
    pendingLate = null;
  }

  /** The core's next late batch as a request; null when nothing can be sent now. Under the lock. */
  private LateBatch nextLateBatch(Set<String> refusing) {
    AgentCore.LateBatch<Held> b = core.nextLateBatch(refusing);
    if (b == null) {
      return null;
    }
    TransferHeldRequest.Builder req = TransferHeldRequest.newBuilder().setFromServer(serverId)
        .setDirection(TransferDirection.LATE).setMapVersion(b.tag())
        .setLateSession(session).setLateBatch(b.number());
    for (List<Held> l : b.copies()) {
      req.addMessages(l.get(0).message());
    }
    return new LateBatch(b, core.image().server(b.to()).address(), req.build());
  }

  private void resendOwed() {
    if (closed) {
      return;
    }
    lock.lock();
    try {
      core.onResendTimer();
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
          .setServerId(serverId).setMapVersion(core.image().version())
          .setQueued(queuedCount.getAsLong()).setHeld(heldCount.getAsLong()).build());
      // The lease counts only from that version on: a watch that does not bring it soon is on a
      // node that cannot (cut off silently), and the watcher moves on.
      watcher.expect(resp.getVersion());
      if (resp.getLeaseMillis() > 0) {
        boolean heldBefore = holdsLease();
        core.granted(sent, TimeUnit.MILLISECONDS.toNanos(resp.getLeaseMillis()),
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
    return core.holdsLease(ticker.nanos());
  }

  /**
   * Whether the key at ring position {@code hash} is in a range in a handover, by the map this
   * server has applied, with this server its source or its target.
   */
  public boolean inHandover(long hash) {
    return core.inHandover(hash);
  }

  /** Whether the key at ring position {@code hash} is in a range this server owns now. */
  public boolean owns(long hash) {
    ClusterImage now = core.image();
    return now.rangeCount() > 0 && serverId.equals(now.rangeFor(hash).owner());
  }

  /** Milliseconds left on the ownership lease (0 when none is held). */
  public long leaseRemainingMillis() {
    return TimeUnit.NANOSECONDS.toMillis(core.leaseRemainingNanos(ticker.nanos()));
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
          leaseRemainingMillis(), core.image().version());
      servingChanged();
    } else {
      long awaited = core.awaitedLeaseVersion();
      long version = core.image().version();
      LOG.warn("{}: ownership lease lost ({}): accepting and delivering nothing until the PLB "
          + "leader renews it", serverId, awaited > version
              ? "waiting for map version " + awaited + ", at " + version
              : "no renewal from the PLB leader in time");
    }
  }

  /**
   * Runs {@code task} on the I/O pool; when its threads and queue are full (or it is closed) the
   * task is dropped: {@code dropped} runs here and the drop is counted. Dropping keeps the
   * promise because everything the pool runs is made again until it is done: a handover report
   * or transfer still owed is re-issued every {@code resendInterval} ({@link Participant#resend};
   * each is keyed by {@code (range, handoverEpoch)}, so a late duplicate is ignored), and the
   * late sender is kicked again by every map version and resend round ({@link AgentCore}),
   * keeping its unanswered batch to send unchanged. {@code dropped} clears the in-flight mark
   * that would otherwise stop that repeat. The submitter must not wait instead: it holds the
   * agent's lock, which a transfer's answer needs. Heartbeats and load
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

  private ManagedChannel peerChannel(String address) {
    return peers.computeIfAbsent(address, a -> NettyChannelBuilder.forTarget(a).usePlaintext()
        .maxInboundMessageSize(256 << 20).build());
  }

  /** Open handover sides, for status pages. */
  public List<Participant.Side> sides() {
    return locked(core::sides);
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
