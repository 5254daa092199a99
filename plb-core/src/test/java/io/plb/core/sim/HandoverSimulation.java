package io.plb.core.sim;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.PlbException;
import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.handover.SendBarrier;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RangeEntry;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;

/**
 * A seeded, deterministic simulation of the hold handover: the real map rules
 * ({@link CommandProcessor}), the real queue-server hold rules ({@link Participant}) and the real
 * router barrier ({@link SendBarrier}), connected by simulated links on virtual time. Links are
 * FIFO each, with random delays, so messages on different links overtake each other; reports to
 * the leader are duplicated at random; the leader moves ranges back and forth, aborts some moves
 * from PREPARE and from SWITCH, and times out stalled ones. Invariants are checked after every
 * event; at the end, every acknowledged message must have been delivered once, and for each
 * producer and key in the order it was sent. A failing seed replays exactly.
 *
 * <p>Single-threaded; one instance per run.
 */
final class HandoverSimulation {
  /** Run parameters. */
  record Config(int producers, int messagesPerProducer, int keys, int window,
      double abortChance, double duplicateReportChance, int maxDelay, double lossChance) {
    Config(int producers, int messagesPerProducer, int keys, int window, double abortChance,
        double duplicateReportChance, int maxDelay) {
      this(producers, messagesPerProducer, keys, window, abortChance, duplicateReportChance,
          maxDelay, 0);
    }
  }

  /** A published message. */
  record Msg(int producer, long seq, String key, long hash) {
    String id() {
      return producer + ":" + seq;
    }
  }

  /** What the simulation observed. */
  record Result(long seed, long events, long delivered, long handoversCompleted,
      long handoversAborted, long refusals, long versions) {}

  private record Event(long time, long order, Runnable action) {}

  static final long MID = Long.MIN_VALUE;

  private final long seed;
  private final Config config;
  private final Random rnd;
  private final PriorityQueue<Event> events = new PriorityQueue<>(
      (a, b) -> a.time != b.time ? Long.compare(a.time, b.time) : Long.compare(a.order, b.order));
  private long now;
  private long order;
  private long eventCount;

  // ---- the leader
  private ClusterImage image;
  private final List<Subscriber> subscribers = new ArrayList<>();
  private final Map<Long, Long> phaseSince = new HashMap<>();
  private boolean movesAllowed = true;
  private long completed;
  private long aborted;
  private long refusals;

  // ---- servers, producers, history
  private final Map<String, Server> servers = new LinkedHashMap<>();
  private final List<Producer> producers = new ArrayList<>();
  private final Map<String, Msg> acked = new HashMap<>();
  private final Map<String, Integer> deliveredCount = new HashMap<>();
  private final Map<String, Long> lastDeliveredSeq = new HashMap<>();
  private final List<String> violations = new ArrayList<>();

  HandoverSimulation(long seed, Config config) {
    this.seed = seed;
    this.config = config;
    this.rnd = new Random(seed);
  }

  // ================================================================== infrastructure

  private void at(long delay, Runnable r) {
    events.add(new Event(now + delay, order++, r));
  }

  private long delay() {
    return 1 + rnd.nextInt(config.maxDelay());
  }

  /** A FIFO link: each message arrives after a random delay, never before the previous one. */
  private final class Link {
    private long lastArrival;
    /** Links differ in speed, so one server can run well behind another. */
    private final int slowness = 1 + rnd.nextInt(4);

    void send(Runnable onArrival) {
      long arrival = Math.max(lastArrival, now + (long) slowness * delay());
      lastArrival = arrival;
      events.add(new Event(arrival, order++, onArrival));
    }
  }

  private final Map<String, Link> links = new HashMap<>();

