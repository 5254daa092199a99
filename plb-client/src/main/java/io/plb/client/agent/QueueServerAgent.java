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
import io.plb.client.watch.MapWatcher;
import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.Participant.TransferVerdict;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.HeartbeatRequest;
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
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
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
 * hold buffer" one step), transfer verdicts and the answers to our own transfers. Network calls —
 * reports, transfers, heartbeats — run on the agent's I/O threads, never under the lock.
 *
 * <p><b>Invariants.</b> Actions on the store are carried out before the state they lead to is
 * persisted, and every action is idempotent, so a crash at any point repeats at most an action.
 * Reports and transfers leave only after that persist: what they announce (a seal, a stored
 * prefix) is durable before anyone can act on it. Reports and transfers still owed are sent
 * again every {@code resendInterval} ({@link Participant#resend}): every one of them is keyed by
 * {@code (range, handoverEpoch)} and a late or duplicated one is ignored by its receiver. What
 * the server still holds of ranges it lost while DOWN is found in the store on every map version
 * and resend round, and sent on as late messages until nothing is left.
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
  private final ReentrantLock lock = new ReentrantLock();
  private final Condition versionAdvanced = lock.newCondition();
  private final Set<Long> awaitingBacklog = new HashSet<>();
  private final Set<String> transfersInFlight = ConcurrentHashMap.newKeySet();
  private final Set<Long> orphansInFlight = ConcurrentHashMap.newKeySet();
  /** Reports and transfers that leave once the state that led to them is persisted. */
  private final List<Runnable> pendingSends = new ArrayList<>();
  private final Map<String, ManagedChannel> peers = new ConcurrentHashMap<>();
  private final ExecutorService io;
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
    this.heldCount = b.heldCount;
    this.queuedCount = b.queuedCount;
    this.watcher = new MapWatcher(plbEndpoints, this::onMap);
    this.io = Executors.newCachedThreadPool(daemon("plb-agent-io-" + serverId));
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
    private LongSupplier heldCount = () -> 0;
    private LongSupplier queuedCount = () -> 0;
    private Duration reportInterval = Duration.ofSeconds(1);
    private int hotKeys = 32;
    private SliceLoadAccumulator.Gauges gauges = SliceLoadAccumulator.NO_GAUGES;
    private LongSupplier wallMillis = System::currentTimeMillis;

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
      AgentState.decode(store.loadAgentState()).restoreInto(participant);
      if (!participant.sides().isEmpty()) {
        LOG.info("{}: restored {} open handover side(s)", serverId, participant.sides().size());
      }
    } finally {
      lock.unlock();
    }
    watcher.start();
    long resend = resendInterval.toMillis();
    timers.scheduleWithFixedDelay(this::resendOwed, resend, resend, TimeUnit.MILLISECONDS);
    long hb = heartbeatInterval.toMillis();
    timers.scheduleWithFixedDelay(this::heartbeat, 0, hb, TimeUnit.MILLISECONDS);
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
   * sent under, decides, stores an accepted one durably, and answers. Blocking; call it from a
   * thread that may block.
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
    lock.lock();
    try {
      TransferVerdict v = participant.acceptTransfer(req.getRangeStart(), req.getHandoverEpoch(),
          dir, req.getMapVersion());
      switch (v) {
        case ACCEPT -> {
          Buffer into = dir == Direction.FORWARD ? Buffer.PREFIX : Buffer.RETURNED;
          store.store(req.getRangeStart(), req.getHandoverEpoch(), into, req.getMessagesList());
          execute(participant.onTransferStored(req.getRangeStart(), req.getHandoverEpoch(), dir));
          persist();
          LOG.info("{}: stored {} transfer of {} messages for range {} (handover epoch {})",
              serverId, dir, req.getMessagesCount(), Ring.hex(req.getRangeStart()),
              req.getHandoverEpoch());
          return transferReply(TransferOutcome.STORED, "");
        }
        case DUPLICATE -> {
          // Repeat the stored step's follow-up: its report may have been lost.
          execute(participant.onTransferStored(req.getRangeStart(), req.getHandoverEpoch(), dir));
          persist();
          return transferReply(TransferOutcome.ALREADY_STORED, "");
        }
        default -> {
          return transferReply(TransferOutcome.TRANSFER_REFUSED,
              "no open " + dir + " handover of range " + Ring.hex(req.getRangeStart())
                  + " at handover epoch " + req.getHandoverEpoch() + " here");
        }
      }
    } finally {
      lock.unlock();
    }
  }

  /** Late messages from a server that lost a range while DOWN; placed like new arrivals. */
  private TransferHeldResponse onLate(TransferHeldRequest req) throws InterruptedException {
    awaitVersion(req.getMapVersion(), transferDeadline);
    lock.lock();
    try {
      // Late messages lost their order guarantee with their server; they join the back of the
      // queue of an owner that is not in a handover of the range, or wait for one.
      for (StoredMessage m : req.getMessagesList()) {
        Decision d = participant.place(KeyHash.hash(m.getKey().toByteArray()),
            participant.version(), LATE_PRODUCER);
        if (d.placement() != Participant.Placement.QUEUE) {
          return transferReply(TransferOutcome.TRANSFER_REFUSED,
              "this server does not take range " + Ring.hex(req.getRangeStart()) + " now");
        }
      }
      store.queueLate(req.getMessagesList());
      lateReceived.addAndGet(req.getMessagesCount());
      LOG.warn("{}: took {} late message(s) of range {} from {}", serverId,
          req.getMessagesCount(), Ring.hex(req.getRangeStart()), req.getFromServer());
      return transferReply(TransferOutcome.STORED, "");
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
        sendOrphans(o.rangeStart());
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
    reportsSent.incrementAndGet();
    // Sent once the state that led to it is persisted (see persist()).
    pendingSends.add(() -> {
      try {
        var out = leader.report(kind, serverId, rangeStart, handoverEpoch);
        LOG.info("{}: reported {} for range {} (handover epoch {}){}", serverId, kind,
            Ring.hex(rangeStart), handoverEpoch, out.getIgnored() ? " — ignored: "
                + out.getDetail() : " → version " + out.getVersion());
      } catch (RuntimeException e) {
        // Sent again by the resend timer while still owed.
        LOG.debug("{}: report {} for range {} failed: {}", serverId, kind, Ring.hex(rangeStart),
            e.getMessage());
      }
    });
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
    String key = t.rangeStart() + "/" + t.handoverEpoch() + "/" + t.direction();
    if (closed || !transfersInFlight.add(key)) {
      return;
    }
    List<StoredMessage> messages = store.read(t.rangeStart(), t.handoverEpoch(), t.buffers());
    QueueServerInfo peer = image.server(t.to());
    long tag = image.version();
    RangeEntry range = rangeAt(t.rangeStart());
    TransferHeldRequest req = TransferHeldRequest.newBuilder()
        .setFromServer(serverId)
        .setRangeStart(t.rangeStart())
        .setRangeEnd(range == null ? 0 : range.end())
        .setHandoverEpoch(t.handoverEpoch())
        .setDirection(t.direction() == Direction.FORWARD
            ? TransferDirection.FORWARD : TransferDirection.REVERSE)
        .setMapVersion(tag)
        .addAllMessages(messages)
        .build();
    transfersSent.incrementAndGet();
    pendingSends.add(() -> {
      try {
        if (peer == null) {
          throw new IllegalStateException("server " + t.to() + " is not in the map");
        }
        TransferHeldResponse resp = QueueServiceGrpc.newBlockingStub(peerChannel(peer.address()))
            .withDeadlineAfter(transferDeadline.toMillis() + 5_000, TimeUnit.MILLISECONDS)
            .transferHeld(req);
        lock.lock();
        try {
          if (resp.getOutcome() == TransferOutcome.TRANSFER_REFUSED) {
            LOG.info("{}: {} transfer of range {} refused by {}: {}", serverId, t.direction(),
                Ring.hex(t.rangeStart()), t.to(), resp.getDetail());
            execute(participant.onTransferRefused(t.rangeStart(), t.handoverEpoch()));
          } else {
            LOG.info("{}: {} transfer of {} messages of range {} stored by {}", serverId,
                t.direction(), messages.size(), Ring.hex(t.rangeStart()), t.to());
            execute(participant.onTransferAcked(t.rangeStart(), t.handoverEpoch(),
                t.direction()));
          }
          persist();
        } finally {
          lock.unlock();
        }
      } catch (RuntimeException e) {
        LOG.info("{}: {} transfer of range {} to {} failed (will resend): {}", serverId,
            t.direction(), Ring.hex(t.rangeStart()), t.to(), e.getMessage());
      } finally {
        transfersInFlight.remove(key);
      }
    });
  }

  /** Hands what this server still holds of a range it lost while DOWN to the new owner. */
  private void sendOrphans(long rangeStart) {
    if (closed || !orphansInFlight.add(rangeStart)) {
      return;
    }
    io.execute(() -> {
      try {
        sendOrphansNow(rangeStart);
      } finally {
        orphansInFlight.remove(rangeStart);
      }
    });
  }

  /**
   * Sends what is left of the range — its queued messages and the buffers of one closed handover
   * at a time — to the owner as late messages, until nothing is left. Stops when the range is
   * ours again or we take part in a handover of it: {@link #findOrphans} takes it up from there.
   */
  private void sendOrphansNow(long rangeStart) {
    for (int attempt = 0; !closed; ) {
      ClusterImage now = image;
      int i = now.indexOfStart(rangeStart);
      if (i < 0) {
        LOG.error("{}: range {} is gone from the map; its late messages are kept", serverId,
            Ring.hex(rangeStart));
        return;
      }
      RangeEntry r = now.range(i);
      long he;
      List<StoredMessage> held;
      lock.lock();
      try {
        if (r.owner().equals(serverId) || participant.side(rangeStart) != null) {
          return;
        }
        List<Long> leftover = store.bufferedHandovers(rangeStart);
        he = leftover.isEmpty() ? 0 : leftover.get(0);
        held = store.orphans(r.start(), r.end(), he);
      } finally {
        lock.unlock();
      }
      if (held.isEmpty()) {
        return;
      }
      QueueServerInfo owner = now.server(r.owner());
      try {
        TransferHeldResponse resp = QueueServiceGrpc.newBlockingStub(
                peerChannel(owner.address()))
            .withDeadlineAfter(transferDeadline.toMillis() + 5_000, TimeUnit.MILLISECONDS)
            .transferHeld(TransferHeldRequest.newBuilder()
                .setFromServer(serverId).setRangeStart(r.start()).setRangeEnd(r.end())
                .setHandoverEpoch(he).setDirection(TransferDirection.LATE)
                .setMapVersion(now.version()).addAllMessages(held).build());
        if (resp.getOutcome() == TransferOutcome.STORED) {
          store.dropOrphans(r.start(), r.end(), he, held);
          LOG.warn("{}: sent {} late message(s) of {} to its owner {}", serverId, held.size(),
              r.rangeText(), r.owner());
          attempt = 0;
          continue; // another handover's buffers may be left
        }
      } catch (RuntimeException e) {
        LOG.info("{}: late messages of {} not taken yet: {}", serverId, r.rangeText(),
            e.getMessage());
      }
      try {
        lock.lock();
        try {
          versionAdvanced.await(Math.min(5_000, 100L << Math.min(attempt, 5)),
              TimeUnit.MILLISECONDS);
        } finally {
          lock.unlock();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
      attempt++;
    }
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

  private void heartbeat() {
    if (closed) {
      return;
    }
    try {
      leader.heartbeat(HeartbeatRequest.newBuilder().setServerId(serverId)
          .setMapVersion(image.version()).setQueued(queuedCount.getAsLong())
          .setHeld(heldCount.getAsLong()).build());
    } catch (RuntimeException e) {
      LOG.debug("{}: heartbeat failed: {}", serverId, e.getMessage());
    }
  }

  /** Persists the participant's state, then sends the reports it led to. Under the lock. */
  private void persist() {
    store.saveAgentState(AgentState.of(participant).encode());
    for (Runnable r : pendingSends) {
      io.execute(r);
    }
    pendingSends.clear();
  }

  /**
   * What this server still holds of ranges it lost while DOWN: queued messages of a range it does
   * not own (outside any handover of it), and the buffers of handovers no longer open here —
   * found in the store, since the participant's {@code Orphaned} action is not persisted and a
   * crash may come before its messages are sent. They go to the owner as late messages; a range
   * this server owns again takes them back into its own queue, marked late. Under the lock.
   *
   * <p>Only ranges the store holds something of (a buffer, or a queued message) can have either,
   * so those are found from the store's side, in map order, instead of asking the store about
   * every range: this runs on every map version and resend round, and a map may hold a million
   * ranges.
   */
  private void findOrphans() {
    TreeSet<Integer> holding = new TreeSet<>();
    for (long start : store.bufferedRangeStarts()) {
      int i = image.indexOfStart(start);
      if (i >= 0) {
        holding.add(i);
      }
    }
    for (OptionalLong h = store.nextQueuedHash(0); h.isPresent(); ) {
      int i = image.indexOfHash(h.getAsLong());
      holding.add(i);
      long end = image.range(i).end();
      h = end == Ring.RING_END ? OptionalLong.empty() : store.nextQueuedHash(end);
    }
    for (int i : holding) {
      RangeEntry r = image.range(i);
      if (!r.isAssigned()) {
        continue;
      }
      Participant.Side side = participant.side(r.start());
      List<Long> leftover = new ArrayList<>(store.bufferedHandovers(r.start()));
      if (side != null) {
        leftover.remove(Long.valueOf(side.handoverEpoch()));
      }
      if (r.owner().equals(serverId)) {
        for (long he : leftover) {
          LOG.warn("{}: took back what it still held of {} (handover epoch {}) as late messages",
              serverId, r.rangeText(), he);
          store.releaseLate(r.start(), he);
        }
      } else if (side == null
          && (!leftover.isEmpty() || store.backlog(r.start(), r.end()) > 0)) {
        sendOrphans(r.start());
      }
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
