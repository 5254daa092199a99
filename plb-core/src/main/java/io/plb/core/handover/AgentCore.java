package io.plb.core.handover;

import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.Participant.Side;
import io.plb.core.handover.Participant.TransferVerdict;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeMap;

/**
 * The decisions of a queue server's agent (docs/design.md §5), without its I/O: which handovers
 * the server takes part in and as what, when it reports READY, DRAINED and REVERSED, when it
 * seals and transfers, where a chunked transfer stands and resumes, what it does with a received
 * chunk, what it still holds of ranges it lost (taken back late, marked late, or sent on in late
 * batches, each to one owner), when its state is persisted, and what is owed again on the resend
 * timer. The hold rules themselves are the {@link Participant}'s; the ownership lease is the
 * {@link OwnerLease}'s. {@code QueueServerAgent} carries the effects out with gRPC calls, timers
 * and its RocksDB store; the deterministic simulation carries them out on virtual time against
 * its model of that store. Both drive this one class.
 *
 * <p><b>Effects.</b> Every event method emits its effects, in order, to the {@link Host}, which
 * carries each out before the core goes on: store writes are done at once (a read the core makes
 * afterwards sees them), and a crash of the host in the middle of an event loses the rest of it,
 * as a crash of the agent would. Each event method also returns the effects it emitted.
 *
 * <p><b>Invariants.</b> Store effects ({@link Effect.Release}, {@link Effect.Discard},
 * {@link Effect.RequeueLate}, {@link Effect.MarkQueuedLate}) come before the {@link Effect.Save}
 * that records the state they lead to, and every one is idempotent, so a host that crashes
 * repeats at most an effect. Reports and transfers ({@link Effect.Report},
 * {@link Effect.Transfer}) are emitted only after that save: what they announce (a seal, a
 * stored prefix) is durable before anyone can act on it. A transfer is acknowledged to the
 * participant only once its receiver says the final chunk is stored. The sides are saved only
 * when they changed.
 *
 * <p><b>Thread model.</b> Not thread-safe: one caller at a time (the agent's lock; the
 * simulation's single thread). Only {@link #holdsLease}, {@link #granted},
 * {@link #leaseRemainingNanos}, {@link #awaitedLeaseVersion}, {@link #image()} and
 * {@link #inHandover} may be called from any thread. No clock of its own: lease times are passed
 * in. Deterministic: every map it iterates is ordered, so a simulation seed replays exactly.
 *
 * @param <C> the host's handle of one stored copy of a message
 */
public final class AgentCore<C> {

  /** Batch bounds: a chunk of a handover's transfer, and a late batch. */
  public record Settings(int chunkMessages, long chunkBytes, int lateBatchMessages,
      long lateBatchBytes) {}

  /** The kind of report to the leader. */
  public enum ReportKind { READY, DRAINED, REVERSED }

  /** How far a transfer received into one buffer of a handover is stored. */
  public record Progress(long chunks, byte[] cursor, boolean complete) {
    public static final Progress NONE = new Progress(0, new byte[0], false);

    @Override
    public boolean equals(Object o) {
      return o instanceof Progress p && p.chunks == chunks && p.complete == complete
          && Arrays.equals(p.cursor, cursor);
    }

    @Override
    public int hashCode() {
      return Objects.hash(chunks, complete, Arrays.hashCode(cursor));
    }

    @Override
    public String toString() {
      return "Progress[" + chunks + (complete ? ", complete" : "") + "]";
    }
  }

  /** A handover whose buffers hold messages in the store. */
  public record BufferedHandover(long rangeStart, long handoverEpoch) {}

  /** What the core reads of the store, and the host that carries out its effects. */
  public interface Host<C> {
    /** Messages of {@code [start, end)} in the deliverable queue not yet acknowledged. */
    long backlog(long start, long end);

    /** Handovers with messages in any buffer, by range start (unsigned), then epoch. */
    List<BufferedHandover> bufferedHandovers();

    /** The lowest key hash at or above {@code from} (unsigned) with a queued message. */
    OptionalLong nextQueuedHash(long from);

    /** Up to {@code max} copies (and about {@code maxBytes}) in a handover's buffers. */
    List<C> buffered(long rangeStart, long handoverEpoch, int max, long maxBytes);