  private Link link(String from, String to) {
    return links.computeIfAbsent(from + "->" + to, k -> new Link());
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

  // ================================================================== the leader

  /** Something that applies map versions in order. */
  private interface Subscriber {
    String name();

    void onVersion(ClusterImage image);
  }

  private void subscribe(Subscriber s) {
    subscribers.add(s);
  }

  private MapDelta apply(Command c) {
    MapDelta d;
    try {
      d = CommandProcessor.process(image, c, image.version() + 1);
    } catch (PlbException e) {
      return null;
    }
    if (d.isEmpty()) {
      return d;
    }
    ClusterImage next = image.apply(d);
    next.checkInvariants();
    if (next.version() <= image.version()) {
      violation("map version did not grow");
    }
    image = next;
    trace("leader v" + next.version() + " " + d.cause() + " " + d.upsertedRanges());
    for (RangeEntry r : next.ranges()) {
      if (r.handover() != null) {
        phaseSince.putIfAbsent(r.start() * 31 + r.handover().phase().ordinal(), now);
      }
    }
    for (Subscriber s : subscribers) {
      ClusterImage snapshot = next;
      link("leader", s.name()).send(() -> s.onVersion(snapshot));
    }
    return d;
  }

  /** A report from a queue server reaching the leader (maybe twice). */
  private boolean lost() {
    return rnd.nextDouble() < config.lossChance();
  }

  private void report(String from, Command c) {
    if (lost()) {
      return; // the agent sends it again (Participant.resend)
    }
    int copies = rnd.nextDouble() < config.duplicateReportChance() ? 2 : 1;
    for (int i = 0; i < copies; i++) {
      link(from, "leader").send(() -> {
        MapDelta d = apply(c);
        if (d != null && !d.isEmpty() && c instanceof Command.HandoverDrained) {
          completed++;
        }
      });
    }
  }

  private void leaderTick() {
    if (movesAllowed) {
      for (RangeEntry r : image.ranges()) {
        if (r.handover() == null && rnd.nextInt(4) == 0) {
          String target = r.owner().equals("A") ? "B" : "A";
          apply(new Command.StartHandover(r.start(), r.end(), r.epoch(), target, 2, 4));
        }
      }
    }
    for (RangeEntry r : image.ranges()) {
      if (r.handover() == null) {
        continue;
      }
      HandoverPhase phase = r.handover().phase();
      long he = r.epoch() + 1;
      Long since = phaseSince.get(r.start() * 31 + phase.ordinal());
      boolean stalled = since != null && now - since > 40L * config.maxDelay();
      boolean chosen = rnd.nextDouble() < config.abortChance();
      if (phase != HandoverPhase.ABORT_SWITCH && (stalled || chosen)) {
        MapDelta d = apply(new Command.AbortHandover(r.start(), he, stalled ? "timeout" : "test"));
        if (d != null && !d.isEmpty()) {
          aborted++;
        }
      }
    }
    phaseSince.keySet().removeIf(k -> true);
    for (RangeEntry r : image.ranges()) {
      if (r.handover() != null) {
        phaseSince.put(r.start() * 31 + r.handover().phase().ordinal(), now - 1);
      }
    }
    if (!quiet()) {
      at(5L * config.maxDelay(), this::leaderTick);
    }
  }

  // ================================================================== queue servers

  private final class Server implements Subscriber {
    final String id;
    final Participant rules;
    final Map<String, ArrayDeque<Msg>> queue = new LinkedHashMap<>();
    final Map<String, List<Msg>> buffers = new HashMap<>();
    final Set<String> holds = new HashSet<>();
    final Set<Long> awaitingBacklog = new HashSet<>();
    final Map<String, ArrayDeque<Runnable>> blocked = new HashMap<>();
    long lastVersion = -1;

    Server(String id) {
      this.id = id;
      this.rules = new Participant(id);
    }

    @Override
    public String name() {
      return id;
    }

    String bufferKey(long range, long he, Buffer b) {
      return range + "/" + he + "/" + b;
    }

    List<Msg> buffer(long range, long he, Buffer b) {
      return buffers.computeIfAbsent(bufferKey(range, he, b), k -> new ArrayList<>());
    }

    @Override
    public void onVersion(ClusterImage next) {
      if (next.version() <= lastVersion) {
        violation(id + " saw version " + next.version() + " after " + lastVersion);
      }
      lastVersion = next.version();
      List<Action> acts = rules.onMap(next);
      trace(id + " sees v" + next.version() + " -> " + acts);
      run(acts);
      checkBacklog();
      // Messages waiting for this version (C2), in link order.
      for (ArrayDeque<Runnable> q : blocked.values()) {
        int n = q.size();
        for (int i = 0; i < n && !q.isEmpty(); i++) {
          Runnable r = q.pollFirst();
          r.run();
        }
      }
    }

    void run(List<Action> actions) {
      for (Action a : actions) {
        if (a instanceof Action.ReportReady x) {
          report(id, new Command.HandoverReady(x.rangeStart(), x.handoverEpoch()));
        } else if (a instanceof Action.AwaitBacklog x) {
          awaitingBacklog.add(x.rangeStart());
        } else if (a instanceof Action.ReportDrained x) {
          report(id, new Command.HandoverDrained(x.rangeStart(), x.handoverEpoch()));
        } else if (a instanceof Action.ReportReversed x) {
          report(id, new Command.FinishAbort(x.rangeStart(), x.handoverEpoch()));
        } else if (a instanceof Action.Transfer x) {
          List<Msg> payload = new ArrayList<>();
          for (Buffer b : x.buffers()) {
            payload.addAll(buffer(x.rangeStart(), x.handoverEpoch(), b));
          }
          trace(id + " transfer " + x + " " + ids(payload));
          long tag = rules.version();
          Server peer = servers.get(x.to());
          if (!lost()) {
            link(id, x.to()).send(() -> peer.receiveTransfer(this, x, payload, tag));
          }
        } else if (a instanceof Action.Release x) {
          for (Buffer b : x.buffers()) {
            List<Msg> list = buffers.remove(bufferKey(x.rangeStart(), x.handoverEpoch(), b));
            trace(id + " release " + b + " " + (list == null ? "[]" : ids(list)));
            if (list != null) {
              for (Msg m : list) {
                if (holds.add(m.id())) { // drop a message already released here
                  queue.computeIfAbsent(m.key(), k -> new ArrayDeque<>()).add(m);
                }
              }
            }
          }
        } else if (a instanceof Action.Discard x) {
          for (Buffer b : x.buffers()) {
            buffers.remove(bufferKey(x.rangeStart(), x.handoverEpoch(), b));
          }
        } else if (a instanceof Action.Orphaned x) {
          violation(id + " orphaned range " + x.rangeStart() + " without any server going down");
        }
      }
    }

    void receiveTransfer(Server from, Action.Transfer t, List<Msg> payload, long tag) {
      Participant.TransferVerdict v =
          rules.acceptTransfer(t.rangeStart(), t.handoverEpoch(), t.direction(), tag);
      if (v == Participant.TransferVerdict.WAIT) {
        blocked.computeIfAbsent("xfer:" + from.id, k -> new ArrayDeque<>())
            .add(() -> receiveTransfer(from, t, payload, tag));
        return;
      }
      if (v == Participant.TransferVerdict.DUPLICATE) {
        if (!lost()) {
          link(id, from.id).send(() -> from.run(
              from.rules.onTransferAcked(t.rangeStart(), t.handoverEpoch(), t.direction())));
        }
        return;
      }
      if (v == Participant.TransferVerdict.REFUSE) {
        link(id, from.id).send(() -> from.run(
            from.rules.onTransferRefused(t.rangeStart(), t.handoverEpoch())));
        return;
      }
      Buffer into = t.direction() == Direction.FORWARD ? Buffer.PREFIX : Buffer.RETURNED;
      List<Msg> stored = buffer(t.rangeStart(), t.handoverEpoch(), into);
      Set<String> have = new HashSet<>();
      for (Msg m : stored) {
        have.add(m.id());
      }
      for (Msg m : payload) {
        if (have.add(m.id())) {
          stored.add(m);
        }
      }
      run(rules.onTransferStored(t.rangeStart(), t.handoverEpoch(), t.direction()));
      if (!lost()) {
        link(id, from.id).send(() -> from.run(
            from.rules.onTransferAcked(t.rangeStart(), t.handoverEpoch(), t.direction())));
      }
    }

    /** A publish from a producer's router, in link order; blocks the link while it waits. */
    void receivePublish(Producer p, Msg m, long tag, Consumer<Long> onRefused, Runnable onAck) {
      ArrayDeque<Runnable> q = blocked.computeIfAbsent("pub:" + p.index,
          k -> new ArrayDeque<>());
      Runnable handle = () -> handlePublish(p, m, tag, onRefused, onAck);
      if (!q.isEmpty()) {
        q.add(handle);
        return;
      }
      handle.run();
    }

    private void handlePublish(Producer p, Msg m, long tag, Consumer<Long> onRefused,
        Runnable onAck) {
      Decision d = rules.place(m.hash(), tag, "p" + p.index);
      trace(id + " place " + m.id() + " " + m.key() + " tag " + tag + " -> " + d);
      switch (d.placement()) {
        case WAIT -> blocked.computeIfAbsent("pub:" + p.index, k -> new ArrayDeque<>())
            .addFirst(() -> handlePublish(p, m, tag, onRefused, onAck));
        case REFUSE -> {
          refusals++;
          link(id, "p" + p.index).send(() -> onRefused.accept(d.version()));
        }
        case QUEUE -> {
          holds.add(m.id());
          queue.computeIfAbsent(m.key(), k -> new ArrayDeque<>()).add(m);
          link(id, "p" + p.index).send(onAck);
        }
        default -> {
          Buffer b = switch (d.placement()) {
            case HOLD -> Buffer.HOLD;
            case HELD -> Buffer.HELD;
            default -> Buffer.POST_ABORT;
          };
          buffer(d.rangeStart(), d.handoverEpoch(), b).add(m);
          link(id, "p" + p.index).send(onAck);
        }
      }
    }

    /** The agent's retry timer: reports and transfers whose effect has not been seen yet. */
    void resendTick() {
      run(rules.resend());
      if (!quiet()) {
        at(10L * config.maxDelay(), this::resendTick);
      }
    }

    /** A consumer takes the head of one key's queue (delivered and acknowledged at once). */
    void consume() {
      List<String> keys = new ArrayList<>();
      for (Map.Entry<String, ArrayDeque<Msg>> e : queue.entrySet()) {
        if (!e.getValue().isEmpty()) {
          keys.add(e.getKey());
        }
      }
      if (!keys.isEmpty()) {
        String key = keys.get(rnd.nextInt(keys.size()));
        deliver(id, queue.get(key).pollFirst());
        checkBacklog();
      }
      if (!quiet()) {
        at(1 + rnd.nextInt(3), this::consume);
      }
    }

    void checkBacklog() {
      for (Long range : new ArrayList<>(awaitingBacklog)) {
        int i = rules.version() < 0 ? -1 : lastImage(this).indexOfStart(range);
        RangeEntry r = i < 0 ? null : lastImage(this).range(i);
        boolean empty = true;
        for (ArrayDeque<Msg> q : queue.values()) {
          for (Msg m : q) {
            if (r != null && r.contains(m.hash())) {
              empty = false;
              break;
            }
          }
        }
        if (empty) {
          awaitingBacklog.remove(range);
          run(rules.onBacklogEmpty(range));
        }
      }
    }
  }

  private static String ids(List<Msg> list) {
    StringBuilder b = new StringBuilder("[");
    for (Msg m : list) {
      b.append(m.id()).append(m.key().substring(4)).append(' ');
    }
    return b.append(']').toString();
  }

  private final Map<String, ClusterImage> lastImages = new HashMap<>();

  private ClusterImage lastImage(Server s) {
    return lastImages.getOrDefault(s.id, ClusterImage.EMPTY);
  }

  private void deliver(String server, Msg m) {
    trace(server + " delivers " + m.id() + " " + m.key());
    int n = deliveredCount.merge(m.id(), 1, Integer::sum);
    if (n > 1) {
      violation("message " + m.id() + " delivered twice (second by " + server + ")");
    }
    String pk = m.producer() + "/" + m.key();
    Long last = lastDeliveredSeq.get(pk);
    if (last != null && last > m.seq()) {
      violation("producer " + m.producer() + " key " + m.key() + ": seq " + m.seq()
          + " delivered after seq " + last + " (by " + server + ")");
    }
    lastDeliveredSeq.put(pk, Math.max(last == null ? -1 : last, m.seq()));
  }

  // ================================================================== producers and routers

  private final class Producer implements Subscriber {
    final int index;
    final SendBarrier<Msg> barrier = new SendBarrier<>();
    ClusterImage view = ClusterImage.EMPTY;
    long lastVersion = -1;
    int nextToCreate;
    int inFlight;
    final List<String> keys;

    Producer(int index, List<String> keys) {
      this.index = index;
      this.keys = keys;
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
      view = next;
      pump();
    }

    boolean done() {
      return nextToCreate >= config.messagesPerProducer() && barrier.idle();
    }

    /** Sends what the barrier and the window allow: resends first, then new messages. */
    void pump() {
      for (RangeEntry r : view.ranges()) {
        for (Msg m : barrier.takeResends(r.start(), view.version())) {
          send(m, r);
        }
      }
      while (inFlight < config.window() && nextToCreate < config.messagesPerProducer()) {
        String key = keys.get(rnd.nextInt(keys.size()));
        long hash = KeyHash.hash(key);
        RangeEntry r = view.rangeFor(hash);
        if (!barrier.maySend(r.start(), SendBarrier.Entry.of(r))) {
          return; // the next message waits: order within the producer is kept
        }
        Msg m = new Msg(index, nextToCreate++, key, hash);
        send(m, r);
      }
    }

    void send(Msg m, RangeEntry r) {
      SendBarrier.Entry entry = SendBarrier.Entry.of(r);
      barrier.sent(r.start(), m.seq(), entry);
      inFlight++;
      Server server = servers.get(entry.destination());
      long tag = view.version();
      trace(name() + " sends " + m.id() + " " + m.key() + " to " + server.id + " tag " + tag);
      long range = r.start();
      link(name(), server.id).send(() -> server.receivePublish(this, m, tag,
          version -> {
            inFlight--;
            barrier.refused(range, m.seq(), m, version);
            pump();
          },
          () -> {
            inFlight--;
            barrier.acked(range, m.seq());
            acked.put(m.id(), m);
            pump();
          }));
    }
  }

  // ================================================================== the run

  private boolean quiet() {
    if (movesAllowed) {
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
      if (s.lastVersion != image.version()) {
        return false; // a map version is still on its way
      }
      for (ArrayDeque<Msg> q : s.queue.values()) {
        if (!q.isEmpty()) {
          return false;
        }
      }
      for (List<Msg> b : s.buffers.values()) {
        if (!b.isEmpty()) {
          return false;
        }
      }
    }
    return true;
  }

  Result run() {
    image = ClusterImage.EMPTY;
    servers.put("A", new Server("A"));
    servers.put("B", new Server("B"));
    apply(new Command.RegisterServer("A", "a:1", 1.0));
    apply(new Command.RegisterServer("B", "b:1", 1.0));
    apply(new Command.SplitRange(0, MID));
    apply(new Command.AssignRange(0, "A", false));
    apply(new Command.AssignRange(MID, "B", false));
    List<String> keys = new ArrayList<>();
    for (int k = 0; k < config.keys(); k++) {
      keys.add("key-" + k);
    }
    for (Server s : servers.values()) {
      Subscriber tracking = new Subscriber() {
        public String name() {
          return s.id;
        }

        public void onVersion(ClusterImage next) {
          lastImages.put(s.id, next);
          s.onVersion(next);
        }
      };
      subscribe(tracking);
      ClusterImage initial = image;
      link("leader", s.id).send(() -> tracking.onVersion(initial));
      at(1, s::consume);
      at(10L * config.maxDelay(), s::resendTick);
    }
    for (int p = 0; p < config.producers(); p++) {
      Producer producer = new Producer(p, keys);
      producers.add(producer);
      subscribe(producer);
      ClusterImage initial = image;
      link("leader", producer.name()).send(() -> producer.onVersion(initial));
    }
    at(3, this::leaderTick);
    long stopMovesAt = 400L * config.maxDelay();
    at(stopMovesAt, () -> movesAllowed = false);
    long maxEvents = 2_000_000;
    while (!events.isEmpty() && eventCount < maxEvents) {
      Event e = events.poll();
      now = e.time;
      eventCount++;
      e.action.run();
      if (!violations.isEmpty()) {
        throw new AssertionError("seed " + seed + ": " + violations.get(0));
      }
    }
    if (!quiet()) {
      throw new AssertionError("seed " + seed + ": no quiescence after " + eventCount
          + " events: " + stateSummary());
    }
    for (Msg m : acked.values()) {
      if (!deliveredCount.containsKey(m.id())) {
        throw new AssertionError("seed " + seed + ": acknowledged message " + m.id() + " (key "
            + m.key() + ") was lost");
      }
    }
    long total = (long) config.producers() * config.messagesPerProducer();
    if (acked.size() != total) {
      throw new AssertionError("seed " + seed + ": " + acked.size() + " of " + total
          + " messages acknowledged");
    }
    return new Result(seed, eventCount, deliveredCount.size(), completed, aborted, refusals,
        image.version());
  }

  private String stateSummary() {
    StringBuilder b = new StringBuilder();
    for (RangeEntry r : image.ranges()) {
      b.append(r.rangeText()).append(' ').append(r.owner()).append(" e").append(r.epoch())
          .append(r.handover() == null ? "" : " " + r.handover()).append("; ");
    }
    for (Producer p : producers) {
      b.append(p.name()).append(" created ").append(p.nextToCreate).append(" inflight ")
          .append(p.inFlight).append(" idle ").append(p.barrier.idle()).append("; ");
    }
    for (Server s : servers.values()) {
      b.append(s.id).append(" sides ").append(s.rules.sides()).append(" buffers ")
          .append(s.buffers.keySet()).append(" awaiting ").append(s.awaitingBacklog)
          .append(" blocked ").append(s.blocked).append("; ");
    }
    return b.toString();
  }
}
