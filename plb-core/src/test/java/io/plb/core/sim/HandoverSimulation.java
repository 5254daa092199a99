package io.plb.core.sim;

import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.PlbException;
import io.plb.core.handover.AgentCore;
import io.plb.core.handover.Liveness;
import io.plb.core.handover.OwnerLease;
import io.plb.core.handover.Participant;
import io.plb.core.handover.ReportRule;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.Participant.Side;
import io.plb.core.handover.SendBarrier;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.core.publish.MaybeStoredAt;
import io.plb.core.publish.ProducerSequences;
import io.plb.core.publish.PublishSession;
import io.plb.core.publish.ProducerSequences.Verdict;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * A seeded, deterministic simulation of the hold handover: the real map rules
 * ({@link CommandProcessor}), the real queue-server agent core ({@link AgentCore}, which
 * {@code QueueServerAgent} drives too, with the hold rules of its {@link Participant} and the
 * owner lease, {@link OwnerLease}), the real producer sequences of idempotent publish
 * ({@link ProducerSequences}) and the real producer core ({@link PublishSession}, with its
 * barrier {@link SendBarrier}), connected by simulated links on virtual time; the real history
 * checker ({@link HistoryChecker}) judges the end. Links are FIFO each, with random delays, so
 * messages on different links overtake each other; reports to the leader are duplicated at
 * random; the leader moves ranges around, aborts some moves from PREPARE and from SWITCH, times
 * out stalled ones, and ends an ABORT_SWITCH past its deadline with {@code ExpireAbort}; in some
 * runs it also splits and merges ranges under traffic ({@link Faults#reshapeChance}). Each
 * router's producer session is the {@link PublishSession} that the router's {@code Producer}
 * wraps, fed the simulated streams' answers and failures; only the streams and timers around it
 * are the simulation's.
 *
 * <p><b>Leases.</b> Every queue server heartbeats the leader; the leader, with the real liveness
 * and lease decisions of its driver ({@link Liveness}), grants a lease to an ACTIVE server only, counted by the server from its
 * heartbeat's send time and only once it has applied the version the grant names. Without a lease
 * a server answers every publish OVERLOADED (with the stream's overload fence; the router backs
 * off and resends in order), delivers nothing and takes no late messages; transfers and reports
 * flow regardless. The leader declares a silent server DOWN and forces its ranges away only
 * once lease + margin has passed since its last grant (counted from its takeover at the
 * earliest). {@link Faults}: heartbeats and grants lost, servers cut off from the leader for
 * long stretches while producers still reach them, pauses (as SIGSTOP: no step taken, nothing
 * handled, then everything queued to it) shorter than the lease, longer, or until DOWN and
 * forced, operators declaring a suspect server DOWN while its lease may run, leader changes.
 *
 * <p><b>Idempotent publish.</b> Each store keeps the producer sequences in the same write as the
 * messages: a resend whose seq is at most its key's last is acknowledged and not stored; requests
 * carry the producer's lowest unfinished seq (settled_below); transfers carry the sender's entries
 * of the range, which the receiver merges, taking the resends they cover out of the buffer it
 * filled meanwhile (HELD, POST_ABORT); no late copy is skipped (see {@code Disk.queueLate}).
 *
 * <p><b>Crashes</b> (when {@link Crashes#on()}): a queue server crashes at random moments and at
 * named failpoints inside its agent's steps (between an action and the persist that records it,
 * after a store write and before its answer, ...). A crash loses the server's memory — its
 * {@link AgentCore}, its lease, the waits, the transfers and late sends in flight, where its
 * transfers stood — and every message on its way to it; of what it had already sent, a random prefix
 * of each link still arrives (a request already on the wire). What survives is what the queue
 * server keeps durable, at the points it keeps it: the queue, the handover buffers, the producer
 * sequences, the sides saved by each persist and the progress of each transfer received, stored
 * chunk by chunk (two messages a chunk, so crashes fall between chunks and transfers resume
 * from the receiver's progress). Its refusal fences are not kept: a crash ends
 * every link to it, and the agent drops a session's fences once its links are gone. The server
 * restarts after a delay, restores the persisted sides, watches the map again from a full image
 * (possibly after a slow reconnect), and resumes what the agent resumes: owed reports and
 * transfers, the wait for a source's backlog, and late messages of ranges it lost. Routers see
 * their links fail and treat every unsettled send on them as refused. In some runs publish
 * streams also break with no crash: nothing more of the stream reaches the server, answers on
 * their way are lost, the server drops the session's refusal fences (as the agent does once a
 * session's last stream is released), and the router resends what it had no answer for. A DOWN
 * server heard again becomes ACTIVE. One router may watch the map through a slow link.
 *
 * <p><b>Invariants</b>, checked after every event: the map's own invariants (one owner per key at
 * every committed version); versions only grow at every subscriber; a message delivered without
 * the late mark comes from the key's committed owner — a server whose range was forced away never
 * delivers it before learning of that — and the first deliveries of a producer's messages of a
 * key come in the order it sent them; a second delivery carries the late mark. Only the late mark
 * the server sets exempts a message, except in three shapes the design does not yet cover, each
 * recognised precisely and counted (docs/design.md §5, open points): a resend handed back to a
 * source that had stored it, a resend stored by a new owner that never had the entries of the
 * server that stored it (forced handovers; entries forgotten as settled before a transfer carried
 * them), and a leftover delivered unmarked by a server whose range came back to it. At the end,
 * every acknowledged message has been delivered — late ones too — every store is empty, every
 * server is back, ACTIVE and at the last version, and the history checker finds nothing lost, no
 * phantom, and no unexplained duplicate or reordered key beyond those shapes. A failing seed
 * replays exactly.
 *
 * <p>Single-threaded; one instance per run.
 */
final class HandoverSimulation {

  /**
   * Crashes and restarts of queue servers.
   *
   * @param perServer how often each server may crash in a run (0: never)
   * @param chancePerTick chance, per server and leader tick, of a crash at an arbitrary moment
   * @param failpointChance chance of a crash at each failpoint the agent passes
   * @param longChance chance that a crashed server stays down long enough to be declared DOWN
   * @param staleRouter how many times slower producer 0's map link is than the others (1: not)
   * @param focus the one failpoint that may fire, or null for all of them
   */
  record Crashes(int perServer, double chancePerTick, double failpointChance, double longChance,
      int staleRouter, String focus) {
    static final Crashes NONE = new Crashes(0, 0, 0, 0, 1, null);

    Crashes(int perServer, double chancePerTick, double failpointChance, double longChance,
        int staleRouter) {
      this(perServer, chancePerTick, failpointChance, longChance, staleRouter, null);
    }

    boolean on() {
      return perServer > 0;
    }
  }

  /**
   * Faults of the owner lease's inputs and of leadership (docs/design.md §5 "Owner leases").
   *
   * @param heartbeatLoss chance that a heartbeat, or the grant answering it, is lost
   * @param outageChance chance, per server and leader tick, that its heartbeats and grants are
   *     all lost for a while (cut off from the PLB nodes, still reached by producers and by the
   *     map watch) — long enough, often, to be declared DOWN while it runs
   * @param pauseChance chance, per server and leader tick, of a pause (as SIGSTOP): the server
   *     takes no step and handles nothing for a while — shorter than the lease, longer than it,
   *     or long enough to be declared DOWN and have its ranges forced away — and then resumes
   *     with its memory and everything that was sent to it meanwhile
   * @param operatorDownChance chance, per leader tick and suspect server (silent for longer than
   *     {@code suspectAfter}), that an operator declares it DOWN while its lease may still run
   * @param leaderChangeChance chance, per leader tick, that another PLB node takes over: what
   *     was on its way to the old leader is lost, and the new leader's liveness clocks, lease
   *     grants and phase timers start at its takeover
   * @param perServer how many pauses and outages each server may have in a run
   * @param reshapeChance chance, per leader tick, of splitting a range at a random point, and
   *     again of merging two adjacent ranges of one owner (neither in a handover), under traffic
   */
  record Faults(double heartbeatLoss, double outageChance, double pauseChance,
      double operatorDownChance, double leaderChangeChance, int perServer,
      double reshapeChance) {
    static final Faults NONE = new Faults(0, 0, 0, 0, 0, 0, 0);

    Faults(double heartbeatLoss, double outageChance, double pauseChance,
        double operatorDownChance, double leaderChangeChance, int perServer) {
      this(heartbeatLoss, outageChance, pauseChance, operatorDownChance, leaderChangeChance,
          perServer, 0);
    }

    boolean on() {
      return perServer > 0 || operatorDownChance > 0 || heartbeatLoss > 0;
    }
  }

  /** A deliberate defect, to show that the checkers catch it. */
  enum Mutation {
    NONE,
    /** C1 broken: the source reports drained when it sends its hold buffer, not on the ack. */
    C1_DRAINED_BEFORE_ACK,
    /** C2 broken: a message routed under a newer map is placed under the server's own. */
    C2_NO_WAIT,
    /** The refusal fence defeated: every message looks like a new producer session. */
    NO_FENCE,
    /**
     * Refusal fences dropped whenever the map moves on, while the streams live on: a plausible
     * rule (the reason for refusing may have passed) in place of dropping a session's fences
     * only once its stream has ended.
     */
    FENCES_DROPPED_ON_NEW_VERSION,
    /** A restarted agent forgets its persisted handover sides. */
    FORGET_SIDES,
    /** A server that lost ranges while DOWN never sends their messages to the owner. */
    NO_LATE,
    /** The agent as it was: a transfer leaves before the persist that records the seal. */
    TRANSFER_BEFORE_PERSIST,
    /**
     * The agent's late path as it was: leftovers found only through the participant's Orphaned
     * action (lost in a crash) and the queue backlog, and sent to the range's owner even when
     * that is this server (whose store then drops what it has just queued).
     */
    LATE_AS_BEFORE,
    /** The late sender deletes every copy of an answered batch, the ones not taken too. */
    LATE_DROPS_NOT_TAKEN,
    /** A queue server serves without a lease: a paused owner carries on under its old map. */
    NO_LEASE,
    /** The leader forces a DOWN server's ranges without waiting for its lease to run out. */
    FORCE_DURING_LEASE,
    /** A queue server stores a producer's resend again (no idempotent publish). */
    NO_DEDUPE,
    /** Transfers carry no producer sequences: a resend that follows its range is stored twice. */
    NO_SEQUENCES_IN_TRANSFERS,
    /**
     * The reference store's late path as built: a late copy is skipped when the receiver's
     * sequences say it stored exactly that message last of its key, even when it has since
     * handed the message on in a transfer (a target's HELD given back) — it is then lost.
     */
    LATE_SKIP_AS_BUILT,
    /**
     * A chunked transfer taken as stored whole once its first chunk is: the source reports
     * drained, and discards its hold buffer, with the rest of it never sent.
     */
    TRANSFER_DONE_AT_FIRST_CHUNK,
    /**
     * A server stores a resend that names another server ({@code maybe_stored_at}) unflagged:
     * a range forced away from the server that stored the first attempt, or a resend the target
     * held handed back after an abort, is then delivered twice without a flag.
     */
    NO_MAYBE_DUPLICATE_FLAG
  }

  /** Run parameters. */
  record Config(int servers, int ranges, int producers, int messagesPerProducer, int keys,
      int window, double abortChance, double duplicateReportChance, int maxDelay,
      double lossChance, Crashes crashes, Mutation mutation, double streamBreakChance,
      Faults faults) {
    /** Two servers, two ranges, no losses, no crashes. */
    static Config of(int producers, int messagesPerProducer, int keys, int window,
        double abortChance, double duplicateReportChance, int maxDelay) {
      return new Config(2, 2, producers, messagesPerProducer, keys, window, abortChance,
          duplicateReportChance, maxDelay, 0, Crashes.NONE, Mutation.NONE, 0, Faults.NONE);
    }

    Config lossy(double chance) {
      return new Config(servers, ranges, producers, messagesPerProducer, keys, window,
          abortChance, duplicateReportChance, maxDelay, chance, crashes, mutation,
          streamBreakChance, faults);
    }

    Config crashing(int serverCount, int rangeCount, Crashes c) {
      return new Config(serverCount, rangeCount, producers, messagesPerProducer, keys, window,
          abortChance, duplicateReportChance, maxDelay, lossChance, c, mutation,
          streamBreakChance, faults);
    }

    Config with(Mutation m) {
      return new Config(servers, ranges, producers, messagesPerProducer, keys, window,
          abortChance, duplicateReportChance, maxDelay, lossChance, crashes, m,
          streamBreakChance, faults);
    }

    /**
     * Publish streams break now and then with no crash, each open stream with this chance per
     * leader tick: the server sees it end and drops the session's refusal fences, the router
     * takes back what it had no answer for.
     */
    Config breakingStreams(double chance) {
      return new Config(servers, ranges, producers, messagesPerProducer, keys, window,
          abortChance, duplicateReportChance, maxDelay, lossChance, crashes, mutation, chance,
          faults);
    }

    /** Faults of leases, liveness and leadership, on top of the rest. */
    Config faulty(Faults f) {
      return new Config(servers, ranges, producers, messagesPerProducer, keys, window,
          abortChance, duplicateReportChance, maxDelay, lossChance, crashes, mutation,
          streamBreakChance, f);
    }

    /** Whether a server may be declared DOWN in this run (and its ranges forced away). */
    boolean downPossible() {
      return crashes.on() || faults.on();
    }
  }

  /** The producer sequences a transfer carries; and the checker's never-forgotten shadow. */
  record SentSequences(List<ProducerSequences.Entry<String>> entries,
      List<ProducerSequences.Entry<String>> unforgotten) {}

  /** A published message. */
  record Msg(int producer, long seq, String key, long hash, boolean maybeDuplicate) {
    Msg(int producer, long seq, String key, long hash) {
      this(producer, seq, key, hash, false);
    }

    String id() {
      return producer + ":" + seq;
    }

    /**
     * The copy a server stores of a resend another server may have stored too (its
     * {@code maybe_stored_at} names one): delivered flagged redelivered, wherever it goes.
     */
    Msg flagged() {
      return new Msg(producer, seq, key, hash, true);
    }
  }

  /** What the simulation observed. */
  record Result(long seed, long events, long delivered, long handoversCompleted,
      long handoversAborted, long refusals, long versions, long crashes, long downDeclared,
      long forced, long lateDelivered, long duplicates, long pauses, long outages,
      long operatorDowns, long leaderChanges, long overloaded, long dedupedResends,
      long flaggedDuplicates,
      long unmarkedLeftovers, long splits, long merges,
      Set<String> coverage, HistoryChecker.Verdict verdict) {}

  /** One stored copy: in the queue ({@code buffer} null, {@code ref} its entry) or a buffer. */
  record Copy(Msg msg, long range, long he, Buffer buffer, Entry ref) {}

  /** The answer to a sender's last late batch taken: its run, number, and what was not taken. */
  record LateReceipt(long session, long batch, Set<Integer> notTaken) {}

  /** A late batch sent and not yet answered: to one owner, with the copies of each message. */
  record LateBatch(String to, long session, long batch, long tag, List<Msg> msgs,
      List<List<Copy>> copies, AgentCore.LateBatch<Copy> core) {}

  /** The order a release lists a handover's buffers in (QueueStore). */
  private static final List<Buffer> RELEASE_ORDER = List.of(Buffer.HOLD, Buffer.PREFIX,
      Buffer.RETURNED, Buffer.HELD, Buffer.POST_ABORT);

  /** A queued message; {@code late} once it came to this server through a LATE transfer. */
  record Entry(Msg msg, boolean late, boolean returned) {
    Entry(Msg msg, boolean late) {
      this(msg, late, false);
    }
  }

  private static final class Event {
    /** When it happens; a paused server's events wait, in their order, until it resumes. */
    long time;
    final long order;
    final Runnable action;
    final Link link;
    final List<Msg> payload;
    /** The server that takes this step (a timer of it, or an arrival at it), or null. */
    final Server server;
    boolean cancelled;

    Event(long time, long order, Runnable action, Link link, List<Msg> payload, Server server) {
      this.time = time;
      this.order = order;
      this.action = action;
      this.link = link;
      this.payload = payload;
      this.server = server;
    }
  }

  /** Thrown at a failpoint: the server whose step it is crashes there. */
  private static final class Crash extends RuntimeException {
    final Server server;
    final String point;

    Crash(Server server, String point) {
      super(null, null, false, false);
      this.server = server;
      this.point = point;
    }
  }

  static final long MID = Long.MIN_VALUE;

  /**
   * Messages a chunk of a handover's transfer carries (transfer.chunkMessages): small, so most
   * transfers take several chunks and crashes fall between them.
   */
  static final int CHUNK_MESSAGES = 2;

  /** Messages a late batch carries at most (lateBatch.messages). */
  static final int LATE_BATCH_MESSAGES = 1000;

  /** The producer session under which late messages are placed (as in the agent). */
  private static final String LATE_PRODUCER = "\u0000late";

  private final long seed;
  private final Config config;
  private final Random rnd;
  private final PriorityQueue<Event> events = new PriorityQueue<>(
      (a, b) -> a.time != b.time ? Long.compare(a.time, b.time) : Long.compare(a.order, b.order));
  private long now;
  private long order;
  private long eventCount;
  private final long d;

  // ---- the leader
  private ClusterImage image;
  private final List<Subscriber> subscribers = new ArrayList<>();
  /** When this leader first saw each handover (range, handover epoch) in its current phase. */
  private final Map<String, Long> phaseSince = new HashMap<>();
  /** The real liveness and lease decisions of the leader's driver, on virtual time. */
  private final Liveness liveness;
  private long leaderChanges;
  private long splits;
  private long merges;
  private long operatorDowns;
  private long pauses;
  private long outages;
  private long overloaded;
  private long dedupedResends;
  /**
   * Second deliveries flagged redelivered, each of a resend stored by a server that could not
   * have the first server's entries (forced range, handback, forgotten entry).
   */
  private long flaggedDuplicates;
  /** Second deliveries that are unmarked leftovers (the known gap of {@link #deliver}). */
  private long unmarkedLeftoverDuplicates;
  private long unmarkedLeftovers;
  private boolean movesAllowed = true;
  /** Crashes at random moments happen while this holds; failpoints while either does. */
  private boolean chaosAllowed;
  private boolean failpointsAllowed;
  private long completed;
  private long aborted;
  private long refusals;
  private long downDeclared;
  private long forced;
  /** Aborts ended at the ABORT_SWITCH deadline (ExpireAbort). */
  private long expired;
  /** The handovers (range/handover epoch) ended so. */
  private final Set<String> expiredHandovers = new HashSet<>();

  // ---- servers, producers, history
  private final Map<String, Server> servers = new LinkedHashMap<>();
  private final List<Producer> producers = new ArrayList<>();
  private final Map<String, Msg> acked = new HashMap<>();
  /** Every send, acknowledgement and delivery, for the real history checker at the end. */
  private final History history = new History();
  private final Map<String, Integer> deliveredCount = new HashMap<>();
  private final Map<String, Long> lastDeliveredSeq = new HashMap<>();
  /**
   * Messages held by a server when a forced handover moved their range away from it (the owner,
   * or the target of a handover the range was forced past): no order promise.
   */
  private final Set<String> lateIds = new HashSet<>();
  /**
   * Messages held by any server in a range when it was forced. A server that was down when its
   * range was forced cannot tell, from the map it finds on restart, whether the range was forced
   * to it or past it, and sends what it holds on as late.
   */
  private final Set<String> heldWhenForced = new HashSet<>();
  /** Messages stored by any server in a range before it was forced. */
  private final Set<String> storedBeforeForce = new HashSet<>();
  private final Map<String, Long> hashOf = new HashMap<>();
  /**
   * Resends a transfer's merge left in a buffer only because the sender had forgotten, as
   * settled, the entry that shows it stored the message.
   */
  private final Set<String> keptForForgottenEntry = new HashSet<>();
  /** Messages handed back to a source whose own sequences already showed them stored. */
  private final Set<String> returnedKnownStored = new HashSet<>();
  private final List<ForcedAway> forcedAway = new ArrayList<>();
  private final List<String> violations = new ArrayList<>();
  private final Set<String> coverage = new TreeSet<>();
  private long crashCount;
  private long streamBreaks;
  private long lateDelivered;
  private long duplicates;

  /** A server a range was forced away from at {@code version}: what it holds there is late. */
  private record ForcedAway(Server server, long start, long end, long version, boolean late) {}

  /** Only the history checker judges the run: see {@link #judgedByHistoryOnly}. */
  private boolean historyOnly;

  HandoverSimulation(long seed, Config config) {
    this.seed = seed;
    this.config = config;
    this.rnd = new Random(seed);
    this.d = config.maxDelay();
    this.liveness = new Liveness(suspectAfter(), downAfter(),
        config.mutation() == Mutation.FORCE_DURING_LEASE ? -1 : lease() + leaseMargin());
  }

  /**
   * The run is judged by the real history checker alone, on what producers and consumers saw:
   * the checks that use the simulation's knowledge (owners, forced ranges, known gaps) are off
   * and the run ends with the verdict, whatever it is. Shows what a deployment's checker sees.
   */
  HandoverSimulation judgedByHistoryOnly() {
    historyOnly = true;
    return this;
  }

  // ================================================================== infrastructure

  private void at(long delay, Runnable r) {
    events.add(new Event(now + delay, order++, r, null, null, null));
  }

  /** A timer of one incarnation of a server: it dies with the incarnation. */
  private void atFor(Server s, long delay, Runnable r) {
    int inc = s.incarnation;
    events.add(new Event(now + delay, order++, () -> {
      if (s.alive && s.incarnation == inc) {
        r.run();
      }
    }, null, null, s));
  }

  private long delay() {
    return 1 + rnd.nextInt(config.maxDelay());
  }

  /** A FIFO link: each message arrives after a random delay, never before the previous one. */
  private final class Link {
    final String from;
    final String to;
    private long lastArrival;
    /** Links differ in speed, so one server can run well behind another. */
    private final int slowness;
    final ArrayDeque<Event> pending = new ArrayDeque<>();

    Link(String from, String to, int slowness) {
      this.from = from;
      this.to = to;
      this.slowness = slowness;
    }

    /** Sends to a server (dropped if it crashed since) or to the leader or a producer. */
    void send(Runnable onArrival) {
      send(onArrival, null);
    }

    void send(Runnable onArrival, List<Msg> payload) {
      Server target = servers.get(to);
      if (target == null) {
        send(onArrival, payload, 0, null, null);
        return;
      }
      int inc = target.incarnation;
      send(onArrival, payload, 0, () -> target.alive && target.incarnation == inc, null);
    }

    void send(Runnable onArrival, List<Msg> payload, long notBefore, BooleanSupplier valid,
        Runnable onDrop) {
      long arrival = Math.max(Math.max(lastArrival, now + (long) slowness * delay()), notBefore);
      lastArrival = arrival;
      Runnable action = valid == null ? onArrival : () -> {
        if (valid.getAsBoolean()) {
          onArrival.run();
        } else if (onDrop != null) {
          onDrop.run();
        }
      };
      Event e = new Event(arrival, order++, action, this, payload, servers.get(to));
      pending.add(e);
      events.add(e);
    }
  }

  private final Map<String, Link> links = new LinkedHashMap<>();

  private Link link(String from, String to) {
    return links.computeIfAbsent(from + "->" + to, k -> {
      int slowness = 1 + rnd.nextInt(4);
      if (from.equals("leader") && to.equals("p0")) {
        slowness *= config.crashes().staleRouter(); // a router that sees map versions late
      }
      return new Link(from, to, slowness);
    });
  }

  private final boolean trace = Boolean.getBoolean("plb.sim.trace");

  private void trace(String what) {
    if (trace) {
      System.out.println("t=" + now + " " + what);
    }
  }

  private void violation(String what) {
    violations.add("t=" + now + ": " + what);
  }

  private boolean lost() {
    return config.lossChance() > 0 && rnd.nextDouble() < config.lossChance();
  }

  // ================================================================== the leader

  /** Something that applies map versions in order. */
  private interface Subscriber {
    String name();

    void onVersion(ClusterImage image);
  }

  private MapDelta apply(Command c) {
    MapDelta delta;
    try {
      delta = CommandProcessor.process(image, c, image.version() + 1);
    } catch (PlbException e) {
      return null;
    }
    if (delta.isEmpty()) {
      return delta;
    }
    ClusterImage before = image;
    ClusterImage next = image.apply(delta);
    next.checkInvariants(); // one owner per key: coverage without gap or overlap
    if (next.version() <= image.version()) {
      violation("map version did not grow");
    }
    image = next;
    trace("leader v" + next.version() + " " + delta.cause() + " " + delta.upsertedRanges()
        + delta.upsertedServers());
    if (c instanceof Command.ExpireAbort x) {
      // What the handover's buffers hold, on either side, is handed on late from now on: the
      // source takes its own back, the target sends its part to the owner (docs/design.md §5,
      // "The ABORT_SWITCH deadline").
      RangeEntry r = before.range(before.indexOfStart(x.rangeStart()));
      expiredHandovers.add(x.rangeStart() + "/" + x.handoverEpoch());
      for (Server s : servers.values()) {
        for (Msg m : s.disk.read(r.start(), x.handoverEpoch(), List.of(Buffer.values()))) {
          heldWhenForced.add(m.id());
          if (lateIds.add(m.id())) {
            trace("late: " + m.id() + " on " + s.id + " (abort expired)");
          }
        }
      }
    }
    if (c instanceof Command.ForceHandover f) {
      RangeEntry r = before.range(before.indexOfStart(f.rangeStart()));
      forced++;
      for (Server s : servers.values()) {
        // Any copy in the range may be delivered again: the forced owner cannot know what the
        // DOWN server delivered, or which acknowledgements of transfers it lost.
        s.disk.forEach(m -> {
          if (r.contains(m.hash())) {
            heldWhenForced.add(m.id());
          }
        });
      }
      for (Server s : servers.values()) {
        // Sequences of what a server stored in the range do not reach the new owner.
        s.everStored.forEach(id -> {
          if (r.contains(hashOf.get(id))) {
            storedBeforeForce.add(id);
          }
        });
      }
      forcedAway.add(
          new ForcedAway(servers.get(r.owner()), r.start(), r.end(), next.version(), true));
      if (r.handover() != null && !r.handover().target().equals(f.target())) {
        // The handover's target held acknowledged messages the new owner never saw.
        forcedAway.add(new ForcedAway(servers.get(r.handover().target()), r.start(), r.end(),
            next.version(), true));
      }
      // The new owner, until it learns, may take messages it will later treat as late.
      forcedAway.add(
          new ForcedAway(servers.get(f.target()), r.start(), r.end(), next.version(), false));
      markLate();
    }
    for (RangeEntry r : next.ranges()) {
      if (r.handover() != null) {
        phaseSince.putIfAbsent(phaseKey(r), now);
      }
    }
    for (Subscriber s : subscribers) {
      ClusterImage snapshot = next;
      link("leader", s.name()).send(() -> s.onVersion(snapshot));
    }
    return delta;
  }

  private static String phaseKey(RangeEntry r) {
    return r.start() + "/" + (r.epoch() + 1) + "/" + r.handover().phase();
  }

  /** A report from a queue server reaching the leader (maybe twice, maybe not at all). */
  private void report(String from, Command c) {
    if (lost()) {
      return; // the agent sends it again (Participant.resend)
    }
    int copies = rnd.nextDouble() < config.duplicateReportChance() ? 2 : 1;
    for (int i = 0; i < copies; i++) {
      link(from, "leader").send(() -> onReport(from, c));
    }
  }

  /** The leader's rule for reports ({@link ReportRule}, as HandoverDriver.report asks it). */
  private void onReport(String from, Command c) {
    long start;
    if (c instanceof Command.HandoverReady x) {
      start = x.rangeStart();
    } else if (c instanceof Command.HandoverDrained x) {
      start = x.rangeStart();
    } else if (c instanceof Command.FinishAbort x) {
      start = x.rangeStart();
    } else {
      throw new IllegalStateException("not a report: " + c);
    }
    ReportRule.Check check;
    try {
      check = ReportRule.check(image, c, start, from);
    } catch (PlbException e) {
      return;
    }
    if (check.verdict() == ReportRule.Verdict.IGNORED) {
      return; // late or duplicated: "ignored"
    }
    if (check.verdict() == ReportRule.Verdict.NOT_THE_REPORTERS_STEP) {
      violation(from + " reported " + c.describe() + ", which is " + check.expected()
          + "'s step");
      return;
    }
    MapDelta applied = apply(c);
    if (applied != null && !applied.isEmpty() && c instanceof Command.HandoverDrained) {
      completed++;
    }
  }

  private boolean isActive(String id) {
    QueueServerInfo s = image.server(id);
    return s != null && s.state() == ServerState.ACTIVE;
  }

  private void leaderTick() {
    if (movesAllowed) {
      for (RangeEntry r : image.ranges()) {
        if (r.handover() == null && rnd.nextInt(4) == 0) {
          List<String> candidates = new ArrayList<>();
          for (QueueServerInfo s : image.servers().values()) {
            if (s.state() == ServerState.ACTIVE && !s.id().equals(r.owner())) {
              candidates.add(s.id());
            }
          }
          if (!candidates.isEmpty()) {
            String target = candidates.get(rnd.nextInt(candidates.size()));
            apply(new Command.StartHandover(r.start(), r.end(), r.epoch(), target, 2, 4));
          }
        }
      }
    }
    for (RangeEntry r : image.ranges()) {
      if (r.handover() == null) {
        continue;
      }
      HandoverPhase phase = r.handover().phase();
      long he = r.epoch() + 1;
      Long since = phaseSince.get(phaseKey(r));
      boolean stalled = since != null && now - since > 40L * d;
      boolean chosen = rnd.nextDouble() < config.abortChance();
      if (phase == HandoverPhase.ABORT_SWITCH && since != null
          && now - since > abortSwitchTimeout()) {
        // As HandoverDriver: an abort not reversed in time is ended, the owner staying.
        MapDelta delta = apply(new Command.ExpireAbort(r.start(), he, "abortSwitchTimeout"));
        if (delta != null && !delta.isEmpty()) {
          expired++;
          coverage.add("abort-expired");
        }
      }
      if (phase != HandoverPhase.ABORT_SWITCH && (stalled || chosen)) {
        MapDelta delta =
            apply(new Command.AbortHandover(r.start(), he, stalled ? "timeout" : "test"));
        if (delta != null && !delta.isEmpty()) {
          aborted++;
        }
      }
    }
    // As HandoverDriver.reconcile: a phase is timed from when this leader first saw it.
    Set<String> present = new HashSet<>();
    for (RangeEntry r : image.ranges()) {
      if (r.handover() != null) {
        present.add(phaseKey(r));
        phaseSince.putIfAbsent(phaseKey(r), now);
      }
    }
    phaseSince.keySet().retainAll(present);
    if (movesAllowed && config.faults().reshapeChance() > 0) {
      reshape();
    }
    if (config.faults().leaderChangeChance() > 0 && (movesAllowed || chaosAllowed)
        && rnd.nextDouble() < config.faults().leaderChangeChance()) {
      changeLeader();
    }
    checkLiveness();
    if (config.crashes().on()) {
      chaos();
    }
    leaseFaults();
    breakStreams();
    if (!quiet()) {
      at(5L * d, this::leaderTick);
    }
  }

  /**
   * handover.abortSwitchTimeout: an ABORT_SWITCH older than this is ended with ExpireAbort. At
   * least the drain timeout, as the node's settings require.
   */
  private long abortSwitchTimeout() {
    return 80L * d;
  }

  private long suspectAfter() {
    return 20L * d;
  }

  private long downAfter() {
    return 60L * d;
  }

  /** The owner lease a grant gives: counted by the server from its heartbeat's send time. */
  private long lease() {
    return 30L * d;
  }

  /**
   * The leader's margin beyond the lease before it forces a DOWN server's ranges. The simulation
   * has one clock, so any margin covers drift; a small one keeps the bound tight.
   */
  private long leaseMargin() {
    return 2;
  }

  /**
   * HandoverDriver.heartbeat: notes the server heard and grants an ACTIVE (or DRAINING) server a
   * lease, naming the map version; a DOWN server is heard but granted nothing.
   */
  private void onHeartbeat(Server s, long sentAt) {
    liveness.heard(s.id, now);
    if (Liveness.noLease(image, s.id, false) != null) {
      return; // its DOWN and ACTIVE proposals are applied at once here: none is in flight
    }
    liveness.granted(s.id, now);
    long version = image.version();
    if (!heartbeatLost(s)) {
      link("leader*", s.id).send(() -> s.onGrant(sentAt, version));
    }
  }

  /** A heartbeat or a grant lost: at random, or all of them while the server is cut off. */
  private boolean heartbeatLost(Server s) {
    return now < s.outageUntil || config.faults().heartbeatLoss() > 0
        && rnd.nextDouble() < config.faults().heartbeatLoss();
  }

  /**
   * HandoverDriver.checkLiveness: the real decisions ({@link Liveness}), applied in order (a
   * force of a server made ACTIVE in the same round is refused when applied, as in the driver);
   * then, at random, an operator declares a suspect server DOWN while its lease may still run.
   */
  private void checkLiveness() {
    for (RangeEntry r : image.ranges()) {
      QueueServerInfo owner = r.isAssigned() ? image.server(r.owner()) : null;
      if (owner != null && owner.state() == ServerState.DOWN && liveness.leaseMayRun(owner.id(), now)) {
        coverage.add("force-waits-for-lease");
      }
    }
    for (Liveness.Proposal p : liveness.check(image, now).proposals()) {
      trace("leader: " + p.why());
      MapDelta delta = apply(p.command());
      if (delta != null && !delta.isEmpty() && p.command() instanceof Command.UpdateServer u
          && u.state() == ServerState.DOWN) {
        downDeclared++;
      }
    }
    if (config.faults().operatorDownChance() == 0) {
      return;
    }
    for (QueueServerInfo s : new ArrayList<>(image.servers().values())) {
      if (s.state() != ServerState.DOWN && liveness.isSuspect(s.id())
          && rnd.nextDouble() < config.faults().operatorDownChance()) {
        trace("operator: suspect " + s.id() + " is DOWN");
        MapDelta delta = apply(new Command.UpdateServer(s.id(), null, null, ServerState.DOWN));
        if (delta != null && !delta.isEmpty()) {
          downDeclared++;
          operatorDowns++;
          coverage.add("operator-down");
        }
      }
    }
  }

  /**
   * Splits a range at a random point and merges two adjacent ranges of one owner, each at
   * random, as the balancer does under traffic; never a range in a handover (refused anyway).
   */
  private void reshape() {
    if (rnd.nextDouble() < config.faults().reshapeChance() && image.rangeCount() < 8) {
      RangeEntry r = image.range(rnd.nextInt(image.rangeCount()));
      long size = r.end() - r.start(); // unsigned; 0 for the whole ring
      long at = r.start() + Long.remainderUnsigned(rnd.nextLong(),
          size == 0 ? Long.MAX_VALUE : Math.max(1, size - 1)) + 1;
      if (r.handover() == null && r.contains(at) && at != r.start()
          && apply(new Command.SplitRange(r.start(), at)) != null) {
        splits++;
        coverage.add("split");
      }
    }
    if (rnd.nextDouble() < config.faults().reshapeChance() && image.rangeCount() > 1) {
      int i = rnd.nextInt(image.rangeCount() - 1);
      RangeEntry a = image.range(i);
      RangeEntry b = image.range(i + 1);
      if (a.handover() == null && b.handover() == null && a.owner().equals(b.owner())
          && apply(new Command.MergeRanges(a.start(), b.start())) != null) {
        merges++;
        coverage.add("merge");
      }
    }
  }

  /**
   * Another PLB node takes over as leader. It rebuilds the driver's state from the map: what
   * was on its way to the old leader (heartbeats, reports) is lost, and its liveness clocks,
   * lease bound and phase timers start now.
   */
  private void changeLeader() {
    leaderChanges++;
    coverage.add("leader-change");
    trace("LEADER CHANGE");
    for (Link l : links.values()) {
      if (l.to.equals("leader")) {
        for (Event e : l.pending) {
          e.cancelled = true;
        }
        l.pending.clear();
      }
    }
    liveness.takeOver(now);
    phaseSince.clear();
  }

  /** Pauses and heartbeat outages at random, while chaos is allowed. */
  private void leaseFaults() {
    Faults f = config.faults();
    if (!movesAllowed && !chaosAllowed) {
      return;
    }
    for (Server s : servers.values()) {
      if (!s.alive || s.pausedUntil > now || s.faults >= f.perServer()) {
        continue;
      }
      if (f.pauseChance() > 0 && rnd.nextDouble() < f.pauseChance()) {
        s.faults++;
        pauses++;
        int kind = rnd.nextInt(3);
        long length = switch (kind) {
          case 0 -> lease() / 2 + rnd.nextInt((int) lease()); // around the lease
          case 1 -> lease() + rnd.nextInt((int) (downAfter() - lease())); // past it, not DOWN
          default -> downAfter() + rnd.nextInt(100 * (int) d); // DOWN, its ranges forced away
        };
        s.pausedUntil = now + length;
        coverage.add("pause-" + kind);
        trace(s.id + " PAUSED until " + s.pausedUntil);
      } else if (f.outageChance() > 0 && rnd.nextDouble() < f.outageChance()) {
        s.faults++;
        outages++;
        s.outageUntil = now + lease() + rnd.nextInt(100 * (int) d);
        coverage.add("heartbeat-outage");
        trace(s.id + " cut off from the leader until " + s.outageUntil);
      }
    }
  }

  // ================================================================== crashes

  private void chaos() {
    if (!chaosAllowed) {
      return;
    }
    for (Server s : servers.values()) {
      if (s.alive && s.crashes < config.crashes().perServer()
          && rnd.nextDouble() < config.crashes().chancePerTick()) {
        crash(s, "tick");
      }
    }
  }

  /**
   * Whether a failpoint fires: the server crashes in the middle of its step. Points passed
   * rarely (late transfers, about one a run) weigh more, so that they are reached at all.
   */
  private boolean failpointFires(Server s, String point, int weight) {
    String focus = config.crashes().focus();
    return failpointsAllowed && s.crashes < config.crashes().perServer()
        && (focus == null || focus.equals(point))
        && config.crashes().failpointChance() > 0
        && rnd.nextDouble() < weight * config.crashes().failpointChance();
  }

  /**
   * Breaks open publish streams at random (no crash), while moves go on: nothing more of the
   * stream reaches the server, the router notices a little later and takes back every unsettled
   * send, and the server — with nothing of the stream left to handle — drops the session's
   * refusal fences, as the agent does when a session's last stream is released. A stream with a
   * request still waiting for a map version (C2) is being handled, so it is not released then.
   */
  private void breakStreams() {
    if (!movesAllowed || config.streamBreakChance() == 0) {
      return;
    }
    for (Producer p : producers) {
      for (Server s : servers.values()) {
        Conn c = p.conns.get(s.id);
        if (c == null || !c.bound || c.broken || c.failed || !s.alive
            || c.incarnation != s.incarnation) {
          continue;
        }
        if (!s.blocked.getOrDefault("pub:" + p.index, new ArrayDeque<>()).isEmpty()
            || rnd.nextDouble() >= config.streamBreakChance()) {
          continue;
        }
        streamBreaks++;
        coverage.add("stream-break");
        s.core.dropFences("p" + p.index);
        trace(p.name() + "'s stream to " + s.id + " breaks");
        c.broken = true;
        at(1 + rnd.nextInt(3 * (int) d), () -> p.linkFailed(c));
      }
    }
  }

  private void crash(Server s, String point) {
    trace(s.id + " CRASHES at " + point);
    crashCount++;
    coverage.add("crash@" + point);
    for (RangeEntry r : image.ranges()) {
      if (r.handover() != null) {
        if (r.owner().equals(s.id)) {
          coverage.add("source-crash-in-" + r.handover().phase());
        } else if (r.handover().target().equals(s.id)) {
          coverage.add("target-crash-in-" + r.handover().phase());
        }
      }
    }
    s.alive = false;
    s.incarnation++;
    s.crashes++;
    s.forget();
    for (Link l : links.values()) {
      if (l.to.equals(s.id)) {
        for (Event e : l.pending) {
          cancel(e);
        }
        l.pending.clear();
      } else if (l.from.equals(s.id) && !l.pending.isEmpty()) {
        // What was already on the wire may still arrive: a prefix of the link.
        int keep = rnd.nextInt(l.pending.size() + 1);
        int i = 0;
        for (Iterator<Event> it = l.pending.iterator(); it.hasNext(); i++) {
          Event e = it.next();
          if (i >= keep) {
            cancel(e);
            it.remove();
          }
        }
      }
    }
    for (Producer p : producers) {
      Conn c = p.conns.get(s.id);
      if (c != null && !c.failed) {
        at(1 + rnd.nextInt(3 * (int) d), () -> p.linkFailed(c));
      }
    }
    long down = rnd.nextDouble() >= config.crashes().longChance()
        ? d + rnd.nextInt(30 * (int) d) // back before anyone declares it DOWN
        : 80L * d + rnd.nextInt(120 * (int) d); // declared DOWN, its ranges forced away
    at(down, () -> restart(s));
  }

  private void cancel(Event e) {
    e.cancelled = true;
  }

  private void restart(Server s) {
    s.alive = true;
    s.incarnation++;
    s.boot();
    trace(s.id + " RESTARTS with sides " + s.core.sides());
    // A new watch: a full map at the current version, after a reconnect that may be slow.
    long watchDelay = rnd.nextInt(4) == 0 ? rnd.nextInt(100 * (int) d) : rnd.nextInt(10 * (int) d);
    int inc = s.incarnation;
    ClusterImage snapshot = image;
    link("leader", s.id).send(() -> s.onVersion(snapshot), null, now + watchDelay,
        () -> s.alive && s.incarnation == inc, null);
    s.startTimers();
  }

  /**
   * Marks late what a server a range was forced away from holds of it, until it has learned of
   * it (and notes what the new owner takes meanwhile).
   */
  private void markLate() {
    for (Iterator<ForcedAway> it = forcedAway.iterator(); it.hasNext(); ) {
      ForcedAway f = it.next();
      f.server().disk.forEach(m -> {
        if (Ring.contains(f.start(), f.end(), m.hash())) {
          heldWhenForced.add(m.id());
          if (f.late() && lateIds.add(m.id())) {
            trace("late: " + m.id() + " on " + f.server().id);
          }
        }
      });
      if (f.server().alive && f.server().core.version() >= f.version()) {
        it.remove();
      }
    }
  }

  // ================================================================== queue servers

  /**
   * What survives a crash, as in the reference queue server's store: the deliverable queue, the
   * handover buffers, the agent's persisted state and the late receipts. Every method is one
   * durable write.
   */
  private static final class Disk {
    final Map<String, ArrayDeque<Entry>> queue = new LinkedHashMap<>();
    final Map<String, List<Msg>> buffers = new LinkedHashMap<>();
    List<Side> sides = List.of();
    /** Per sending server, the receipt of the last late batch taken from it. */
    final Map<String, LateReceipt> receipts = new HashMap<>();
    /**
     * The real producer sequences (idempotent publish), written in the same write as the
     * messages they concern, as the reference store does.
     */
    final ProducerSequences<String> sequences = new ProducerSequences<>();
    /** Every producer's one instance: epoch 1, idempotent; 0 (not idempotent) to compare. */
    final long epoch;

    Disk(long epoch) {
      this.epoch = epoch;
    }

    /**
     * The checker's shadow of {@link #sequences} (not the server's): the same entries, never
     * forgotten as settled. A merge that would take out a resend with these entries but does
     * not with the real ones shows a resend kept because an entry was forgotten too early.
     */
    final ProducerSequences<String> unforgotten = new ProducerSequences<>();

    void noteStored(String producer, String key, long hash, long seq, long now) {
      sequences.stored(producer, epoch, key, hash, seq, now, new ProducerSequences.Changes<>());
      unforgotten.stored(producer, epoch, key, hash, seq, now, new ProducerSequences.Changes<>());
    }

    /**
     * The producer settled everything below {@code settledBelow}: entries go, but those of keys
     * {@code keep} accepts (a range in a handover here, whose transfer must carry them).
     */
    void settled(String producer, long settledBelow, long now,
        java.util.function.LongPredicate keep) {
      sequences.settled(producer, epoch, settledBelow, now, keep,
          new ProducerSequences.Changes<>());
    }

    /**
     * Per (range, handover epoch, buffer) a transfer is received into: how far it is stored
     * (QueueStore's transfer progress), written with each chunk.
     */
    final Map<String, AgentCore.Progress> progress = new LinkedHashMap<>();

    /**
     * A received chunk appended to its buffer, with the transfer's progress, in one write; each
     * message noted in the sequences in the same write (QueueStore.storeChunk).
     */
    void storeChunk(long range, long he, Buffer into, List<Msg> messages,
        AgentCore.Progress p) {
      for (Msg m : messages) {
        append(range, he, into, m);
        noteStored("p" + m.producer(), m.key(), m.hash(), m.seq(), 0);
      }
      progress.put(name(range, he, into), p);
    }

    /** The handover is over here: the progress of transfers into it goes. */
    void forgetProgress(long range, long he) {
      for (Buffer b : Buffer.values()) {
        progress.remove(name(range, he, b));
      }
    }

    /** Marks the queued messages of {@code [start, end)} late (QueueStore.markQueuedLate). */
    void markQueuedLate(long start, long end) {
      for (ArrayDeque<Entry> q : queue.values()) {
        List<Entry> l = new ArrayList<>(q);
        q.clear();
        for (Entry e : l) {
          q.add(Ring.contains(start, end, e.msg().hash()) && !e.late()
              ? new Entry(e.msg(), true, e.returned()) : e);
        }
      }
    }

    /** The lowest hash at or above {@code from} (unsigned) of a queued message. */
    java.util.OptionalLong nextQueuedHash(long from) {
      boolean found = false;
      long best = 0;
      for (ArrayDeque<Entry> q : queue.values()) {
        for (Entry e : q) {
          long h = e.msg().hash();
          if (Long.compareUnsigned(h, from) >= 0
              && (!found || Long.compareUnsigned(h, best) < 0)) {
            best = h;
            found = true;
          }
        }
      }
      return found ? java.util.OptionalLong.of(best) : java.util.OptionalLong.empty();
    }

    /**
     * QueueStore.mergeSequences: the sender's entries of a transferred range, kept by the larger
     * seq, in one write with taking out of {@code buffer} (filled here with publishes meanwhile)
     * every message the arriving entries show the sender stored: a resend that came here first.
     */
    List<Msg> mergeSequences(SentSequences arrived, long range, long he, Buffer buffer,
        long now, Set<String> keptForForgotten) {
      ProducerSequences<String> theirs = new ProducerSequences<>();
      ProducerSequences<String> theirsUnforgotten = new ProducerSequences<>();
      for (ProducerSequences.Entry<String> e : arrived.entries()) {
        sequences.merge(e, now, new ProducerSequences.Changes<>());
        theirs.merge(e, now, new ProducerSequences.Changes<>());
      }
      for (ProducerSequences.Entry<String> e : arrived.unforgotten()) {
        unforgotten.merge(e, now, new ProducerSequences.Changes<>());
        theirsUnforgotten.merge(e, now, new ProducerSequences.Changes<>());
      }
      List<Msg> resends = new ArrayList<>();
      List<Msg> b = buffers.get(name(range, he, buffer));
      if (b != null) {
        for (Msg m : b) {
          String producer = "p" + m.producer();
          if (theirs.check(producer, epoch, m.key(), m.seq()) == Verdict.DUPLICATE) {
            resends.add(m);
          } else if (theirsUnforgotten.check(producer, epoch, m.key(), m.seq())
              == Verdict.DUPLICATE) {
            keptForForgotten.add(m.id());
          }
        }
        b.removeAll(resends);
        if (b.isEmpty()) {
          buffers.remove(name(range, he, buffer));
        }
      }
      return resends;
    }

    static String name(long range, long he, Buffer b) {
      return range + "/" + he + "/" + b;
    }

    void enqueue(Msg m, boolean late) {
      enqueue(new Entry(m, late));
    }

    void enqueue(Entry e) {
      queue.computeIfAbsent(e.msg().key(), k -> new ArrayDeque<>()).add(e);
    }

    void append(long range, long he, Buffer b, Msg m) {
      buffers.computeIfAbsent(name(range, he, b), k -> new ArrayList<>()).add(m);
    }

    long backlog(long start, long end) {
      long n = 0;
      for (ArrayDeque<Entry> q : queue.values()) {
        for (Entry e : q) {
          if (Ring.contains(start, end, e.msg().hash())) {
            n++;
          }
        }
      }
      return n;
    }

    List<Msg> read(long range, long he, List<Buffer> list) {
      List<Msg> out = new ArrayList<>();
      for (Buffer b : list) {
        out.addAll(buffers.getOrDefault(name(range, he, b), List.of()));
      }
      return out;
    }

    /** To the back of the queue, in this order; an id repeated among them is queued once. */
    void release(long range, long he, List<Buffer> list) {
      Set<String> ids = new HashSet<>();
      for (Buffer b : list) {
        List<Msg> l = buffers.remove(name(range, he, b));
        if (l != null) {
          for (Msg m : l) {
            if (ids.add(m.id())) {
              enqueue(new Entry(m, false, b == Buffer.RETURNED));
            }
          }
        }
      }
    }

    void discard(long range, long he, List<Buffer> list) {
      for (Buffer b : list) {
        buffers.remove(name(range, he, b));
      }
    }

    List<Msg> orphans(long start, long end, long he) {
      List<Msg> out = new ArrayList<>();
      for (ArrayDeque<Entry> q : queue.values()) {
        for (Entry e : q) {
          if (Ring.contains(start, end, e.msg().hash())) {
            out.add(e.msg());
          }
        }
      }
      out.addAll(read(start, he, List.of(Buffer.values())));
      return out;
    }

    void dropOrphans(long start, long end, long he, List<Msg> sent) {
      Set<String> ids = new HashSet<>();
      for (Msg m : sent) {
        ids.add(m.id());
      }
      for (Iterator<ArrayDeque<Entry>> it = queue.values().iterator(); it.hasNext(); ) {
        ArrayDeque<Entry> q = it.next();
        q.removeIf(e -> Ring.contains(start, end, e.msg().hash()) && ids.contains(e.msg().id()));
        if (q.isEmpty()) {
          it.remove();
        }
      }
      discard(start, he, List.of(Buffer.values()));
    }

    /** The handover epochs of {@code range} whose buffers hold messages, in increasing order. */
    List<Long> handovers(long range) {
      Set<Long> out = new TreeSet<>();
      String prefix = range + "/";
      for (Map.Entry<String, List<Msg>> e : buffers.entrySet()) {
        if (e.getKey().startsWith(prefix) && !e.getValue().isEmpty()) {
          String rest = e.getKey().substring(prefix.length());
          out.add(Long.parseLong(rest.substring(0, rest.indexOf('/'))));
        }
      }
      return new ArrayList<>(out);
    }

    /** Every buffer of the handover to the back of the queue, marked late, in one write. */
    void releaseLate(long range, long he) {
      Set<String> ids = new HashSet<>();
      for (Buffer b : Buffer.values()) {
        List<Msg> l = buffers.remove(name(range, he, b));
        if (l != null) {
          for (Msg m : l) {
            if (ids.add(m.id())) {
              enqueue(m, true);
            }
          }
        }
      }
    }

    /**
     * Late messages to the back of the queue, each noted in the sequences; none is skipped, so a
     * copy this server has too is delivered twice, marked late. MODEL AHEAD OF THE STORE:
     * QueueStore.queueLate skips a late copy when {@code storedExactly} says this server stored
     * it ({@link Mutation#LATE_SKIP_AS_BUILT}); that loses a message this server stored and then
     * handed on in a transfer. Skipping only a copy the store still holds loses messages too: the
     * held copy may itself be on its way out in an unanswered late batch, which the other side
     * then answers from its receipt (crash seed 2163).
     */
    void queueLate(List<Msg> messages, boolean skipAsBuilt) {
      for (Msg m : messages) {
        String producer = "p" + m.producer();
        if (skipAsBuilt && sequences.storedExactly(producer, epoch, m.key(), m.seq())) {
          continue;
        }
        enqueue(m, true);
        noteStored(producer, m.key(), m.hash(), m.seq(), 0);
      }
    }

    /**
     * The handovers whose buffers hold messages, ordered by range start (unsigned), then epoch
     * (QueueStore.bufferedHandovers).
     */
    List<long[]> bufferedHandovers() {
      TreeSet<long[]> out = new TreeSet<>((a, b) -> a[0] != b[0]
          ? Long.compareUnsigned(a[0], b[0]) : Long.compare(a[1], b[1]));
      for (Map.Entry<String, List<Msg>> e : buffers.entrySet()) {
        if (!e.getValue().isEmpty()) {
          String[] parts = e.getKey().split("/");
          out.add(new long[] {Long.parseLong(parts[0]), Long.parseLong(parts[1])});
        }
      }
      return new ArrayList<>(out);
    }

    /** The copies in a handover's buffers, in release order (QueueStore.buffered). */
    List<Copy> buffered(long range, long he) {
      List<Copy> out = new ArrayList<>();
      for (Buffer b : RELEASE_ORDER) {
        for (Msg m : buffers.getOrDefault(name(range, he, b), List.of())) {
          out.add(new Copy(m, range, he, b, null));
        }
      }
      return out;
    }

    /** The queued messages of {@code [start, end)}. */
    List<Copy> queued(long start, long end) {
      List<Copy> out = new ArrayList<>();
      for (ArrayDeque<Entry> q : queue.values()) {
        for (Entry e : q) {
          if (Ring.contains(start, end, e.msg().hash())) {
            out.add(new Copy(e.msg(), 0, 0, null, e));
          }
        }
      }
      return out;
    }

    /** Deletes these copies in one write; a copy gone already is skipped. */
    void drop(List<Copy> copies) {
      for (Copy c : copies) {
        remove(c);
      }
    }

    /** These buffer copies to the back of the queue, marked late, each id once, in one write. */
    void requeueLate(List<Copy> copies) {
      Set<String> ids = new HashSet<>();
      for (Copy c : copies) {
        if (c.buffer() != null && remove(c) && ids.add(c.msg().id())) {
          enqueue(c.msg(), true);
        }
      }
    }

    private boolean remove(Copy c) {
      if (c.buffer() == null) {
        ArrayDeque<Entry> q = queue.get(c.msg().key());
        if (q == null) {
          return false;
        }
        Entry found = null;
        for (Entry e : q) {
          if (e == c.ref()) {
            found = e;
            break;
          }
        }
        if (found == null) {
          // Marked late since it was read: the same copy, now a new entry.
          for (Entry e : q) {
            if (e.msg().equals(c.msg()) && e.late() && !c.ref().late()
                && e.returned() == c.ref().returned()) {
              found = e;
              break;
            }
          }
        }
        if (found == null || !q.removeFirstOccurrence(found)) {
          return false;
        }
        if (q.isEmpty()) {
          queue.remove(c.msg().key());
        }
        return true;
      }
      List<Msg> l = buffers.get(name(c.range(), c.he(), c.buffer()));
      if (l == null || !l.remove(c.msg())) {
        return false;
      }
      if (l.isEmpty()) {
        buffers.remove(name(c.range(), c.he(), c.buffer()));
      }
      return true;
    }

    /** Late messages to the back of the queue and the batch's receipt, in one write. */
    void queueLate(List<Msg> messages, boolean skipAsBuilt, String from, LateReceipt receipt) {
      queueLate(messages, skipAsBuilt);
      receipts.put(from, receipt);
    }

    boolean isEmpty() {
      if (!queue.isEmpty()) {
        return false;
      }
      for (List<Msg> b : buffers.values()) {
        if (!b.isEmpty()) {
          return false;
        }
      }
      return true;
    }

    void forEach(Consumer<Msg> c) {
      for (ArrayDeque<Entry> q : queue.values()) {
        for (Entry e : q) {
          c.accept(e.msg());
        }
      }
      for (List<Msg> b : buffers.values()) {
        b.forEach(c);
      }
    }
  }

  /**
   * A queue server: its durable {@link Disk} and, while it runs, the real agent core
   * ({@link AgentCore}, which {@code QueueServerAgent} drives too) with the I/O around it played
   * on virtual time: the core's effects carried out against the disk as it emits them, its
   * reports and transfers sent on links, chunk by chunk, and its late batches sent and answered.
   */
  private final class Server implements Subscriber {
    final String id;
    final Disk disk = new Disk(config.mutation() == Mutation.NO_DEDUPE ? 0 : 1);
    boolean alive = true;
    int incarnation;
    int crashes;
    /** Highest version seen by any incarnation, and by this one (checker). */
    long seenVersion = -1;
    long incarnationVersion = -1;
    /** Paused (as SIGSTOP) until then: it takes no step; its memory stays. */
    long pausedUntil;
    /** Cut off from the leader until then: heartbeats and grants are lost. */
    long outageUntil;
    /** Pauses and outages so far. */
    int faults;
    /** The checker's record (not the server's): every message a publish stored here. */
    final Set<String> everStored = new HashSet<>();
    /**
     * The checker's record: messages this server held queued, unmarked, when it had applied a
     * map in which their range was another server's. The agent marks them late then; what it
     * cannot mark is only what it held through a whole stretch of another's ownership it never
     * saw (it was down).
     */
    final Set<String> sawAsLeftover = new HashSet<>();

    // ---- memory: lost in a crash
    /** The agent's decisions, the real ones; its lease too. */
    AgentCore<Copy> core;
    /** Transfers on their way: the call of the chunk unanswered. */
    final Map<String, Long> transfersInFlight = new LinkedHashMap<>();
    final Map<Long, Long> orphansInFlight = new LinkedHashMap<>();
    /** The late sender (QueueServerAgent): its unanswered batch, its call. */
    LateBatch pendingLate;
    boolean lateBusy;
    boolean lateKicked;
    long lateCall;
    final Map<String, ArrayDeque<Runnable>> blocked = new LinkedHashMap<>();
    ClusterImage applied = ClusterImage.EMPTY;
    long attempts;
    long fenceDodge;

    Server(String id) {
      this.id = id;
      boot();
    }

    @Override
    public String name() {
      return id;
    }

    void forget() {
      core = null;
      transfersInFlight.clear();
      orphansInFlight.clear();
      pendingLate = null;
      lateBusy = false;
      lateKicked = false;
      lateCall++;
      blocked.clear();
      applied = ClusterImage.EMPTY;
      incarnationVersion = -1;
    }

    /** QueueServerAgent.start: restore the persisted sides (no fences: no link survived). */
    void boot() {
      forget();
      core = new AgentCore<>(id, new AgentCore.Settings(CHUNK_MESSAGES, 1L << 20,
          LATE_BATCH_MESSAGES, 1L << 20), new Host());
      if (config.mutation() != Mutation.FORGET_SIDES) {
        core.restore(disk.sides);
      }
    }

    void startTimers() {
      atFor(this, 1, this::consume);
      atFor(this, 10L * d, this::resendTick);
      atFor(this, 1, this::heartbeat);
    }

    /**
     * Whether this server may accept publishes, deliver and take late messages now: it holds a
     * lease, counted from its heartbeat's send time, granted at a version it has applied.
     */
    boolean holdsLease() {
      return config.mutation() == Mutation.NO_LEASE || core.holdsLease(now);
    }

    /** The leader's answer to a heartbeat sent at {@code sentAt}: a lease. */
    void onGrant(long sentAt, long version) {
      core.granted(sentAt, lease(), version);
    }

    void fail(String point) {
      fail(point, 1);
    }

    void fail(String point, int weight) {
      if (failpointFires(this, point, weight)) {
        throw new Crash(this, point);
      }
    }

    // ---------------------------------------------------------------- map versions

    @Override
    public void onVersion(ClusterImage next) {
      if (next.version() <= incarnationVersion || next.version() < seenVersion) {
        violation(id + " saw version " + next.version() + " after " + seenVersion);
      }
      incarnationVersion = next.version();
      seenVersion = Math.max(seenVersion, next.version());
      applied = next;
      if (config.mutation() == Mutation.FENCES_DROPPED_ON_NEW_VERSION) {
        for (int i = 0; i < config.producers(); i++) {
          core.dropFences("p" + i);
        }
      }
      trace(id + " sees v" + next.version());
      core.onMap(next);
      lateAsBefore();
      for (ArrayDeque<Entry> q : disk.queue.values()) {
        for (Entry e : q) {
          if (!e.late() && !next.rangeFor(e.msg().hash()).owner().equals(id)) {
            sawAsLeftover.add(e.msg().id());
          }
        }
      }
      // Messages and transfers waiting for this version (C2), each queue in link order.
      for (ArrayDeque<Runnable> q : new ArrayList<>(blocked.values())) {
        int n = q.size();
        for (int i = 0; i < n && !q.isEmpty(); i++) {
          q.pollFirst().run();
        }
      }
    }

    // ---------------------------------------------------------------- the core's effects

    /** The disk as the core reads it, and its effects carried out as QueueServerAgent does. */
    private final class Host implements AgentCore.Host<Copy> {
      @Override
      public long backlog(long start, long end) {
        return disk.backlog(start, end);
      }

      @Override
      public List<AgentCore.BufferedHandover> bufferedHandovers() {
        List<AgentCore.BufferedHandover> out = new ArrayList<>();
        for (long[] h : disk.bufferedHandovers()) {
          out.add(new AgentCore.BufferedHandover(h[0], h[1]));
        }
        return out;
      }

      @Override
      public java.util.OptionalLong nextQueuedHash(long from) {
        return disk.nextQueuedHash(from);
      }

      @Override
      public List<Copy> buffered(long rangeStart, long handoverEpoch, int max, long maxBytes) {
        List<Copy> all = disk.buffered(rangeStart, handoverEpoch);
        return all.size() <= max ? all : new ArrayList<>(all.subList(0, max));
      }

      @Override
      public List<Copy> queued(long start, long end, int max, long maxBytes) {
        List<Copy> all = disk.queued(start, end);
        return all.size() <= max ? all : new ArrayList<>(all.subList(0, max));
      }

      @Override
      public AgentCore.Progress transferProgress(long rangeStart, long handoverEpoch,
          Buffer into) {
        return disk.progress.getOrDefault(Disk.name(rangeStart, handoverEpoch, into),
            AgentCore.Progress.NONE);
      }

      @Override
      public long hashOf(Copy copy) {
        return copy.msg().hash();
      }

      @Override
      public String idOf(Copy copy) {
        return copy.msg().id();
      }

      @Override
      public long sizeOf(Copy copy) {
        return 1;
      }

      @Override
      public void apply(AgentCore.Effect<Copy> e) {
        trace(id + " " + e);
        if (e instanceof AgentCore.Effect.Save<Copy> x) {
          fail("before-persist");
          disk.sides = x.sides();
          fail("after-persist");
        } else if (e instanceof AgentCore.Effect.Report<Copy> x) {
          report(id, switch (x.kind()) {
            case READY -> new Command.HandoverReady(x.rangeStart(), x.handoverEpoch());
            case DRAINED -> new Command.HandoverDrained(x.rangeStart(), x.handoverEpoch());
            case REVERSED -> new Command.FinishAbort(x.rangeStart(), x.handoverEpoch());
          });
        } else if (e instanceof AgentCore.Effect.Transfer<Copy> x) {
          sendTransfer(x.transfer(), x.tag(), x.rangeEnd());
          if (config.mutation() == Mutation.C1_DRAINED_BEFORE_ACK
              && x.transfer().direction() == Direction.FORWARD) {
            report(id, new Command.HandoverDrained(x.transfer().rangeStart(),
                x.transfer().handoverEpoch()));
          }
        } else if (e instanceof AgentCore.Effect.Sealed<Copy> x) {
          if (config.mutation() == Mutation.TRANSFER_BEFORE_PERSIST) {
            // The agent as it was: the transfer left with the seal, before its persist.
            Side s = core.side(x.rangeStart());
            RangeEntry r = rangeAt(x.rangeStart());
            sendTransfer(new Action.Transfer(x.rangeStart(), x.handoverEpoch(),
                Direction.FORWARD, s.peer(), List.of(Buffer.HOLD)), applied.version(),
                r == null ? 0 : r.end());
          }
          fail("sealed"); // sealed and transferring, the seal not yet persisted
        } else {
          fail("between-actions");
          if (e instanceof AgentCore.Effect.Release<Copy> x) {
            trace(id + " release " + x.buffers() + " of " + x.rangeStart() + "/"
                + x.handoverEpoch() + " "
                + ids(disk.read(x.rangeStart(), x.handoverEpoch(), x.buffers())));
            disk.release(x.rangeStart(), x.handoverEpoch(), x.buffers());
          } else if (e instanceof AgentCore.Effect.Discard<Copy> x) {
            disk.discard(x.rangeStart(), x.handoverEpoch(), x.buffers());
          } else if (e instanceof AgentCore.Effect.ForgetTransfers<Copy> x) {
            disk.forgetProgress(x.rangeStart(), x.handoverEpoch());
          } else if (e instanceof AgentCore.Effect.Orphaned<Copy> x) {
            if (!config.downPossible() && expired == 0) {
              violation(id + " orphaned range " + x.rangeStart()
                  + " without any server going down or an abort expiring");
            }
            if (expiredHandovers.contains(x.rangeStart() + "/" + x.handoverEpoch())) {
              // Taken into the buffers until this server learnt the abort had expired: late.
              for (Msg m : disk.read(x.rangeStart(), x.handoverEpoch(),
                  List.of(Buffer.values()))) {
                heldWhenForced.add(m.id());
                lateIds.add(m.id());
              }
            }
            if (config.mutation() == Mutation.LATE_AS_BEFORE) {
              sendOrphans(x.rangeStart(), x.handoverEpoch());
            }
          } else if (lateAsBuilt()) {
            if (e instanceof AgentCore.Effect.RequeueLate<Copy> x) {
              trace(id + " takes back late " + ids(x.copies().stream().map(Copy::msg).toList())
                  + " of " + x.rangeStart() + "/" + x.handoverEpoch());
              disk.requeueLate(x.copies());
            } else if (e instanceof AgentCore.Effect.MarkQueuedLate<Copy> x) {
              disk.markQueuedLate(x.start(), x.end());
            } else if (e instanceof AgentCore.Effect.KickLate<Copy>) {
              kickLate();
            }
          }
        }
      }
    }

    /** Whether the late path runs as built (the mutations of it replace it). */
    boolean lateAsBuilt() {
      return config.mutation() != Mutation.NO_LATE
          && config.mutation() != Mutation.LATE_AS_BEFORE;
    }

    /** The late path as it was: a scan of the map's ranges for queued leftovers. */
    void lateAsBefore() {
      if (config.mutation() != Mutation.LATE_AS_BEFORE) {
        return;
      }
      for (RangeEntry r : applied.ranges()) {
        if (r.isAssigned() && !r.owner().equals(id) && core.side(r.start()) == null
            && disk.backlog(r.start(), r.end()) > 0) {
          sendOrphans(r.start(), 0);
        }
      }
    }

    RangeEntry rangeAt(long start) {
      int i = applied.indexOfStart(start);
      return i < 0 ? null : applied.range(i);
    }

    void resendTick() {
      core.onResendTimer();
      if (!quiet()) {
        atFor(this, 10L * d, this::resendTick);
      }
    }

    void heartbeat() {
      long sentAt = now;
      if (!heartbeatLost(this)) {
        link(id, "leader").send(() -> onHeartbeat(this, sentAt));
      }
      if (!quiet()) {
        atFor(this, 4L * d, this::heartbeat);
      }
    }

    // ---------------------------------------------------------------- transfers

    /**
     * QueueServerAgent.sendTransfer and streamTransfer: one chunk unanswered at a time, each read
     * from the disk just before it goes, from where the core says the transfer stands.
     */
    void sendTransfer(Action.Transfer t, long tag, long rangeEnd) {
      String key = AgentCore.transferKey(t);
      if (transfersInFlight.containsKey(key)) {
        return; // the same transfer is on its way
      }
      sendChunk(t, tag, rangeEnd, core.transferStart(t));
    }

    void sendChunk(Action.Transfer t, long tag, long rangeEnd, AgentCore.ChunkPosition at) {
      String key = AgentCore.transferKey(t);
      if (!core.owes(t)) {
        transfersInFlight.remove(key);
        return;
      }
      long call = ++attempts;
      transfersInFlight.put(key, call);
      List<Msg> all = disk.read(t.rangeStart(), t.handoverEpoch(), t.buffers());
      int from = (int) Math.min(all.size(), cursorOf(at.cursor()));
      int to = Math.min(all.size(), from + CHUNK_MESSAGES);
      List<Msg> payload = new ArrayList<>(all.subList(from, to));
      boolean last = to == all.size();
      SentSequences seqs = !last || config.mutation() == Mutation.NO_SEQUENCES_IN_TRANSFERS
          ? new SentSequences(List.of(), List.of())
          : new SentSequences(disk.sequences.entriesIn(t.rangeStart(), rangeEnd),
              disk.unforgotten.entriesIn(t.rangeStart(), rangeEnd));
      Server peer = servers.get(t.to());
      int myIncarnation = incarnation;
      byte[] cursor = cursorBytes(to);
      long chunk = at.chunk();
      trace(id + " transfer " + t + " chunk " + chunk + (last ? " (final) " : " ")
          + ids(payload));
      if (chunk > 1) {
        coverage.add("transfer-chunk-" + Math.min(chunk, 3));
      }
      if (!lost()) {
        link(id, t.to()).send(() -> peer.receiveChunk(this, myIncarnation, t, chunk, last,
            cursor, payload, seqs, tag, rangeEnd, call), payload);
      }
      atFor(this, 40L * d, () -> transfersInFlight.remove(key, call)); // the RPC's deadline
    }

    void onChunkReply(Action.Transfer t, long call, AgentCore.ChunkOutcome outcome,
        AgentCore.Progress p, long tag, long rangeEnd) {
      String key = AgentCore.transferKey(t);
      if (!Long.valueOf(call).equals(transfersInFlight.get(key))) {
        return; // that call already failed by its deadline
      }
      boolean complete = p.complete()
          || config.mutation() == Mutation.TRANSFER_DONE_AT_FIRST_CHUNK
              && outcome == AgentCore.ChunkOutcome.STORED;
      AgentCore.ChunkStep step = core.onChunkAnswer(t, outcome, p.chunks(), p.cursor(),
          complete);
      if (step.finished()) {
        transfersInFlight.remove(key);
        return;
      }
      fail("between-chunks", 5);
      sendChunk(t, tag, rangeEnd, step.next());
    }

    void receiveChunk(Server from, int fromIncarnation, Action.Transfer t, long chunk,
        boolean last, byte[] cursor, List<Msg> payload, SentSequences seqs, long tag,
        long rangeEnd, long call) {
      AgentCore.ChunkDecision dec = core.receiveChunk(t.rangeStart(), t.handoverEpoch(),
          t.direction(), tag, chunk, last, cursor);
      if (dec.verdict() == AgentCore.ChunkVerdict.WAIT
          && config.mutation() == Mutation.C2_NO_WAIT && core.version() > 0) {
        dec = core.receiveChunk(t.rangeStart(), t.handoverEpoch(), t.direction(),
            core.version(), chunk, last, cursor);
      }
      if (dec.verdict() == AgentCore.ChunkVerdict.WAIT) {
        blocked.computeIfAbsent("xfer:" + from.id, k -> new ArrayDeque<>())
            .add(() -> receiveChunk(from, fromIncarnation, t, chunk, last, cursor, payload, seqs,
                tag, rangeEnd, call));
        return;
      }
      AgentCore.ChunkOutcome outcome;
      switch (dec.verdict()) {
        case STORE -> {
          Buffer into = t.direction() == Direction.FORWARD ? Buffer.PREFIX : Buffer.RETURNED;
          if (t.direction() == Direction.REVERSE) {
            for (Msg m : payload) {
              if (disk.unforgotten.check("p" + m.producer(), disk.epoch, m.key(), m.seq())
                  == Verdict.DUPLICATE) {
                returnedKnownStored.add(m.id());
              }
            }
          }
          if (last) {
            // The sender's sequences first: they take the resends of what the sender stored
            // out of the buffer this side filled meanwhile (the target's HELD, the source's
            // POST_ABORT).
            List<Msg> resends = disk.mergeSequences(seqs, t.rangeStart(), t.handoverEpoch(),
                t.direction() == Direction.FORWARD ? Buffer.HELD : Buffer.POST_ABORT, now,
                keptForForgottenEntry);
            if (!resends.isEmpty()) {
              coverage.add("resend-dropped-on-merge");
              trace(id + " drops resends " + ids(resends) + " the " + t.direction()
                  + " transfer's sequences cover");
            }
          }
          disk.storeChunk(t.rangeStart(), t.handoverEpoch(), into, payload, dec.progress());
          fail(last ? "transfer-stored" : "chunk-stored");
          core.onChunkStored(t.rangeStart(), t.handoverEpoch(), t.direction(), last);
          outcome = AgentCore.ChunkOutcome.STORED;
        }
        case ALREADY_STORED -> outcome = AgentCore.ChunkOutcome.ALREADY_STORED;
        case OUT_OF_ORDER -> outcome = AgentCore.ChunkOutcome.OUT_OF_ORDER;
        default -> outcome = AgentCore.ChunkOutcome.REFUSED;
      }
      AgentCore.Progress p = dec.progress();
      trace(id + " transfer " + t + " chunk " + chunk + " from " + from.id + " -> " + outcome
          + " " + p);
      if (!lost()) {
        link(id, from.id).send(() -> from.onChunkReply(t, call, outcome, p, tag, rangeEnd),
            payload, 0, () -> from.alive && from.incarnation == fromIncarnation, null);
      }
    }

    // ---------------------------------------------------------------- late messages

    /** QueueServerAgent.kickLate: one late sender at a time. */
    void kickLate() {
      lateKicked = true;
      if (!lateBusy) {
        lateBusy = true;
        lateKicked = false;
        lateRound(new HashSet<>(), false);
      }
    }

    /** QueueServerAgent.sendLateRound, one batch per step; the answer continues the round. */
    void lateRound(Set<String> refusing, boolean progress) {
      LateBatch b = pendingLate;
      if (b != null) {
        if (!core.stillReachable(b.to())) {
          trace(id + " gives up late batch " + b.batch() + " to " + b.to());
          forgetLate(b);
          b = null;
        }
      }
      if (b == null) {
        b = nextLateBatch(refusing);
        if (b == null) {
          endLateRound(progress);
          return;
        }
        pendingLate = b;
      }
      LateBatch batch = b;
      long call = ++lateCall;
      Server owner = servers.get(b.to());
      int myIncarnation = incarnation;
      trace(id + " sends late batch " + b.batch() + " " + ids(b.msgs()) + " to " + owner.id);
      if (!lost()) {
        link(id, owner.id).send(() -> owner.receiveLate(id, batch.session(), batch.batch(),
            batch.msgs(), batch.tag(), notTaken -> {
              if (!lost()) {
                link(owner.id, id).send(() -> {
                  if (call == lateCall) {
                    onLateAnswer(batch, notTaken, refusing, progress);
                  }
                }, null, 0, () -> alive && incarnation == myIncarnation, null);
              }
            }), b.msgs());
      }
      atFor(this, 40L * d, () -> {
        if (call == lateCall) {
          lateCall++; // the call's deadline passed: the batch waits for the next round
          endLateRound(progress);
        }
      });
    }

    void onLateAnswer(LateBatch b, Set<Integer> notTaken, Set<String> refusing,
        boolean progress) {
      fail("late-sent", 25);
      List<Copy> sent = new ArrayList<>();
      for (int i = 0; i < b.msgs().size(); i++) {
        if (!notTaken.contains(i) || config.mutation() == Mutation.LATE_DROPS_NOT_TAKEN) {
          sent.addAll(b.copies().get(i));
        }
      }
      disk.drop(sent);
      forgetLate(b);
      boolean taken = notTaken.size() < b.msgs().size();
      if (!taken) {
        refusing.add(b.to());
      }
      lateRound(refusing, progress || taken);
    }

    void endLateRound(boolean progress) {
      lateBusy = false;
      if (lateKicked) {
        kickLate();
      }
    }

    void forgetLate(LateBatch b) {
      core.lateBatchDone(b.core());
      pendingLate = null;
    }

    /** QueueServerAgent.nextLateBatch: the core's batch, as a request. */
    LateBatch nextLateBatch(Set<String> refusing) {
      AgentCore.LateBatch<Copy> b = core.nextLateBatch(refusing);
      if (b == null) {
        return null;
      }
      List<Msg> msgs = new ArrayList<>();
      for (List<Copy> l : b.copies()) {
        msgs.add(l.get(0).msg());
      }
      return new LateBatch(b.to(), incarnation, b.number(), b.tag(), msgs, b.copies(), b);
    }

    /**
     * QueueServerAgent.onLate: each message placed like a new arrival of no session, taken when
     * it would be queued; the rest named in the answer. A batch answered before (its answer
     * lost) is answered from the receipt and stores nothing.
     */
    void receiveLate(String from, long session, long batch, List<Msg> msgs, long tag,
        Consumer<Set<Integer>> answer) {
      if (tag > core.version()) {
        blocked.computeIfAbsent("late", k -> new ArrayDeque<>())
            .add(() -> receiveLate(from, session, batch, msgs, tag, answer));
        return;
      }
      Set<Integer> all = new HashSet<>();
      for (int i = 0; i < msgs.size(); i++) {
        all.add(i);
      }
      LateReceipt last = disk.receipts.get(from);
      if (last != null && last.session() == session) {
        if (last.batch() == batch) {
          trace(id + " answers late batch " + batch + " of " + from + " from its receipt");
          answer.accept(last.notTaken());
          return;
        }
        if (batch < last.batch()) {
          answer.accept(all);
          return;
        }
      }
      if (!holdsLease()) {
        trace(id + " takes no late messages: no lease");
        answer.accept(all); // its map may be stale: the sender tries again later
        return;
      }
      List<Msg> taken = new ArrayList<>();
      Set<Integer> notTaken = new HashSet<>();
      for (int i = 0; i < msgs.size(); i++) {
        Decision dec = core.place(msgs.get(i).hash(), core.version(), LATE_PRODUCER);
        if (dec.placement() == Participant.Placement.QUEUE) {
          taken.add(msgs.get(i));
        } else {
          notTaken.add(i);
        }
      }
      if (taken.isEmpty()) {
        trace(id + " refuses late " + ids(msgs));
        answer.accept(all);
        return;
      }
      disk.queueLate(taken, config.mutation() == Mutation.LATE_SKIP_AS_BUILT, from,
          new LateReceipt(session, batch, notTaken));
      trace(id + " queues late " + ids(taken) + (notTaken.isEmpty() ? "" : ", not " + notTaken));
      fail("late-queued", 25);
      answer.accept(notTaken);
    }

    void sendOrphans(long rangeStart, long handoverEpoch) {
      if (config.mutation() == Mutation.NO_LATE || orphansInFlight.containsKey(rangeStart)) {
        return;
      }
      orphansInFlight.put(rangeStart, 0L);
      orphanAttempt(rangeStart, handoverEpoch, 0);
    }

    /** One LATE transfer of what is left of the range; repeated until nothing is left. */
    void orphanAttempt(long rangeStart, long handoverEpoch, int attempt) {
      boolean asBefore = config.mutation() == Mutation.LATE_AS_BEFORE;
      int i = applied.indexOfStart(rangeStart);
      RangeEntry r = i < 0 ? null : applied.range(i);
      if (r == null
          || !asBefore && (r.owner().equals(id) || core.side(rangeStart) != null)) {
        // Gone (LATE_AS_BEFORE runs never split), ours again, or in a handover with us: findOrphans
        // takes it up when that changes.
        orphansInFlight.remove(rangeStart);
        return;
      }
      List<Long> leftover = disk.handovers(rangeStart);
      long he = asBefore ? handoverEpoch : leftover.isEmpty() ? 0 : leftover.get(0);
      List<Msg> held = disk.orphans(r.start(), r.end(), he);
      if (held.isEmpty()) {
        orphansInFlight.remove(rangeStart);
        return;
      }
      long call = ++attempts;
      orphansInFlight.put(rangeStart, call);
      Server owner = servers.get(r.owner());
      long tag = applied.version();
      int myIncarnation = incarnation;
      trace(id + " sends late " + ids(held) + " of " + r.start() + "/" + he + " to " + owner.id);
      Runnable retry = () -> {
        if (Long.valueOf(call).equals(orphansInFlight.get(rangeStart))) {
          orphanAttempt(rangeStart, handoverEpoch, attempt + 1);
        }
      };
      if (!lost()) {
        link(id, owner.id).send(() -> owner.receiveLateAsBefore(held, tag, stored -> {
          if (!lost()) {
            link(owner.id, id).send(() -> {
              if (!Long.valueOf(call).equals(orphansInFlight.get(rangeStart))) {
                return;
              }
              if (stored) {
                fail("late-sent", 25);
                disk.dropOrphans(r.start(), r.end(), he, held);
                if (asBefore) {
                  orphansInFlight.remove(rangeStart);
                } else {
                  orphanAttempt(rangeStart, 0, 0); // more may be left: other buffers
                }
              } else {
                atFor(this, d << Math.min(attempt, 4), retry);
              }
            }, null, 0, () -> alive && incarnation == myIncarnation, null);
          }
        }), held);
      }
      atFor(this, 40L * d, () -> {
        if (Long.valueOf(call).equals(orphansInFlight.get(rangeStart))) {
          retry.run(); // the call's deadline passed
        }
      });
    }

    /** The receiving side as it was: the batch taken whole or refused whole, no receipt. */
    void receiveLateAsBefore(List<Msg> msgs, long tag, Consumer<Boolean> answer) {
      if (tag > core.version()) {
        blocked.computeIfAbsent("late", k -> new ArrayDeque<>())
            .add(() -> receiveLateAsBefore(msgs, tag, answer));
        return;
      }
      for (Msg m : msgs) {
        Decision dec = core.place(m.hash(), core.version(), LATE_PRODUCER);
        if (dec.placement() != Participant.Placement.QUEUE) {
          trace(id + " refuses late " + ids(msgs));
          answer.accept(false);
          return;
        }
      }
      disk.queueLate(msgs, false);
      trace(id + " queues late " + ids(msgs));
      fail("late-queued", 25);
      answer.accept(true);
    }

    // ---------------------------------------------------------------- publishes

    /** A publish from a producer's router, in link order; blocks the link while it waits. */
    void receivePublish(Producer p, Conn c, Msg m, long tag, long range, long overloadsSeen,
        long settledBelow, List<String> maybeStoredAt) {
      ArrayDeque<Runnable> q = blocked.computeIfAbsent("pub:" + p.index,
          k -> new ArrayDeque<>());
      Runnable handle = () -> {
        // Entries of keys in a range in a handover with this server are kept: its transfer
        // must carry them (QueueServiceImpl with QueueServerAgent.inHandover).
        disk.settled(p.name(), settledBelow, now, h -> AgentCore.inHandover(applied, id, h));
        handlePublish(p, c, m, tag, range, overloadsSeen, maybeStoredAt);
      };
      if (!q.isEmpty()) {
        q.add(handle);
        return;
      }
      handle.run();
    }

    private void handlePublish(Producer p, Conn c, Msg m, long tag, long range,
        long overloadsSeen, List<String> maybeStoredAt) {
      if (!holdsLease()) {
        // Paused or cut off for longer than the lease: its ranges may be someone else's.
        overload(p, c, m, range, "no lease");
        return;
      }
      Long lastOverload = c.overloadIndex.get(range);
      if (lastOverload != null && lastOverload >= overloadsSeen) {
        // The overload fence: an earlier message of this range was answered OVERLOADED and the
        // router had not seen it when it sent this one.
        overload(p, c, m, range, "overload fence");
        return;
      }
      String session = config.mutation() == Mutation.NO_FENCE
          ? "p" + p.index + "#" + (fenceDodge++) : "p" + p.index;
      Decision dec = core.place(m.hash(), tag, session);
      if (dec.placement() == Participant.Placement.WAIT
          && config.mutation() == Mutation.C2_NO_WAIT && core.version() > 0) {
        dec = core.place(m.hash(), core.version(), session);
      }
      Decision dd = dec;
      trace(id + " place " + m.id() + " " + m.key() + " tag " + tag + " -> " + dec);
      switch (dec.placement()) {
        case WAIT -> blocked.computeIfAbsent("pub:" + p.index, k -> new ArrayDeque<>())
            .addFirst(() -> handlePublish(p, c, m, tag, range, overloadsSeen, maybeStoredAt));
        case REFUSE -> {
          refusals++;
          link(id, p.name()).send(() -> p.onRefused(c, m, range, dd.version()), List.of(m));
        }
        default -> {
          if (disk.sequences.check(p.name(), disk.epoch, m.key(), m.seq()) == Verdict.DUPLICATE) {
            // Stored before, here or by the range's earlier owner: only its answer was lost.
            dedupedResends++;
            coverage.add("resend-recognised");
            trace(id + " recognises the resend of " + m.id());
            link(id, p.name()).send(() -> p.onAcked(c, m, range), List.of(m));
            return;
          }
          disk.noteStored(p.name(), m.key(), m.hash(), m.seq(), now); // with the message
          everStored.add(m.id());
          hashOf.put(m.id(), m.hash());
          // As QueueServiceImpl: a resend naming another server that may have stored it is
          // stored flagged, since this server cannot tell.
          boolean elsewhere = config.mutation() != Mutation.NO_MAYBE_DUPLICATE_FLAG
              && MaybeStoredAt.elsewhere(maybeStoredAt, id);
          Msg stored = elsewhere ? m.flagged() : m;
          if (elsewhere) {
            coverage.add("resend-flagged");
          }
          if (dec.placement() == Participant.Placement.QUEUE) {
            disk.enqueue(stored, false);
          } else {
            Buffer b = switch (dec.placement()) {
              case HOLD -> Buffer.HOLD;
              case HELD -> Buffer.HELD;
              default -> Buffer.POST_ABORT;
            };
            disk.append(dec.rangeStart(), dec.handoverEpoch(), b, stored);
          }
          fail("publish-stored");
          link(id, p.name()).send(() -> p.onAcked(c, m, range), List.of(m));
        }
      }
    }

    /** Answers OVERLOADED and raises the stream's overload fence for the range. */
    private void overload(Producer p, Conn c, Msg m, long range, String why) {
      overloaded++;
      c.overloadIndex.put(range, c.overloadsGiven++);
      trace(id + " OVERLOADED " + m.id() + " (" + why + ")");
      link(id, p.name()).send(() -> p.onOverloaded(c, m, range), List.of(m));
    }

    // ---------------------------------------------------------------- consumers

    /**
     * A consumer takes the head of one key's queue (delivered and acknowledged at once): only
     * while the server holds a lease, and only of keys its map says it owns (QueueStore.take).
     */
    void consume() {
      List<String> keys = new ArrayList<>();
      if (holdsLease()) {
        for (Map.Entry<String, ArrayDeque<Entry>> q : disk.queue.entrySet()) {
          if (applied.rangeFor(q.getValue().peekFirst().msg().hash()).owner().equals(id)) {
            keys.add(q.getKey());
          }
        }
      }
      if (!keys.isEmpty()) {
        String key = keys.get(rnd.nextInt(keys.size()));
        ArrayDeque<Entry> q = disk.queue.get(key);
        Entry e = q.pollFirst();
        if (q.isEmpty()) {
          disk.queue.remove(key);
        }
        deliver(this, e);
        if (core.awaitsBacklog()) {
          core.onAcked(e.msg().hash());
        }
      }
      if (!quiet()) {
        atFor(this, 1 + rnd.nextInt(3), this::consume);
      }
    }
  }

  /** A transfer's cursor in the simulation: the index after the last message sent. */
  private static long cursorOf(byte[] cursor) {
    return cursor.length == 0 ? 0 : java.nio.ByteBuffer.wrap(cursor).getLong();
  }

  private static byte[] cursorBytes(long index) {
    return java.nio.ByteBuffer.allocate(8).putLong(index).array();
  }

  private static String ids(List<Msg> list) {
    StringBuilder b = new StringBuilder("[");
    for (Msg m : list) {
      b.append(m.id()).append(m.key().substring(4)).append(' ');
    }
    return b.append(']').toString();
  }

  /**
   * A delivery, checked as it happens; the history checker sees it too. Only the late mark the
   * server puts on a message exempts it from the order and owner checks, and only the late mark
   * explains a second delivery (the simulation's consumers acknowledge at once, so nothing is
   * redelivered): resends are recognised by idempotent publish.
   */
  private void deliver(Server server, Entry e) {
    Msg m = e.msg();
    trace(server.id + " delivers " + m.id() + " " + m.key() + (e.late() ? " (late)" : "")
        + (m.maybeDuplicate() ? " (flagged redelivered)" : ""));
    history.delivered(server.id, "p" + m.producer(), m.seq(), m.key(), m.maybeDuplicate(),
        e.late());
    int n = deliveredCount.merge(m.id(), 1, Integer::sum);
    if (n > 1) {
      duplicates++;
      if (e.late()) {
        return; // order is promised for first deliveries
      }
      // The shapes in which the server that stores a resend cannot have the entries of the
      // server that stored the first attempt (docs/design.md §5 "Idempotent publish"): there the
      // resend must be flagged; anywhere else the entries must have recognised it.
      String shape = e.returned() && returnedKnownStored.contains(m.id())
          ? "handback" // the target held the resend and handed it back after an abort
          : keptForForgottenEntry.contains(m.id())
              ? "forgotten-entry" // the source forgot its entry as settled before it travelled
              : heldWhenForced.contains(m.id()) || storedBeforeForce.contains(m.id())
                  ? "forced" // the range was forced away from the server that stored it
                  : null;
      if (!m.maybeDuplicate() && lateIds.contains(m.id())
          && image.rangeFor(m.hash()).owner().equals(server.id)) {
        // The unmarked-leftover gap below, met after the range's other owner delivered the
        // resend: the leftover is the second copy, unflagged.
        unmarkedLeftovers++;
        unmarkedLeftoverDuplicates++;
        coverage.add("unmarked-leftover-duplicate");
        trace("known gap: " + m.id() + " delivered again, unmarked, by " + server.id
            + ", which held it queued when its range was forced away");
      } else if (!m.maybeDuplicate()) {
        violation("message " + m.id() + " delivered again by " + server.id
            + " without the late or redelivered flag: an unexplained duplicate"
            + (shape == null ? "" : " (" + shape + " shape: the resend should have been flagged)"));
      } else if (shape == null) {
        violation("message " + m.id() + " delivered again by " + server.id + ", flagged, where"
            + " the producer sequences should have recognised the resend");
      } else {
        flaggedDuplicates++;
        coverage.add("flagged-duplicate-" + shape);
        trace("flagged duplicate (" + shape + "): " + m.id() + " delivered again by "
            + server.id);
      }
      return; // order is promised for first deliveries
    }
    if (e.late() && !lateIds.contains(m.id()) && !heldWhenForced.contains(m.id())) {
      violation("message " + m.id() + " first delivered late by " + server.id
          + " though it was never held in a range that was forced");
    }
    if (e.late()) {
      lateDelivered++;
      return;
    }
    RangeEntry r = image.rangeFor(m.hash());
    if (server.sawAsLeftover.contains(m.id())) {
      violation("message " + m.id() + " delivered unmarked by " + server.id + ", which had "
          + "applied a map in which its range was another server's while it held it queued: "
          + "the agent marks such leftovers late");
    }
    if (lateIds.contains(m.id()) && r.owner().equals(server.id)) {
      // The known gap (docs/design.md §5, open points): a server held m queued when its range
      // was forced away from it while it was DOWN, and the range came back to it before it
      // could send m on as late; m stays in its queue and is delivered unmarked, out of order.
      unmarkedLeftovers++;
      coverage.add("unmarked-leftover");
      trace("known gap: " + m.id() + " delivered unmarked by " + server.id
          + ", which held it queued when its range was forced away");
      return;
    }
    if (!r.owner().equals(server.id)) {
      String forced = "";
      for (ForcedAway f : forcedAway) {
        if (f.server() == server && f.late() && Ring.contains(f.start(), f.end(), m.hash())) {
          forced = ", which forced the range away from it at v" + f.version()
              + " before it learned of that (its lease must have run out)";
        }
      }
      violation("message " + m.id() + " (key " + m.key() + ") delivered by " + server.id
          + " but its committed owner is " + r.owner() + " (v" + image.version() + ")" + forced);
    }
    String pk = m.producer() + "/" + m.key();
    Long last = lastDeliveredSeq.get(pk);
    if (last != null && last > m.seq()) {
      violation("producer " + m.producer() + " key " + m.key() + ": seq " + m.seq()
          + " delivered after seq " + last + " (by " + server.id + ")");
    }
    lastDeliveredSeq.put(pk, Math.max(last == null ? -1 : last, m.seq()));
  }

  // ================================================================== producers and routers

  /** One publish stream of a router to a server; bound to the incarnation it first reaches. */
  private static final class Conn {
    final String server;
    final long notBefore;
    /** The stream's id in the router's {@link PublishSession}. */
    long stream;
    int incarnation = -1;
    boolean bound;
    /** The stream is broken (the server died or was not there); the router may not know yet. */
    boolean broken;
    /** The router has seen the failure (or ended the stream) and reads nothing more of it. */
    boolean failed;
    /** Server side: OVERLOADED answers given on the stream; each range's latest one's index. */
    long overloadsGiven;
    final Map<Long, Long> overloadIndex = new HashMap<>();

    Conn(String server, long notBefore) {
      this.server = server;
      this.notBefore = notBefore;
    }
  }

  /**
   * A router's producer session: the real {@link PublishSession} (the decisions of the router's
   * {@code Producer}) driven over the simulated links. This class does only what {@code Producer}
   * does around the core — streams, timers, outcomes — with one message per request (a queue
   * server here takes one message at a time) and up to {@code window} requests unanswered per
   * stream; the session holds at most {@code window} unfinished messages.
   */
  private final class Producer implements Subscriber {
    final int index;
    final PublishSession<Msg> core;
    long lastVersion = -1;
    int nextToCreate;
    final List<String> keys;
    /** The last stream opened to each server. */
    final Map<String, Conn> conns = new TreeMap<>();

    Producer(int index, List<String> keys) {
      this.index = index;
      this.keys = keys;
      this.core = new PublishSession<>(new PublishSession.Config(1, 1, Long.MAX_VALUE,
          Math.max(1, config.window()), this::backoff));
    }

    /** The backoffs in virtual time: no jitter, so that a seed replays exactly. */
    long backoff(PublishSession.Wait why, int attempt) {
      return switch (why) {
        case RECONNECT -> 2L * d * Math.min(attempt, 8);
        case OVERLOAD -> d * Math.min(1L << Math.min(attempt, 3), 8);
        case QUIET_REFUSAL -> d * Math.min(attempt, 8);
      };
    }

    @Override
    public String name() {
      return "p" + index;
    }

    @Override
    public void onVersion(ClusterImage next) {
      if (next.version() <= lastVersion) {
        violation(name() + " saw version " + next.version() + " after " + lastVersion);
      }
      lastVersion = next.version();
      core.onMap(next, now);
      pump();
    }

    boolean done() {
      return nextToCreate >= config.messagesPerProducer() && core.unfinished() == 0;
    }

    /** Publishes new messages while the window has room, then carries out what the core says. */
    void pump() {
      while (core.unfinished() < config.window()
          && nextToCreate < config.messagesPerProducer()) {
        String key = keys.get(rnd.nextInt(keys.size()));
        Msg m = new Msg(index, core.nextSeq(), key, KeyHash.hash(key));
        nextToCreate++;
        history.publishSent(name(), m.seq(), m.key());
        core.publish(m.hash(), 1, m, now);
      }
      carryOut();
    }

    void carryOut() {
      for (PublishSession.Action<Msg> a : core.drain()) {
        if (a instanceof PublishSession.Action.Open<Msg> o) {
          Conn c = new Conn(o.server(), now); // the core waited out any reconnect backoff
          c.stream = o.stream();
          conns.put(o.server(), c);
        } else if (a instanceof PublishSession.Action.Write<Msg> w) {
          write(w.request());
        } else if (a instanceof PublishSession.Action.Cancel<Msg> x) {
          Conn c = conns.get(x.server());
          if (c != null && c.stream == x.stream()) {
            c.failed = true;
          }
        } else if (a instanceof PublishSession.Action.WakeAt<Msg> w) {
          at(Math.max(0, w.at() - now), () -> {
            core.timerFired(w.at(), now);
            pump();
          });
        } else if (a instanceof PublishSession.Action.Acked<Msg> k) {
          Msg m = k.message();
          if (acked.put(m.id(), m) == null) {
            history.publishAcked(name(), m.seq());
          } else {
            violation(name() + ": " + m.id() + " acknowledged twice");
          }
        } else if (a instanceof PublishSession.Action.Rejected<Msg> r) {
          violation(name() + ": " + r.message().id() + " rejected: " + r.detail());
        }
      }
    }

    /** A request of one message, on the stream it names, over the router's link to it. */
    void write(PublishSession.Request<Msg> r) {
      Conn c = conns.get(r.server());
      if (c == null || c.stream != r.stream() || r.items().size() != 1) {
        violation(name() + " wrote " + r + " on no open stream");
        return;
      }
      PublishSession.Item<Msg> item = r.items().get(0);
      Msg m = item.message();
      Server server = servers.get(r.server());
      long tag = item.tag();
      long range = item.rangeStart();
      long seen = r.overloadsSeen();
      long settledBelow = r.settledBelow();
      List<String> maybeStoredAt = item.maybeStoredAt();
      trace(name() + " sends " + m.id() + " " + m.key() + " to " + server.id + " tag " + tag
          + (maybeStoredAt.isEmpty() ? "" : " (maybe stored at " + maybeStoredAt + ")"));
      link(name(), server.id).send(
          () -> server.receivePublish(this, c, m, tag, range, seen, settledBelow, maybeStoredAt),
          List.of(m), c.notBefore, () -> {
            if (!c.bound && server.alive && !c.failed) {
              c.bound = true; // connected: to the incarnation running now
              c.incarnation = server.incarnation;
            }
            if (!c.bound || c.broken || c.failed || !server.alive
                || c.incarnation != server.incarnation) {
              c.broken = true; // nothing more gets through on this stream
              return false;
            }
            return true;
          }, () -> at(1 + rnd.nextInt((int) d), () -> linkFailed(c)));
    }

    void onAcked(Conn c, Msg m, long range) {
      answer(c, PublishSession.Result.accepted(m.seq(), false));
    }

    void onOverloaded(Conn c, Msg m, long range) {
      answer(c, PublishSession.Result.overloaded(m.seq()));
    }

    void onRefused(Conn c, Msg m, long range, long version) {
      answer(c, PublishSession.Result.wrongOwner(m.seq(), version));
    }

    /** A server's answer, in stream order; lost if the stream broke or was given up. */
    void answer(Conn c, PublishSession.Result result) {
      if (c.broken || c.failed) {
        return;
      }
      String bad = core.onResponse(c.stream, List.of(result), now);
      if (bad != null) {
        violation(name() + "'s stream to " + c.server + " answered out of order: " + bad);
      }
      pump();
    }

    /** The stream failed: every unsettled send on it is refused at the current version. */
    void linkFailed(Conn c) {
      if (c.failed) {
        return;
      }
      c.failed = true;
      core.streamFailed(c.stream, "broken", now);
      trace(name() + " stream to " + c.server + " failed");
      pump();
    }
  }

  // ================================================================== the run

  private boolean quiet() {
    if (movesAllowed || chaosAllowed || failpointsAllowed) {
      return false;
    }
    for (Producer p : producers) {
      if (!p.done()) {
        return false;
      }
    }
    for (RangeEntry r : image.ranges()) {
      if (r.handover() != null) {
        return false;
      }
    }
    for (Server s : servers.values()) {
      if (!s.alive || now < s.pausedUntil || now < s.outageUntil || !isActive(s.id)
          || s.incarnationVersion != image.version()
          || !s.disk.isEmpty() || !s.orphansInFlight.isEmpty()) {
        return false;
      }
    }
    return true;
  }

  private static long[] starts(int ranges) {
    long[] out = new long[ranges];
    long step = Long.divideUnsigned(-1L, ranges) + 1; // about 2^64 / ranges
    for (int i = 0; i < ranges; i++) {
      out[i] = step * i;
    }
    if (ranges == 2) {
      out[1] = MID;
    }
    return out;
  }

  Result run() {
    image = ClusterImage.EMPTY;
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < config.servers(); i++) {
      String id = String.valueOf((char) ('A' + i));
      ids.add(id);
      servers.put(id, new Server(id));
      apply(new Command.RegisterServer(id, id.toLowerCase() + ":1", 1.0));
    }
    long[] starts = starts(config.ranges());
    for (int i = 1; i < starts.length; i++) {
      apply(new Command.SplitRange(starts[i - 1], starts[i]));
    }
    for (int i = 0; i < starts.length; i++) {
      apply(new Command.AssignRange(starts[i], ids.get(i % ids.size()), false));
    }
    List<String> keys = new ArrayList<>();
    for (int k = 0; k < config.keys(); k++) {
      keys.add("key-" + k);
    }
    for (Server s : servers.values()) {
      subscribers.add(s);
      ClusterImage initial = image;
      link("leader", s.id).send(() -> s.onVersion(initial));
      s.startTimers();
      liveness.heard(s.id, 0);
    }
    for (int p = 0; p < config.producers(); p++) {
      Producer producer = new Producer(p, keys);
      producers.add(producer);
      subscribers.add(producer);
      ClusterImage initial = image;
      link("leader", producer.name()).send(() -> producer.onVersion(initial));
    }
    at(3, this::leaderTick);
    long stopMovesAt = 400L * d;
    at(stopMovesAt, () -> movesAllowed = false);
    if (config.crashes().on()) {
      chaosAllowed = true;
      failpointsAllowed = true;
      at(300L * d, () -> chaosAllowed = false);
      // Late messages move after restarts: failpoints last longer, to reach that path too.
      at(500L * d, () -> failpointsAllowed = false);
    }
    long maxEvents = 3_000_000;
    while (!events.isEmpty() && eventCount < maxEvents) {
      Event e = events.poll();
      if (e.cancelled) {
        continue;
      }
      if (e.server != null && e.server.pausedUntil > e.time) {
        e.time = e.server.pausedUntil; // paused: it happens on resuming, in its order
        events.add(e);
        continue;
      }
      now = e.time;
      eventCount++;
      if (e.link != null) {
        e.link.pending.remove(e);
      }
      try {
        e.action.run();
      } catch (Crash c) {
        crash(c.server, c.point);
      }
      if (!forcedAway.isEmpty()) {
        markLate();
      }
      if (!violations.isEmpty() && !historyOnly) {
        throw failure(violations.get(0));
      }
    }
    if (historyOnly) {
      return result(HistoryChecker.check(history));
    }
    if (!quiet()) {
      throw failure("no quiescence after " + eventCount + " events: " + stateSummary());
    }
    HistoryChecker.Verdict verdict = HistoryChecker.check(history);
    if (verdict.lost() != 0 || verdict.phantom() != 0
        || verdict.reorderedKeys() != 0 && unmarkedLeftovers == 0
        || verdict.unexplainedDuplicates() != unmarkedLeftoverDuplicates) {
      throw failure("the history checker: " + verdict + "; unmarked leftovers (known gap): "
          + unmarkedLeftovers);
    }
    for (Msg m : acked.values()) {
      if (!deliveredCount.containsKey(m.id())) {
        throw failure("acknowledged message " + m.id() + " (key " + m.key() + ") was lost");
      }
    }
    long total = (long) config.producers() * config.messagesPerProducer();
    if (acked.size() != total) {
      throw failure(acked.size() + " of " + total + " messages acknowledged");
    }
    return result(verdict);
  }

  private Result result(HistoryChecker.Verdict verdict) {
    return new Result(seed, eventCount, deliveredCount.size(), completed, aborted, refusals,
        image.version(), crashCount, downDeclared, forced, lateDelivered, duplicates, pauses,
        outages, operatorDowns, leaderChanges, overloaded, dedupedResends, flaggedDuplicates,
        unmarkedLeftovers, splits, merges,
        Set.copyOf(coverage),
        verdict);
  }

  private AssertionError failure(String what) {
    return new AssertionError("seed " + seed + ": " + what);
  }

  private String stateSummary() {
    StringBuilder b = new StringBuilder("t=" + now + "; ");
    for (RangeEntry r : image.ranges()) {
      b.append(r.rangeText()).append(' ').append(r.owner()).append(" e").append(r.epoch())
          .append(r.handover() == null ? "" : " " + r.handover()).append("; ");
    }
    for (QueueServerInfo s : image.servers().values()) {
      b.append(s.id()).append(' ').append(s.state()).append("; ");
    }
    for (Producer p : producers) {
      b.append(p.name()).append(" created ").append(p.nextToCreate).append(" unfinished ")
          .append(p.core.unfinished()).append(" waiting ").append(p.core.waiting())
          .append("; ");
    }
    for (Server s : servers.values()) {
      b.append(s.id).append(s.alive ? "" : " (down)").append(" v").append(s.incarnationVersion)
          .append(" paused until ").append(s.pausedUntil).append(" cut off until ")
          .append(s.outageUntil)
          .append(" sides ").append(s.core == null ? "-" : s.core.sides())
          .append(" queue ").append(s.disk.queue.values())
          .append(" buffers ").append(s.disk.buffers)
          .append(" orphans ").append(s.orphansInFlight.keySet())
          .append(" blocked ").append(s.blocked.keySet()).append("; ");
    }
    return b.toString();
  }
}