    /** Up to {@code max} copies (and about {@code maxBytes}) queued in {@code [start, end)}. */
    List<C> queued(long start, long end, int max, long maxBytes);

    /** The progress of a transfer received into {@code into} of a handover. */
    Progress transferProgress(long rangeStart, long handoverEpoch, Buffer into);

    /** A copy's key's ring position. */
    long hashOf(C copy);

    /** A copy's message id: copies of one message share it. */
    String idOf(C copy);

    /** A copy's size in bytes, for the batch bounds. */
    long sizeOf(C copy);

    /** Carries out one effect before the core goes on. */
    void apply(Effect<C> effect);
  }

  /** Work for the host. */
  public sealed interface Effect<C> {
    /** Report to the leader (sent once the state before it is saved). */
    record Report<C>(ReportKind kind, long rangeStart, long handoverEpoch)
        implements Effect<C> {}

    /**
     * Send this transfer, chunk by chunk from {@link #transferStart}, each answer given to
     * {@link #onChunkAnswer}. {@code tag} is the map version it goes under, {@code rangeEnd} the
     * range's end in that map (0 when the range is gone).
     */
    record Transfer<C>(Action.Transfer transfer, long tag, long rangeEnd) implements Effect<C> {}

    /** Move these buffers, in this order, to the deliverable queue. */
    record Release<C>(long rangeStart, long handoverEpoch, List<Buffer> buffers)
        implements Effect<C> {}

    /** Delete these buffers. */
    record Discard<C>(long rangeStart, long handoverEpoch, List<Buffer> buffers)
        implements Effect<C> {}

    /** The range was lost without a handover (for the log; the store tells what is left). */
    record Orphaned<C>(long rangeStart, long handoverEpoch) implements Effect<C> {}

    /** The range's pre-switch backlog is gone: it is sealed now, its transfer follows. */
    record Sealed<C>(long rangeStart, long handoverEpoch) implements Effect<C> {}

    /** Buffer copies whose keys are this server's again: to its queue, marked late. */
    record RequeueLate<C>(long rangeStart, long handoverEpoch, List<C> copies)
        implements Effect<C> {}

    /** Queued messages of a range another server owns now: mark them late. */
    record MarkQueuedLate<C>(long start, long end, String owner) implements Effect<C> {}

    /** Leftovers are waiting for their owners: run the late sender ({@link #nextLateBatch}). */
    record KickLate<C>() implements Effect<C> {}

    /** Persist the sides, written at this map version. */
    record Save<C>(List<Side> sides, long mapVersion) implements Effect<C> {}

    /** The handover is over here: its received-transfer progress can go. */
    record ForgetTransfers<C>(long rangeStart, long handoverEpoch) implements Effect<C> {}
  }

  /** Where a transfer's next chunk starts: its number and the cursor it follows. */
  public record ChunkPosition(long chunk, byte[] cursor) {
    public static final ChunkPosition FIRST = new ChunkPosition(1, new byte[0]);
  }

  /** A receiver's answer to one chunk. */
  public enum ChunkOutcome { STORED, ALREADY_STORED, OUT_OF_ORDER, REFUSED }

  /** What the sender does after an answer: send the chunk at {@code next}, or nothing more. */
  public record ChunkStep(ChunkPosition next, boolean finished) {}

  /** What a receiver does with an arriving chunk. */
  public enum ChunkVerdict {
    /** Merge the sequences (final chunk), store it with {@link ChunkDecision#progress}, then
     * call {@link #onChunkStored}; answer STORED. */
    STORE,
    /** Answer ALREADY_STORED with the progress; store nothing. */
    ALREADY_STORED,
    /** Answer OUT_OF_ORDER with the progress; store nothing. */
    OUT_OF_ORDER,
    /** The handover is not open here as that: refuse. */
    REFUSED,
    /** Sent under a map not applied here yet: wait for it (C2). */
    WAIT
  }

  /** A receiver's decision on a chunk and the progress to answer (or to store, for STORE). */
  public record ChunkDecision(ChunkVerdict verdict, Progress progress) {}

  /** A late batch: to one owner, per message id the copies it stands for. */
  public record LateBatch<C>(String to, long number, long tag, List<List<C>> copies) {}

