package io.plb.core.publish;

import io.plb.core.command.Limits;
import io.plb.core.handover.SendBarrier;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The decisions of one producer session (docs/design.md §5 "Router publish path"): numbering
 * messages, the pending FIFO of each range, rule C4's slots and barrier ({@link SendBarrier}), what
 * to send next to which queue server under which map version, and what each answer means. The
 * router's {@code Producer} wraps it with the gRPC streams, the lock, the timers and the futures;
 * the seeded handover simulation drives the same class over its simulated links.
 *
 * <h2>Thread model</h2>
 *
 * Pure, deterministic and single-threaded: not thread-safe (its owner calls it under one lock), no
 * threads, no clock (every event that depends on time is given {@code now}, in the caller's
 * monotonic units, which must not wrap), no randomness (backoffs come from {@link Backoff}), no
 * I/O. Every decision iterates ordered collections only, so the same events give the same
 * actions. Each event method appends what to do to an outbox that {@link #drain()} empties, in
 * the order it must be done: {@link Action.Open} a stream, {@link Action.Write} a request on it,
 * {@link Action.Cancel} it, {@link Action.WakeAt} (call {@link #timerFired} then), and the outcome
 * of a message ({@link Action.Acked}, {@link Action.Rejected}; at most one per message).
 *
 * <h2>Path of a message</h2>
 *
 * <ol>
 *   <li>{@link #publish} numbers the message (1, 2, 3, ... across keys) and appends it to the
 *       pending FIFO of the range its key's hash falls in (or to the unrouted list before the
 *       first map).
 *   <li>The head of a range's FIFO is sent when rule C4 allows (below): it is routed under the
 *       current map — tag = map version, {@code range_start}, destination
 *       {@link SendBarrier.Entry#destination()} (the target once a move has switched) — and
 *       appended to the <em>link</em> to that server.
 *   <li>A link is one ordered stream per queue server, opened on first use at the address the map
 *       gives. Items leave in link order, batched: while {@link Config#maxRequestsPerLink} requests
 *       are unanswered, new items accumulate, and each request takes up to
 *       {@link Config#maxBatchItems} items / {@link Config#maxBatchBytes} bytes (a single larger
 *       item goes alone). Every request carries the epoch and {@code settled_below}, the lowest
 *       unfinished seq.
 *   <li>The server answers each request with one result per item, in order ({@link #onResponse}).
 *       {@code ACCEPTED} (also with {@code duplicate}) finishes the message; {@code WRONG_OWNER}
 *       and {@code OVERLOADED} turn into resends; {@code REJECTED} finishes it as rejected and is
 *       never resent. A response that does not match its request breaks the link.
 * </ol>
 *
 * <h2>Rule C4 and the slots</h2>
 *
 * The barrier is kept per <em>slot</em>: the range bounds {@code [start, end)} that sends were
 * routed under, named by a slot id that is never reused, so the barrier's state cannot mix two
 * different ranges that share a start (a split keeps the left half's start). A slot is
 * <em>active</em> while it holds a send that is unsettled (neither acknowledged nor refused) or a
 * refused message not yet resent. Active slots whose bounds are still a range of the current map
 * are <em>current</em>; the others (their range was split or merged since) are <em>stale</em>.
 * <ul>
 *   <li><b>New messages.</b> The head of range R's FIFO, under entry E, is sent only if no stale
 *       slot overlaps R and R's current slot (if any) passes {@code barrier.maySend(slot, E)}:
 *       nothing refused is waiting and every unsettled send went under E. So after a split or
 *       merge, a range waits until every unsettled send of the old ranges overlapping it has
 *       settled (and been resent).
 *   <li><b>Resends.</b> A refused message goes back into its slot's barrier; once the slot has no
 *       unsettled send, the session's map has reached the refusal's version, any backoff has
 *       passed and every range now overlapping the slot has an owner, {@code takeResends} gives
 *       the slot's refused messages in sequence order, and each is routed by its key's hash under
 *       the <em>current</em> map (tag = current version) and sent at once, before any pending
 *       message of the ranges it lands in (those are held by the refused slot until then).
 * </ul>
 * Invariants, between two events:
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
 *   <li>A message has at most one outcome: it leaves the unfinished set exactly once.
 * </ol>
 * Between a split or merge and the resends the barrier's unit is finer than the map's: resends of
 * one old range may go into a new range while another old range overlapping it still has
 * unsettled sends. That is safe per key — the keys are different, and the new range's pending
 * messages stay blocked until both have settled.
 *
 * <h2>Failures: at least once</h2>
 *
 * <ul>
 *   <li>{@code WRONG_OWNER}: resent as above once the map reaches the version in the refusal. A
 *       refusal that carries no newer version than the send's tag teaches nothing new; the slot
 *       then backs off ({@link Wait#QUIET_REFUSAL}) before resending.
 *   <li>{@code OVERLOADED}: like a refusal, resent in order after a backoff
 *       ({@link Wait#OVERLOAD}) that grows while the server keeps answering it.
 *   <li>After either, the slot's later messages still waiting on that link (not yet written) are
 *       taken back as refused too: written, they could be accepted ahead of the resend. Messages
 *       already written in other requests cannot be taken back, so with
 *       {@link Config#maxRequestsPerLink} above 1 order also relies on the server: its refusal
 *       fence for WRONG_OWNER, and for OVERLOADED the overload fence, fed by each request's
 *       {@code overloads_seen} (the OVERLOADED results received on the stream so far).
 *   <li>A link that fails ({@link #streamFailed}; a stream error, a server gone, a reply that does
 *       not match the request): every unsettled item on it is treated as refused at the current
 *       version and resent, in order, once the link's reconnect backoff ({@link Wait#RECONNECT})
 *       has passed — to wherever the map then says. The server may have stored some of them (only
 *       the answer was lost); idempotent publish recognises those.
 *   <li>A server removed from the map, or whose address changed: its link is closed and its
 *       unsettled items are resent the same way, without a backoff.
 * </ul>
 *
 * @param <T> what the owner keeps per message (key, payload, future, ...); handed back in
 *     requests and outcomes, never looked into
 */
public final class PublishSession<T> {
  /** No message has it: {@code barrier.acked} with it only drops a slot's empty state. */
  private static final long NO_SEQ = 0;

  /** A queue server's answer to one item. */
  public enum Status {
    ACCEPTED,
    WRONG_OWNER,
    OVERLOADED,
    /** Refused as bad input (or any answer the session does not know): never resent. */
    REJECTED
  }

  /** What a backoff waits out. */
  public enum Wait {
    /** Reopening a link that failed; {@code attempt} counts failures since its last answer. */
    RECONNECT,
    /** A server answering OVERLOADED; {@code attempt} counts responses in a row with one. */
    OVERLOAD,
    /** WRONG_OWNER with no newer version than the send's tag; attempt counts them in a row. */
    QUIET_REFUSAL
  }

  /** The delay before the {@code attempt}-th retry (from 1), in the caller's time units. */
  @FunctionalInterface
  public interface Backoff {
    long delay(Wait why, int attempt);
  }

  /**
   * Settings.
   *
   * @param epoch the instance's epoch, sent with every request (0: not idempotent)
   * @param maxBatchItems most items in one request
   * @param maxBatchBytes most item bytes (as given to {@link #publish}) in one request
   * @param maxRequestsPerLink requests a link may have unanswered
   * @param backoff the backoffs
   */
  public record Config(long epoch, int maxBatchItems, long maxBatchBytes, int maxRequestsPerLink,
      Backoff backoff) {
    public Config {
      if (maxBatchItems <= 0 || maxBatchBytes <= 0 || maxRequestsPerLink <= 0) {
        throw new IllegalArgumentException("batch and link limits must be > 0");
      }
      Objects.requireNonNull(backoff, "backoff");
    }
  }

  /**
   * One message in a request: its seq, the map version and range it was routed under, and the
   * servers an earlier attempt was written to without an answer (any may have stored it; sent as
   * {@code maybe_stored_at}, at most {@link Limits#MAX_MAYBE_STORED_AT}).
   */
  public record Item<T>(long seq, long tag, long rangeStart, T message,
      List<String> maybeStoredAt) {}

  /** A request to write on {@code stream} to {@code server}. */
  public record Request<T>(String server, long stream, long epoch, long settledBelow,
      long overloadsSeen, List<Item<T>> items) {}

  /**
   * A server's answer to one item.
   *
   * @param mapVersion the server's version, for WRONG_OWNER
   * @param duplicate ACCEPTED for a message the server had stored already
   * @param detail why, for REJECTED
   */
  public record Result(long seq, Status status, long mapVersion, boolean duplicate,
      String detail) {
    public static Result accepted(long seq, boolean duplicate) {
      return new Result(seq, Status.ACCEPTED, 0, duplicate, "");
    }

    public static Result wrongOwner(long seq, long mapVersion) {
      return new Result(seq, Status.WRONG_OWNER, mapVersion, false, "");
    }

    public static Result overloaded(long seq) {
      return new Result(seq, Status.OVERLOADED, 0, false, "");
    }

    public static Result rejected(long seq, String detail) {
      return new Result(seq, Status.REJECTED, 0, false, detail);
    }
  }

  /** A link that failed: {@code unsettled} items will be resent; reopened at {@code retryAt}. */
  public record LinkFailure(String server, String address, int unsettled, long retryAt) {}

  /** What the owner must do, in outbox order. */
  public sealed interface Action<T> {
    /** Open a stream to {@code server} at {@code address}; later actions name it by id. */
    record Open<T>(String server, String address, long stream) implements Action<T> {}

    /** Write the request on its stream (ignore it if that stream is gone). */
    record Write<T>(Request<T> request) implements Action<T> {}

    /** End the stream; nothing more of it is read. */
    record Cancel<T>(String server, long stream, String reason) implements Action<T> {}

    /** Call {@link PublishSession#timerFired} with {@code at} once {@code at} has come. */
    record WakeAt<T>(long at) implements Action<T> {}

    /** The message was accepted by {@code server} under map version {@code tag}. */
    record Acked<T>(long seq, T message, String server, long tag, boolean duplicate)
        implements Action<T> {}

    /** The message was rejected by {@code server}; it is never resent. */
    record Rejected<T>(long seq, T message, String server, String detail)
        implements Action<T> {}
  }

  // ---------------------------------------------------------------- internal state

  private static final class Msg<T> {
    final long seq;
    final long hash;
    final long size;
    final T message;
    Slot slot;
    long tag;
    long rangeStart;
    /** Servers it was written to whose answer never came; usually empty. */
    List<String> maybeStoredAt = List.of();

    Msg(long seq, long hash, long size, T message) {
      this.seq = seq;
      this.hash = hash;
      this.size = size;
      this.message = message;
    }
  }

  /** Range bounds that sends were routed under; the unit of the barrier. */
  private static final class Slot {
    final long id;
    final long start;
    final long end;
    int unsettled;
    int refused;
    /** No resend before this instant. */
    long notBefore;
    int quietRefusals;

    Slot(long id, long start, long end, long now) {
      this.id = id;
      this.start = start;
      this.end = end;
      this.notBefore = now;
    }
  }

  /** The pending FIFO of one range of the current map. */
  private static final class Bucket<T> {
    final long start;
    final long end;
    final ArrayDeque<Msg<T>> queue = new ArrayDeque<>();

    Bucket(long start, long end) {
      this.start = start;
      this.end = end;
    }
  }

  /** The ordered stream to one queue server. */
  private static final class Link<T> {
    final String server;
    final String address;
    /** The open stream's id; 0 when none is open. */
    long stream;
    int failures;
    long retryAt;
    int overloadStreak;
    /** OVERLOADED results received on the current stream: sent as overloads_seen. */
    long overloadsSeen;
    final ArrayDeque<Msg<T>> queue = new ArrayDeque<>();
    final ArrayDeque<List<Msg<T>>> outstanding = new ArrayDeque<>();

    Link(String server, String address, long now) {
      this.server = server;
      this.address = address;
      this.retryAt = now;
    }

    int unsettled() {
      int n = queue.size();
      for (List<Msg<T>> b : outstanding) {
        n += b.size();
      }
      return n;
    }
  }

  private final Config config;
  private ClusterImage view;
  private final SendBarrier<Msg<T>> barrier = new SendBarrier<>();
  private final TreeMap<Long, Bucket<T>> buckets = new TreeMap<>();
  private final ArrayDeque<Msg<T>> unrouted = new ArrayDeque<>();
  private final TreeMap<Long, Slot> activeSlots = new TreeMap<>();
  private final TreeMap<Long, Slot> currentSlots = new TreeMap<>();
  private final List<Slot> staleSlots = new ArrayList<>();
  private final TreeMap<String, Link<T>> links = new TreeMap<>();
  private final TreeMap<Long, Link<T>> streams = new TreeMap<>();
  private final Set<Link<T>> dirty = new LinkedHashSet<>();
  /** Unfinished messages by seq; the first is the lowest seq the servers must still know. */
  private final TreeMap<Long, Msg<T>> live = new TreeMap<>();
  /** Instants a {@link Action.WakeAt} is out for. */
  private final TreeSet<Long> wakes = new TreeSet<>();
  private final List<Action<T>> out = new ArrayList<>();
  private long now;
  private long nextSeq = 1;
  private long nextSlotId = 1;
  private long nextStream = 1;
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

  public PublishSession(Config config) {
    this.config = Objects.requireNonNull(config, "config");
  }

  // ---------------------------------------------------------------- queries

  /** The map version the session routes by; -1 before its first map. */
  public long mapVersion() {
    return view == null ? -1 : view.version();
  }

  /** The seq the next {@link #publish} gives. */
  public long nextSeq() {
    return nextSeq;
  }

  /** Messages without an outcome yet (pending, sent, awaiting resend). */
  public int unfinished() {
    return live.size();
  }

  /** Of the unfinished messages, those not handed to a link (pending or awaiting resend). */
  public long waiting() {
    long onWire = 0;
    for (Link<T> l : links.values()) {
      onWire += l.unsettled();
    }
    return live.size() - onWire;
  }

  /** The lowest unfinished seq, or the next seq when none is unfinished. */
  public long settledBelow() {
    return live.isEmpty() ? nextSeq : live.firstKey();
  }

  public boolean isClosed() {
    return closed;
  }

  public long published() {
    return published;
  }

  public long acknowledged() {
    return acknowledged;
  }

  /** WRONG_OWNER answers. */
  public long refused() {
    return refused;
  }

  public long overloaded() {
    return overloaded;
  }

  public long rejected() {
    return rejected;
  }

  /** Sends of a message after its first. */
  public long resent() {
    return resent;
  }

  /** Acknowledgements with {@code duplicate}. */
  public long duplicates() {
    return duplicates;
  }

  public long linkFailures() {
    return linkFailures;
  }

  /** Requests written. */
  public long requests() {
    return requests;
  }

  /** Takes what the events since the last call decided, in the order to do it. */
  public List<Action<T>> drain() {
    List<Action<T>> list = new ArrayList<>(out);
    out.clear();
    return list;
  }

  // ---------------------------------------------------------------- events

  /**
   * Takes a message whose key hashes to {@code hash}; {@code size} counts against
   * {@link Config#maxBatchBytes}. Returns its seq.
   *
   * @throws IllegalStateException once closed
   */
  public long publish(long hash, long size, T message, long now) {
    if (closed) {
      throw new IllegalStateException("closed");
    }
    this.now = now;
    Msg<T> m = new Msg<>(nextSeq++, hash, size, message);
    live.put(m.seq, m);
    published++;
    enqueue(m);
    flushDirty();
    return m.seq;
  }

  /**
   * A map image: ignored unless newer than the current one. Rebuilds the FIFOs if the ranges
   * changed, closes links to servers that left the map or moved, and sends what the new map
   * allows. Returns whether it was applied.
   */
  public boolean onMap(ClusterImage image, long now) {
    if (closed || (view != null && image.version() <= view.version())) {
      return false;
    }
    this.now = now;
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
    for (Link<T> l : new ArrayList<>(links.values())) {
      QueueServerInfo s = image.server(l.server);
      if (s == null || !s.address().equals(l.address)) {
        closeLink(l);
      }
    }
    for (Slot s : new ArrayList<>(activeSlots.values())) {
      trySlot(s);
    }
    for (Bucket<T> b : new ArrayList<>(buckets.values())) {
      if (buckets.get(b.start) == b) {
        pumpBucket(b);
      }
    }
    flushDirty();
    return true;
  }

  /**
   * The answer to the oldest unanswered request on {@code stream}: one result per item, in order.
   * Returns null, or what was wrong with it — then the link has failed as by
   * {@link #streamFailed}. Answers of a stream that is no longer open are ignored.
   */
  public String onResponse(long stream, List<Result> results, long now) {
    Link<T> l = streams.get(stream);
    if (l == null || closed) {
      return null;
    }
    this.now = now;
    List<Msg<T>> b = l.outstanding.peek();
    String bad = null;
    if (b == null) {
      bad = "a response without a request";
    } else if (results.size() != b.size()) {
      bad = results.size() + " results for " + b.size() + " items";
    } else {
      for (int i = 0; i < results.size(); i++) {
        if (results.get(i).seq() != b.get(i).seq) {
          bad = "result " + i + " is for seq " + results.get(i).seq() + ", not " + b.get(i).seq;
          break;
        }
      }
    }
    if (bad != null) {
      fail(l, "protocol error: " + bad);
      flushDirty();
      return bad;
    }
    l.outstanding.poll();
    l.failures = 0;
    boolean anyOverloaded = false;
    for (Result res : results) {
      if (res.status() == Status.OVERLOADED) {
        anyOverloaded = true;
        l.overloadsSeen++;
      }
    }
    long overloadUntil = 0;
    if (anyOverloaded) {
      l.overloadStreak++;
      overloadUntil = now + config.backoff().delay(Wait.OVERLOAD, l.overloadStreak);
    } else {
      l.overloadStreak = 0;
    }
    Set<Slot> touched = new LinkedHashSet<>();
    Map<Slot, Long> turnedBack = new LinkedHashMap<>(); // slot -> highest refusal version
    for (int i = 0; i < b.size(); i++) {
      Msg<T> m = b.get(i);
      Result res = results.get(i);
      Slot s = m.slot;
      touched.add(s);
      s.unsettled--;
      switch (res.status()) {
        case ACCEPTED -> {
          barrier.acked(s.id, m.seq);
          s.quietRefusals = 0;
          acknowledged++;
          if (res.duplicate()) {
            duplicates++;
          }
          if (finish(m)) {
            out.add(new Action.Acked<>(m.seq, m.message, l.server, m.tag, res.duplicate()));
          }
        }
        case WRONG_OWNER -> {
          turnedBack.merge(s, res.mapVersion(), Math::max);
          barrier.refused(s.id, m.seq, m, res.mapVersion());
          s.refused++;
          refused++;
          if (res.mapVersion() <= m.tag) {
            // The server knows no newer map than we routed by: nothing to wait for, so back off
            // rather than resend in a tight loop.
            s.quietRefusals++;
            backOff(s, now + config.backoff().delay(Wait.QUIET_REFUSAL, s.quietRefusals));
          }
        }
        case OVERLOADED -> {
          turnedBack.merge(s, 0L, Math::max);
          barrier.refused(s.id, m.seq, m, 0);
          s.refused++;
          overloaded++;
          backOff(s, overloadUntil);
        }
        case REJECTED -> {
          barrier.acked(s.id, m.seq); // settled for good: never resent
          rejected++;
          if (finish(m)) {
            out.add(new Action.Rejected<>(m.seq, m.message, l.server, res.detail()));
          }
        }
      }
    }
    if (!turnedBack.isEmpty()) {
      takeBackUnwritten(l, turnedBack);
    }
    afterSettle(touched);
    dirty.add(l);
    flushDirty();
    return null;
  }

  /**
   * The stream failed (an error, the server ended it with requests unanswered, it could not be
   * opened): everything unsettled on its link is refused at the current version, to be resent
   * once the link's reconnect backoff has passed. Returns what failed, or null if the stream was
   * no longer open.
   */
  public LinkFailure streamFailed(long stream, String why, long now) {
    Link<T> l = streams.get(stream);
    if (l == null || closed) {
      return null;
    }
    this.now = now;
    LinkFailure f = fail(l, why);
    flushDirty();
    return f;
  }

  /**
   * The server ended the stream without an error. With nothing unanswered or waiting on the link
   * it is just closed (reopened on next use); otherwise it failed. Returns the failure, or null.
   */
  public LinkFailure streamEnded(long stream, long now) {
    Link<T> l = streams.get(stream);
    if (l == null || closed) {
      return null;
    }
    if (l.outstanding.isEmpty() && l.queue.isEmpty()) {
      streams.remove(l.stream);
      out.add(new Action.Cancel<>(l.server, l.stream, "stream ended by the server"));
      l.stream = 0;
      return null;
    }
    return streamFailed(stream, "stream completed by server", now);
  }

  /** A {@link Action.WakeAt} for {@code at} has come: does what waited for it. */
  public void timerFired(long at, long now) {
    wakes.remove(at);
    if (closed) {
      return;
    }
    this.now = now;
    if (view != null) {
      for (Slot s : new ArrayList<>(activeSlots.values())) {
        trySlot(s);
      }
      for (Bucket<T> b : new ArrayList<>(buckets.values())) {
        if (buckets.get(b.start) == b) {
          pumpBucket(b);
        }
      }
    }
    for (Link<T> l : links.values()) {
      if (!l.queue.isEmpty()) {
        dirty.add(l);
      }
    }
    flushDirty();
  }

  /**
   * Ends the session: cancels every open stream and returns the unfinished messages, in seq
   * order, which have no outcome now (a server may still have stored some of them).
   */
  public List<T> close() {
    List<T> left = new ArrayList<>();
    if (closed) {
      return left;
    }
    closed = true;
    for (Msg<T> m : live.values()) {
      left.add(m.message);
    }
    live.clear();
    for (Link<T> l : links.values()) {
      if (l.stream != 0) {
        out.add(new Action.Cancel<>(l.server, l.stream, "producer closed"));
      }
    }
    links.clear();
    streams.clear();
    dirty.clear();
    buckets.clear();
    unrouted.clear();
    activeSlots.clear();
    currentSlots.clear();
    staleSlots.clear();
    return left;
  }

  // ---------------------------------------------------------------- routing

  private void enqueue(Msg<T> m) {
    if (view == null) {
      unrouted.add(m);
      return;
    }
    RangeEntry r = view.rangeFor(m.hash);
    Bucket<T> b = buckets.get(r.start());
    if (b == null) {
      b = new Bucket<>(r.start(), r.end());
      buckets.put(r.start(), b);
    }
    b.queue.add(m);
    if (b.queue.size() == 1) {
      pumpBucket(b); // a longer FIFO's head is blocked: it moves when what blocks it settles
    }
  }

  /** Sends the head of a range's FIFO while C4 allows. */
  private void pumpBucket(Bucket<T> b) {
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

  private void send(Msg<T> m, RangeEntry r, SendBarrier.Entry e, boolean resend) {
    Slot s = currentSlots.get(r.start());
    if (s == null) {
      s = new Slot(nextSlotId++, r.start(), r.end(), now);
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
    Link<T> l = links.get(dest);
    if (l == null) {
      l = new Link<>(dest, view.server(dest).address(), now);
      links.put(dest, l);
    }
    l.queue.add(m);
    dirty.add(l);
  }

  /** Resends a slot's refused messages if C4 allows now; asks for a wake-up after a backoff. */
  private void trySlot(Slot s) {
    if (s.refused == 0 || s.unsettled > 0 || activeSlots.get(s.id) != s) {
      return;
    }
    long v = view.version();
    if (v < barrier.refusalVersion(s.id)) {
      return; // the map change will bring us back
    }
    if (now < s.notBefore) {
      wakeAt(s.notBefore);
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
    List<Msg<T>> resends = barrier.takeResends(s.id, v);
    s.refused = 0;
    retireIfIdle(s);
    for (Msg<T> m : resends) {
      RangeEntry r = view.rangeFor(m.hash);
      send(m, r, SendBarrier.Entry.of(r), true);
    }
  }

  private void backOff(Slot s, long until) {
    if (s.notBefore < until) {
      s.notBefore = until;
    }
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
      Bucket<T> b = buckets.get(r.start());
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

  /** Rebuilds the pending FIFOs by hash, in sequence order, if the ranges they name changed. */
  private void rebucketIfNeeded() {
    boolean same = unrouted.isEmpty();
    if (same) {
      for (Bucket<T> b : buckets.values()) {
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
    List<Msg<T>> all = new ArrayList<>(unrouted);
    for (Bucket<T> b : buckets.values()) {
      all.addAll(b.queue);
    }
    all.sort(Comparator.comparingLong(m -> m.seq));
    unrouted.clear();
    buckets.clear();
    for (Msg<T> m : all) {
      RangeEntry r = view.rangeFor(m.hash);
      buckets.computeIfAbsent(r.start(), k -> new Bucket<>(r.start(), r.end())).queue.add(m);
    }
  }

  // ---------------------------------------------------------------- links

  private void flushDirty() {
    while (!dirty.isEmpty()) {
      Iterator<Link<T>> it = dirty.iterator();
      Link<T> l = it.next();
      it.remove();
      flushLink(l);
    }
  }

  private void flushLink(Link<T> l) {
    if (closed || links.get(l.server) != l) {
      return;
    }
    if (l.stream == 0) {
      if (l.queue.isEmpty()) {
        return;
      }
      if (now < l.retryAt) {
        wakeAt(l.retryAt);
        return;
      }
      l.stream = nextStream++;
      l.overloadsSeen = 0;
      streams.put(l.stream, l);
      out.add(new Action.Open<>(l.server, l.address, l.stream));
    }
    while (l.outstanding.size() < config.maxRequestsPerLink() && !l.queue.isEmpty()) {
      List<Msg<T>> batch = new ArrayList<>();
      List<Item<T>> items = new ArrayList<>();
      long bytes = 0;
      while (!l.queue.isEmpty() && batch.size() < config.maxBatchItems()) {
        Msg<T> m = l.queue.peek();
        if (!batch.isEmpty() && bytes + m.size > config.maxBatchBytes()) {
          break;
        }
        l.queue.poll();
        batch.add(m);
        items.add(new Item<>(m.seq, m.tag, m.rangeStart, m.message, m.maybeStoredAt));
        bytes += m.size;
      }
      l.outstanding.add(batch);
      requests++;
      // Every seq below the lowest unfinished one is settled: the server may forget them.
      out.add(new Action.Write<>(new Request<>(l.server, l.stream, config.epoch(),
          settledBelow(), l.overloadsSeen, List.copyOf(items))));
    }
  }

  private LinkFailure fail(Link<T> l, String why) {
    long stream = l.stream;
    streams.remove(stream);
    l.stream = 0;
    l.failures++;
    linkFailures++;
    l.retryAt = now + config.backoff().delay(Wait.RECONNECT, l.failures);
    LinkFailure f = new LinkFailure(l.server, l.address, l.unsettled(), l.retryAt);
    out.add(new Action.Cancel<>(l.server, stream, why));
    refuseAll(l, l.retryAt);
    dirty.add(l);
    return f;
  }

  /** The map dropped the server or moved it: close the link; its unsettled items are resent. */
  private void closeLink(Link<T> l) {
    links.remove(l.server);
    dirty.remove(l);
    if (l.stream != 0) {
      streams.remove(l.stream);
      out.add(new Action.Cancel<>(l.server, l.stream, "server left the map or moved"));
      l.stream = 0;
    }
    refuseAll(l, now);
  }

  private void refuseAll(Link<T> l, long notBefore) {
    long v = view.version();
    Set<Slot> touched = new LinkedHashSet<>();
    List<Msg<T>> all = new ArrayList<>();
    for (List<Msg<T>> b : l.outstanding) {
      for (Msg<T> m : b) {
        // Written, unanswered: the server may have stored it (the outcome is unknown).
        m.maybeStoredAt = MaybeStoredAt.with(m.maybeStoredAt, l.server);
        all.add(m);
      }
    }
    all.addAll(l.queue);
    l.outstanding.clear();
    l.queue.clear();
    for (Msg<T> m : all) {
      Slot s = m.slot;
      barrier.refused(s.id, m.seq, m, v);
      s.unsettled--;
      s.refused++;
      backOff(s, notBefore);
      touched.add(s);
    }
    afterSettle(touched);
  }

  /**
   * After a refusal or an overload of a slot's message, the slot's later messages still waiting
   * on the link (not yet written) are refused here too. Written, they could reach a server that
   * has room again, or has passed what made it refuse, and be accepted ahead of the resend. They
   * were never sent, so taking them back duplicates nothing.
   */
  private void takeBackUnwritten(Link<T> l, Map<Slot, Long> turnedBack) {
    for (Iterator<Msg<T>> it = l.queue.iterator(); it.hasNext(); ) {
      Msg<T> m = it.next();
      Long v = turnedBack.get(m.slot);
      if (v != null) {
        it.remove();
        barrier.refused(m.slot.id, m.seq, m, v);
        m.slot.unsettled--;
        m.slot.refused++;
      }
    }
  }

  /** Takes the message out of the session; false if it had an outcome already. */
  private boolean finish(Msg<T> m) {
    return live.remove(m.seq) != null;
  }

  private void wakeAt(long at) {
    Long earlier = wakes.floor(at);
    if (earlier != null) {
      return; // a wake-up comes no later than needed, and looks again then
    }
    wakes.add(at);
    out.add(new Action.WakeAt<>(at));
  }
}