  private final String me;
  private final Settings settings;
  private final Host<C> host;
  private final Participant participant;
  private final OwnerLease lease = new OwnerLease();
  private volatile ClusterImage image = ClusterImage.EMPTY;
  private final Set<Long> awaitingBacklog = new LinkedHashSet<>();
  /** The sides as last saved. */
  private Set<Side> persistedSides = Set.of();
  /** Reports and transfers emitted once the state that led to them is saved. */
  private final List<Effect<C>> pendingSends = new ArrayList<>();
  /** Where each transfer of ours stands at its receiver, as it last said. Lost in a restart. */
  private final Map<String, ChunkPosition> resumes = new TreeMap<>();
  /** Copies in the late batch awaiting its answer: not taken back or sent meanwhile. */
  private final Set<C> lateInFlight = new LinkedHashSet<>();
  /** Ranges (start → end) whose queued messages were marked late since they became another's. */
  private final Map<Long, Long> markedLeftovers = new TreeMap<>();
  private long lateBatchSeq;
  /** Effects emitted by the event under way. */
  private List<Effect<C>> emitted = new ArrayList<>();

  public AgentCore(String serverId, Settings settings, Host<C> host) {
    this.me = Objects.requireNonNull(serverId, "serverId");
    this.settings = Objects.requireNonNull(settings, "settings");
    this.host = Objects.requireNonNull(host, "host");
    this.participant = new Participant(serverId);
  }

  /** Restores the sides persisted by an earlier run, before the first map. */
  public void restore(List<Side> sides) {
    participant.restore(sides);
    persistedSides = new LinkedHashSet<>(participant.sides());
  }

  public String serverId() {
    return me;
  }

  /** The map applied last. Any thread. */
  public ClusterImage image() {
    return image;
  }

  /** The open handover sides. */
  public List<Side> sides() {
    return participant.sides();
  }

  public Side side(long rangeStart) {
    return participant.side(rangeStart);
  }

  // ------------------------------------------------------------------ the lease (any thread)

  /** The leader granted a lease of {@code lengthNanos} for a heartbeat sent at {@code sent}. */
  public void granted(long sentNanos, long lengthNanos, long version) {
    lease.granted(sentNanos, lengthNanos, version);
  }

  /** Whether this server may accept, deliver and take late messages at {@code nowNanos}. */
  public boolean holdsLease(long nowNanos) {
    return lease.holds(nowNanos, image.version());
  }

  public long leaseRemainingNanos(long nowNanos) {
    return lease.remainingNanos(nowNanos, image.version());
  }

  /** The map version the newest waiting grant names. */
  public long awaitedLeaseVersion() {
    return lease.awaitedVersion();
  }

  /**
   * Whether the key at ring position {@code hash} is in a range in a handover with this server
   * as its source or target, by {@code map}: its producer-sequence entries are kept, since the
   * range's transfer must carry them. Without a map (a server restarted and not yet given one)
   * every key counts as in a handover: the server cannot tell, and an entry it forgot then would
   * be missing from the transfer of a range it is the source of (the seeded simulation found a
   * restarted source, waiting for its map, forget the entry of a message whose resend the
   * target held; the merge then kept the resend, delivered twice). Pure; any thread.
   */
  public static boolean inHandover(ClusterImage map, String serverId, long hash) {
    if (map.version() == 0) {
      return true;
    }
    RangeEntry r = map.rangeFor(hash);
    return r.handover() != null
        && (serverId.equals(r.owner()) || serverId.equals(r.handover().target()));
  }

  /** {@link #inHandover(ClusterImage, String, long)} by the map applied last. Any thread. */
  public boolean inHandover(long hash) {
    return inHandover(image, me, hash);
  }

  // ------------------------------------------------------------------ arrivals

  /** Where an arriving message goes (the participant's rules and refusal fence). */
  public Decision place(long hash, long tag, String producer) {
    return participant.place(hash, tag, producer);
  }

  /** Every stream of {@code producer} here has ended: its refusal fences go. */
  public boolean dropFences(String producer) {
    return participant.dropFences(producer);
  }

  public int fencedProducers() {
    return participant.fencedProducers();
  }

  public long version() {
    return participant.version();
  }

  // ------------------------------------------------------------------ events

  /** A new map version applied. */
  public List<Effect<C>> onMap(ClusterImage next) {
    return event(() -> {
      image = next;
      execute(participant.onMap(next));
      awaitingBacklog.removeIf(start -> participant.side(start) == null);
      findLeftovers();
      persist();
    });
  }

  /** The resend timer: what is still owed goes again, leftovers are looked for again. */
  public List<Effect<C>> onResendTimer() {
    return event(() -> {
      execute(participant.resend());
      checkBacklogs();
      findLeftovers();
      persist();
    });
  }

  /** Consumers acknowledged a message at {@code hash}: a waiting range may be drained now. */
  public List<Effect<C>> onAcked(long hash) {
    return event(() -> {
      for (long start : awaitingBacklog) {
        RangeEntry r = rangeAt(start);
        if (r != null && Ring.contains(r.start(), r.end(), hash)) {
          checkBacklogs();
          break;
        }
      }
    });
  }

  /** Whether a range is waiting for its backlog (the consumer path asks before it calls). */
  public boolean awaitsBacklog() {
    return !awaitingBacklog.isEmpty();
  }

  // ------------------------------------------------------------------ transfers sent

  /** Where a transfer starts: where its receiver last said it stood, else chunk 1. */
  public ChunkPosition transferStart(Action.Transfer t) {
    return resumes.getOrDefault(transferKey(t), ChunkPosition.FIRST);
  }

  /** Whether the participant still owes this transfer (its side open and unacknowledged). */
  public boolean owes(Action.Transfer t) {
    Side s = participant.side(t.rangeStart());
    boolean owed = s != null && s.handoverEpoch() == t.handoverEpoch() && s.sealed()
        && !s.bufferTransferred() && s.source() == (t.direction() == Direction.FORWARD);
    if (!owed) {
      resumes.remove(transferKey(t));
    }
    return owed;
  }

  /**
   * The receiver's answer to a chunk of {@code t}: its outcome, how many chunks it has stored,
   * the cursor after the last, and whether the final one is among them. Returns where to go on,
   * or that the transfer is over (acknowledged or refused; the participant has heard).
   */
  public ChunkStep onChunkAnswer(Action.Transfer t, ChunkOutcome outcome, long storedChunks,
      byte[] cursor, boolean complete) {
    String key = transferKey(t);
    if (outcome == ChunkOutcome.REFUSED) {
      resumes.remove(key);
      event(() -> {
        execute(participant.onTransferRefused(t.rangeStart(), t.handoverEpoch()));
        persist();
      });
      return new ChunkStep(null, true);
    }
    if (complete) {
      resumes.remove(key);
      event(() -> {
        execute(participant.onTransferAcked(t.rangeStart(), t.handoverEpoch(), t.direction()));
        persist();
      });
      return new ChunkStep(null, true);
    }
    ChunkPosition next = new ChunkPosition(storedChunks + 1, cursor);
    resumes.put(key, next);
    return new ChunkStep(next, false);
  }

  // ------------------------------------------------------------------ transfers received

  /**
   * An arriving chunk {@code chunk} ({@code last}: the final one) of a FORWARD or REVERSE
   * transfer sent under map {@code tag}. Only the chunk after the stored progress is stored; one
   * stored already is answered so, any other is out of order. A transfer stored whole before the
   * participant heard of it (a crash between) is taken up now.
   */
  public ChunkDecision receiveChunk(long rangeStart, long handoverEpoch, Direction dir, long tag,
      long chunk, boolean last, byte[] cursor) {
    Buffer into = dir == Direction.FORWARD ? Buffer.PREFIX : Buffer.RETURNED;
    TransferVerdict v = participant.acceptTransfer(rangeStart, handoverEpoch, dir, tag);
    switch (v) {
      case WAIT:
        return new ChunkDecision(ChunkVerdict.WAIT, Progress.NONE);
      case ACCEPT: {
        Progress p = host.transferProgress(rangeStart, handoverEpoch, into);
        if (p.complete()) {
          event(() -> {
            execute(participant.onTransferStored(rangeStart, handoverEpoch, dir));
            persist();
          });
          return new ChunkDecision(ChunkVerdict.ALREADY_STORED, p);
        }
        if (chunk <= p.chunks()) {
          return new ChunkDecision(ChunkVerdict.ALREADY_STORED, p);
        }
        if (chunk != p.chunks() + 1) {
          return new ChunkDecision(ChunkVerdict.OUT_OF_ORDER, p);
        }
        return new ChunkDecision(ChunkVerdict.STORE, new Progress(chunk, cursor, last));
      }
      case DUPLICATE: {
        // Repeat the stored step's follow-up: its report may have been lost.
        event(() -> {
          execute(participant.onTransferStored(rangeStart, handoverEpoch, dir));
          persist();
        });
        Progress p = host.transferProgress(rangeStart, handoverEpoch, into);
        return new ChunkDecision(ChunkVerdict.ALREADY_STORED,
            new Progress(Math.max(p.chunks(), chunk), p.cursor(), true));
      }
      default:
        return new ChunkDecision(ChunkVerdict.REFUSED, Progress.NONE);
    }
  }

  /** A chunk decided STORE is stored durably; the final one completes the transfer here. */
  public List<Effect<C>> onChunkStored(long rangeStart, long handoverEpoch, Direction dir,
      boolean last) {
    if (!last) {
      return List.of();
    }
    return event(() -> {
      execute(participant.onTransferStored(rangeStart, handoverEpoch, dir));
      persist();
    });
  }

  // ------------------------------------------------------------------ late messages

  /**
   * The next late batch: queued messages of ranges this server does not own, then the copies in
   * buffers of handovers no longer open here, every one for one owner (the first found that is
   * not in {@code refusing}), one entry per message id, within the late-batch bounds. Its copies
   * are in flight until {@link #lateBatchDone}. Null when nothing can be sent now.
   */
  public LateBatch<C> nextLateBatch(Set<String> refusing) {
    if (image.version() == 0) {
      return null;
    }
    LateCollector c = new LateCollector(refusing);
    for (RangeEntry r : rangesWithBacklog()) {
      if (leftoverQueue(r) && !c.offerAll(host.queued(r.start(), r.end(),
          settings.lateBatchMessages(), settings.lateBatchBytes()))) {
        break;
      }
    }
    for (BufferedHandover h : host.bufferedHandovers()) {
      if (c.full()) {
        break;
      }
      if (!isOpen(h)) {
        c.offerAll(host.buffered(h.rangeStart(), h.handoverEpoch(),
            settings.lateBatchMessages(), settings.lateBatchBytes()));
      }
    }
    if (c.to == null) {
      return null;
    }
    List<List<C>> copies = new ArrayList<>(c.byId.values());
    for (List<C> l : copies) {
      lateInFlight.addAll(l);
    }
    return new LateBatch<>(c.to, ++lateBatchSeq, image.version(), copies);
  }

  /** A late batch was answered, or given up: its copies may be taken back or sent again. */
  public void lateBatchDone(LateBatch<C> b) {
    for (List<C> l : b.copies()) {
      l.forEach(lateInFlight::remove);
    }
  }

  /** Whether a late batch's receiver is still in the map and not DOWN. */
  public boolean stillReachable(String server) {
    QueueServerInfo info = image.server(server);
    return info != null && info.state() != ServerState.DOWN;
  }

  /**
   * The server a late message of ring position {@code hash} goes to now: its range's owner when
   * that is another server, not DOWN, and would queue it (no handover of the range past
   * PREPARE); null while it cannot be sent.
   */
  public String lateDestination(long hash) {
    RangeEntry r = image.rangeFor(hash);
    if (!r.isAssigned() || r.owner().equals(me) || participant.side(r.start()) != null
        || r.handover() != null && r.handover().phase() != HandoverPhase.PREPARE) {
      return null;
    }
    QueueServerInfo owner = image.server(r.owner());
    // A DRAINING owner still serves its ranges; a DOWN one's are about to be forced.
    return owner != null && owner.state() != ServerState.DOWN ? r.owner() : null;
  }

  private final class LateCollector {
    final Set<String> refusing;
    final Map<String, List<C>> byId = new LinkedHashMap<>();
    String to;
    long bytes;

    LateCollector(Set<String> refusing) {
      this.refusing = refusing;
    }

    boolean full() {
      return byId.size() >= settings.lateBatchMessages() || bytes >= settings.lateBatchBytes();
    }

    /** Offers copies in order; false once the batch is full. */
    boolean offerAll(List<C> copies) {
      for (C h : copies) {
        String dest = lateDestination(host.hashOf(h));
        if (dest == null || refusing.contains(dest) || lateInFlight.contains(h)
            || to != null && !to.equals(dest)) {
          continue;
        }
        List<C> same = byId.get(host.idOf(h));
        if (same != null) {
          same.add(h); // another copy of a message in the batch: dropped with it
          continue;
        }
        long size = host.sizeOf(h);
        if (full() || !byId.isEmpty() && bytes + size > settings.lateBatchBytes()) {
          return false;
        }
        to = dest;
        bytes += size;
        byId.computeIfAbsent(host.idOf(h), k -> new ArrayList<>()).add(h);
      }
      return !full();
    }
  }

  // ------------------------------------------------------------------ inside

  private List<Effect<C>> event(Runnable body) {
    List<Effect<C>> outer = emitted;
    List<Effect<C>> mine = new ArrayList<>();
    emitted = mine;
    try {
      body.run();
    } finally {
      outer.addAll(mine);
      emitted = outer;
    }
    return mine;
  }

  private void emit(Effect<C> e) {
    emitted.add(e);
    host.apply(e);
  }

  /** The participant's actions: store actions now, reports and transfers after the save. */
  private void execute(List<Action> actions) {
    for (Action a : actions) {
      if (a instanceof Action.ReportReady r) {
        pendingSends.add(new Effect.Report<>(ReportKind.READY, r.rangeStart(),
            r.handoverEpoch()));
      } else if (a instanceof Action.ReportDrained r) {
        pendingSends.add(new Effect.Report<>(ReportKind.DRAINED, r.rangeStart(),
            r.handoverEpoch()));
      } else if (a instanceof Action.ReportReversed r) {
        pendingSends.add(new Effect.Report<>(ReportKind.REVERSED, r.rangeStart(),
            r.handoverEpoch()));
      } else if (a instanceof Action.AwaitBacklog w) {
        awaitingBacklog.add(w.rangeStart());
        checkBacklogs();
      } else if (a instanceof Action.Transfer t) {
        RangeEntry range = rangeAt(t.rangeStart());
        pendingSends.add(new Effect.Transfer<>(t, image.version(),
            range == null ? 0 : range.end()));
      } else if (a instanceof Action.Release r) {
        emit(new Effect.Release<>(r.rangeStart(), r.handoverEpoch(), r.buffers()));
      } else if (a instanceof Action.Discard d) {
        emit(new Effect.Discard<>(d.rangeStart(), d.handoverEpoch(), d.buffers()));
      } else if (a instanceof Action.Orphaned o) {
        // What we hold of it is found in the store by findLeftovers, after these actions: the
        // action itself is not persisted, and a crash would forget it.
        emit(new Effect.Orphaned<>(o.rangeStart(), o.handoverEpoch()));
      }
    }
  }

  /** Seals every range waiting for its backlog whose backlog is gone (C1). */
  private void checkBacklogs() {
    for (Long start : new ArrayList<>(awaitingBacklog)) {
      RangeEntry r = rangeAt(start);
      if (r == null) {
        awaitingBacklog.remove(start);
        continue;
      }
      if (host.backlog(r.start(), r.end()) == 0) {
        awaitingBacklog.remove(start);
        List<Action> next = participant.onBacklogEmpty(start);
        if (!next.isEmpty()) {
          emit(new Effect.Sealed<>(start, next.get(0).handoverEpoch()));
        }
        execute(next);
        persist();
      }
    }
  }

  /**
   * Saves the sides if they changed (and lets go of the transfers of handovers no longer open
   * here), then emits the reports and transfers that wait for it.
   */
  private void persist() {
    Set<Side> sides = new LinkedHashSet<>(participant.sides());
    if (!sides.equals(persistedSides)) {
      emit(new Effect.Save<>(List.copyOf(sides), image.version()));
      Set<BufferedHandover> open = new LinkedHashSet<>();
      for (Side side : sides) {
        open.add(new BufferedHandover(side.rangeStart(), side.handoverEpoch()));
      }
      for (Side gone : persistedSides) {
        if (!open.contains(new BufferedHandover(gone.rangeStart(), gone.handoverEpoch()))) {
          emit(new Effect.ForgetTransfers<>(gone.rangeStart(), gone.handoverEpoch()));
          for (Direction d : Direction.values()) {
            resumes.remove(transferKey(gone.rangeStart(), gone.handoverEpoch(), d));
          }
        }
      }
      persistedSides = sides;
    }
    List<Effect<C>> sends = new ArrayList<>(pendingSends);
    pendingSends.clear();
    sends.forEach(this::emit);
  }

  /**
   * What this server still holds of ranges it lost: the buffers of handovers no longer open here
   * and queued messages of ranges it does not own, found in the store (the participant's
   * {@code Orphaned} is not persisted). Placed by key in the current map, whatever splits and
   * merges happened since: buffered copies whose keys are ours again go back into our queue,
   * marked late; queued messages of another's range are marked late (once per stretch of its
   * ownership) and, with the rest, sent to their keys' owners by the late sender.
   */
  private void findLeftovers() {
    if (image.version() == 0) {
      return;
    }
    boolean toSend = false;
    for (BufferedHandover h : host.bufferedHandovers()) {
      if (isOpen(h)) {
        continue;
      }
      // Read at most lateBatch.bytes at a time, and take back at most lateBatch.messages a
      // round: a large leftover neither fills memory nor holds up publishes for long.
      int taken = 0;
      while (taken < settings.lateBatchMessages()) {
        List<C> copies = host.buffered(h.rangeStart(), h.handoverEpoch(),
            settings.lateBatchMessages() - taken, settings.lateBatchBytes());
        List<C> ours = new ArrayList<>();
        for (C c : copies) {
          if (!lateInFlight.contains(c) && image.rangeFor(host.hashOf(c)).owner().equals(me)) {
            ours.add(c);
          }
        }
        if (!ours.isEmpty()) {
          emit(new Effect.RequeueLate<>(h.rangeStart(), h.handoverEpoch(), ours));
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
    Map<Long, Long> leftovers = new TreeMap<>();
    for (RangeEntry r : rangesWithBacklog()) {
      if (!r.isAssigned() || r.owner().equals(me)) {
        continue;
      }
      // Another server owns these keys now, so what is queued of them here is left over from
      // when this server owned them (it queues nothing of another's range: a target holds its
      // arrivals in HELD). Marked late before they are sent on: should the range come back
      // here first — also through a handover to this server, which may already be open when a
      // returning server first sees the range — they are delivered as late, not as if in order
      // ahead of what the other owner delivered meanwhile.
      leftovers.put(r.start(), r.end());
      if (!Long.valueOf(r.end()).equals(markedLeftovers.get(r.start()))) {
        emit(new Effect.MarkQueuedLate<>(r.start(), r.end(), r.owner()));
      }
      // Sent on only while no handover of the range is open with this server.
      toSend |= leftoverQueue(r);
    }
    // Marked once per stretch while it stays another's; a range ours again is forgotten, so
    // what it queues afterwards is marked when it is lost again.
    markedLeftovers.clear();
    markedLeftovers.putAll(leftovers);
    if (toSend) {
      emit(new Effect.KickLate<>());
    }
  }

  /** The ranges of the map with queued messages here, in map order, found from the store. */
  private List<RangeEntry> rangesWithBacklog() {
    List<RangeEntry> out = new ArrayList<>();
    for (OptionalLong h = host.nextQueuedHash(0); h.isPresent(); ) {
      RangeEntry r = image.rangeFor(h.getAsLong());
      out.add(r);
      h = r.end() == Ring.RING_END ? OptionalLong.empty() : host.nextQueuedHash(r.end());
    }
    return out;
  }

  /** Whether queued messages of {@code r} are another server's: owned by it, no side here. */
  private boolean leftoverQueue(RangeEntry r) {
    return r.isAssigned() && !r.owner().equals(me) && participant.side(r.start()) == null;
  }

  private boolean isOpen(BufferedHandover h) {
    Side side = participant.side(h.rangeStart());
    return side != null && side.handoverEpoch() == h.handoverEpoch();
  }

  private RangeEntry rangeAt(long start) {
    int i = image.indexOfStart(start);
    return i < 0 ? null : image.range(i);
  }

  /** A transfer's identity: range, handover epoch, direction. */
  public static String transferKey(Action.Transfer t) {
    return transferKey(t.rangeStart(), t.handoverEpoch(), t.direction());
  }

  private static String transferKey(long rangeStart, long handoverEpoch, Direction d) {
    return rangeStart + "/" + handoverEpoch + "/" + d;
  }
}
