package io.plb.server.leader;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.handover.Liveness;
import io.plb.core.handover.ReportRule;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.CommandResult;
import io.plb.server.publish.MapPublisher;
import io.plb.server.statemachine.PlbStateMachine;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's handover driver (DESIGN §5): starts moves, turns the queue servers' reports into
 * committed phase changes, and aborts handovers that stop advancing.
 *
 * <p>Thread model: one thread, the leader loop. Every public method and callback only enqueues
 * work on it, so the driver's state needs no locks. Proposals carry the term in which this node
 * became leader: if it has been deposed meanwhile, applying them changes nothing.
 *
 * <p>Timeouts are measured from the moment this leader saw a handover's current phase — for a
 * handover that was already open when it took over, from the takeover — never from a time another
 * node wrote. A handover in PREPARE longer than {@code prepareTimeout} is aborted (cleared); one
 * in SWITCH longer than {@code drainTimeout} is aborted (reversed). One in ABORT_SWITCH longer
 * than {@code abortSwitchTimeout} (its target down, say, with acknowledged messages) is ended
 * without its handback ({@link Command.ExpireAbort}): the source serves the range again, and
 * what either side still holds reaches it as late messages (docs/design.md §5 "The ABORT_SWITCH
 * deadline").
 */
public final class HandoverDriver implements PlbStateMachine.LeadershipListener,
    MapPublisher.Listener {
  private static final Logger LOG = LoggerFactory.getLogger(HandoverDriver.class);

  /** Proposes a command through Raft, fenced by the proposer's term. */
  public interface Proposer {
    CompletableFuture<CommandResult> propose(Command command, long proposerTerm);
  }

  /**
   * The budgets and timeouts the driver works to. {@code lease} is the ownership lease a
   * heartbeat's answer grants; a server's ranges are forced away only once {@code lease +
   * leaseMargin} has passed since its last grant (docs/design.md §5 "Owner leases").
   */
  public record Settings(
      int maxPerServer, int maxTotal, Duration prepareTimeout, Duration drainTimeout,
      Duration abortSwitchTimeout, Duration suspectAfter, Duration downAfter, Duration lease,
      Duration leaseMargin) {}

  /**
   * How recently this node, as leader, has heard from a majority of the Raft group: the latest
   * instant (ticker nanos) such that a majority, this node included, answered it at or after
   * then in its current term; {@link Long#MIN_VALUE} when it does not lead. A grant made after a
   * majority answered since the heartbeat arrived cannot overlap a newer leader's term: that
   * leader's election needed a vote from one of them, cast after its answer.
   */
  @FunctionalInterface
  public interface QuorumContact {
    long majorityHeardSince();
  }

  /** The answer to a heartbeat: the leader's map version and the lease granted (0: none). */
  public record Grant(long version, long leaseMillis, String detail) {}

  /**
   * A heartbeat waiting for the proof that this node still leads before its lease is granted.
   * The proof must hold on two polls in a row: a follower's answer that carries a newer term
   * also counts as an answer until this node has stepped down, a moment later.
   */
  private static final class PendingGrant {
    final String serverId;
    final long receivedNanos;
    final long term;
    final CompletableFuture<Grant> reply;
    boolean proven;

    PendingGrant(String serverId, long receivedNanos, long term, CompletableFuture<Grant> reply) {
      this.serverId = serverId;
      this.receivedNanos = receivedNanos;
      this.term = term;
      this.reply = reply;
    }
  }

  /** Heartbeats waiting for a grant, at most; more are refused (RESOURCE_EXHAUSTED). */
  static final int MAX_PENDING_GRANTS = 1024;
  /** How long a grant waits for a majority's answer before the heartbeat is refused. */
  private static final long GRANT_WAIT_NANOS = 2_000_000_000L;

  /** An open handover as this leader sees it. */
  public record Open(RangeEntry range, long handoverEpoch, long ageMillis, long timeoutMillis) {}

  /** What a move produced. */
  public record Started(long version, long handoverEpoch) {}

  /** What a report produced. */
  public record ReportOutcome(long version, boolean ignored, String detail) {}

  private record Key(long rangeStart, long handoverEpoch) {}

  private record Seen(HandoverPhase phase, long sinceNanos) {}

  private final MapPublisher publisher;
  private final Proposer proposer;
  private final Settings settings;
  private final Ticker ticker;
  private final ScheduledExecutorService loop;
  private final Supplier<String> leaderHint;
  private final QuorumContact quorum;
  private final Map<Key, Seen> seen = new HashMap<>();
  private final Set<Key> aborting = new HashSet<>();
  /** Heartbeats, grants and the liveness and lease decisions on them (ticker nanos). */
  private final Liveness liveness;
  private final List<PendingGrant> pendingGrants = new ArrayList<>();
  private boolean grantPollScheduled;
  /** Liveness proposals (server state changes, forced handovers) in flight, by subject. */
  private final Set<String> livenessInFlight = new HashSet<>();
  /** Reports being proposed: a repeat that arrives meanwhile shares the first one's outcome. */
  private final Map<Command, CompletableFuture<ReportOutcome>> reportsInFlight = new HashMap<>();
  private long term = -1;
  private volatile boolean leading;
  private long lastWaitLog;

  public HandoverDriver(
      MapPublisher publisher,
      Proposer proposer,
      Settings settings,
      Ticker ticker,
      ScheduledExecutorService loop,
      Supplier<String> leaderHint,
      QuorumContact quorum) {
    this.publisher = publisher;
    this.quorum = quorum;
    this.proposer = proposer;
    this.settings = settings;
    this.ticker = ticker;
    this.liveness = new Liveness(settings.suspectAfter().toNanos(),
        settings.downAfter().toNanos(), settings.lease().plus(settings.leaseMargin()).toNanos());
    this.loop = loop;
    this.leaderHint = leaderHint;
    loop.scheduleWithFixedDelay(this::reconcile, 100, 100, TimeUnit.MILLISECONDS);
    publisher.addListener(this);
  }

  // ------------------------------------------------------------------ leadership

  @Override
  public void onLeaderReady(long newTerm) {
    run(() -> {
      term = newTerm;
      leading = true;
      liveness.takeOver(ticker.nanos());
      seen.clear();
      aborting.clear();
      livenessInFlight.clear();
      reportsInFlight.clear();
      failPendingGrants("leadership changed");
      LOG.info("leading in term {}: driving {} open handover(s), timeouts start now", newTerm,
          countOpen(publisher.image()));
      reconcile();
    });
  }

  @Override
  public void onNotLeader() {
    run(() -> {
      if (term >= 0) {
        LOG.info("no longer leading (was term {}): handover driver idle", term);
      }
      term = -1;
      leading = false;
      seen.clear();
      aborting.clear();
      failPendingGrants("this node is no longer the leader");
      reportsInFlight.clear();
    });
  }

  @Override
  public void onNewVersion(long version) {
    run(this::reconcile);
  }

  /** Whether the driver is active (this node is a ready leader). */
  public boolean isLeading() {
    return leading;
  }

  // ------------------------------------------------------------------ operations

  /** Opens a handover of the range starting at {@code rangeStart} to {@code target}. */
  public CompletableFuture<Started> move(long rangeStart, String target) {
    return move(rangeStart, null, target, null);
  }

  /**
   * Opens a handover as {@link #move(long, String)} does, for the balancer: the range must still
   * end at {@code rangeEnd} (null: any end) — the map may have changed since the plan — and the
   * committed entry carries {@code cause}. The driver's limits apply as to any move.
   */
  public CompletableFuture<Started> move(long rangeStart, Long rangeEnd, String target,
      io.plb.core.map.ActionCause cause) {
    return onLeader(() -> {
      ClusterImage image = publisher.image();
      int i = image.indexOfStart(rangeStart);
      if (i < 0) {
        throw PlbException.notFound("no range starts at " + Ring.hex(rangeStart) + "; it lies in "
            + image.rangeFor(rangeStart).rangeText());
      }
      RangeEntry r = image.range(i);
      if (rangeEnd != null && r.end() != rangeEnd) {
        throw PlbException.precondition("range " + r.rangeText() + " no longer ends at "
            + Ring.hexEnd(rangeEnd) + "; the map changed since the plan");
      }
      Command c = new Command.StartHandover(r.start(), r.end(), r.epoch(), target,
          settings.maxPerServer(), settings.maxTotal(), cause);
      CommandProcessor.validate(image, c);
      long epoch = r.epoch() + 1;
      return proposer.propose(c, term).thenApply(result -> {
        requireOk(result);
        LOG.info("handover of {} from {} to {} opened at version {} (epoch {})", r.rangeText(),
            r.owner(), target, result.getVersion(), epoch);
        return new Started(result.getVersion(), epoch);
      });
    });
  }

  /** Aborts the open handover of the range starting at {@code rangeStart}. */
  public CompletableFuture<Long> abort(long rangeStart, String reason) {
    return onLeader(() -> {
      ClusterImage image = publisher.image();
      int i = image.indexOfStart(rangeStart);
      if (i < 0) {
        throw PlbException.notFound("no range starts at " + Ring.hex(rangeStart));
      }
      RangeEntry r = image.range(i);
      if (r.handover() == null) {
        throw PlbException.precondition("range " + r.rangeText() + " has no open handover");
      }
      if (r.handover().phase() == HandoverPhase.ABORT_SWITCH) {
        throw PlbException.precondition("the handover of " + r.rangeText()
            + " is already being reversed");
      }
      Key key = new Key(r.start(), r.epoch() + 1);
      return proposeAbort(key, reason).thenApply(result -> {
        requireOk(result);
        return result.getVersion();
      });
    });
  }

  /**
   * A queue server's report. Late and duplicated reports are answered "ignored" at once, without
   * a log entry; a repeat of a report still being proposed shares its outcome (an agent resends
   * what it has no answer for, so under a slow commit each resend would otherwise be proposed and
   * rejected when applied, one log entry each); the rest are proposed (and checked again when
   * applied).
   */
  public CompletableFuture<ReportOutcome> report(Command command, long rangeStart,
      String reporter) {
    return onLeader(() -> {
      ClusterImage image = publisher.image();
      ReportRule.Check check = ReportRule.check(image, command, rangeStart, reporter);
      if (check.verdict() == ReportRule.Verdict.IGNORED) {
        return CompletableFuture.completedFuture(
            new ReportOutcome(image.version(), true, check.delta().cause()));
      }
      if (check.verdict() == ReportRule.Verdict.NOT_THE_REPORTERS_STEP) {
        throw PlbException.precondition("server " + reporter + " cannot report this step of the "
            + "handover of " + image.range(image.indexOfStart(rangeStart)).rangeText()
            + "; it is " + check.expected() + "'s to report");
      }
      CompletableFuture<ReportOutcome> same = reportsInFlight.get(command);
      if (same != null) {
        return same;
      }
      CompletableFuture<ReportOutcome> out = proposer.propose(command, term).thenApply(result -> {
        requireOk(result);
        return new ReportOutcome(result.getVersion(), result.getIgnored(),
            result.getIgnored() ? result.getErrorMessage() : command.describe());
      });
      reportsInFlight.put(command, out);
      out.whenComplete((v, e) -> run(() -> reportsInFlight.remove(command, out)));
      return out;
    });
  }

  /**
   * A queue server's heartbeat: notes when this leader last heard from it, and answers with an
   * ownership lease (docs/design.md §5 "Owner leases") when the server is ACTIVE or DRAINING and
   * not being declared DOWN. The grant waits until a majority of the Raft group has answered
   * this leader since the heartbeat arrived, so no newer leader can have taken over before it;
   * a server that is not registered is refused (NOT_FOUND) and leaves no trace.
   */
  public CompletableFuture<Grant> heartbeat(String serverId, long serverVersion) {
    long received = ticker.nanos();
    return onLeader(() -> {
      ClusterImage image = publisher.image();
      QueueServerInfo s = image.server(serverId);
      if (s == null) {
        throw PlbException.notFound("queue server " + serverId + " is not registered");
      }
      liveness.heard(serverId, received);
      String refused = noLease(image, serverId);
      if (refused != null) {
        return CompletableFuture.completedFuture(new Grant(image.version(), 0, refused));
      }
      if (pendingGrants.size() >= MAX_PENDING_GRANTS) {
        throw new PlbException(ErrorCode.RESOURCE_EXHAUSTED, MAX_PENDING_GRANTS
            + " heartbeats are already waiting for a lease");
      }
      CompletableFuture<Grant> reply = new CompletableFuture<>();
      pendingGrants.add(new PendingGrant(serverId, received, term, reply));
      grantLeases();
      return reply;
    });
  }

  /**
   * Grants the waiting heartbeats whose proof of leadership is in: a majority answered after
   * they arrived. Polls every few milliseconds while any wait. Leader loop only.
   */
  private void grantLeases() {
    if (pendingGrants.isEmpty()) {
      return;
    }
    long contact = term < 0 ? Long.MIN_VALUE : quorum.majorityHeardSince();
    long now = ticker.nanos();
    ClusterImage image = publisher.image();
    for (var it = pendingGrants.iterator(); it.hasNext(); ) {
      PendingGrant g = it.next();
      if (g.term != term) {
        it.remove();
        g.reply.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE,
            "leadership changed" + leaderHint.get()));
      } else if (contact != Long.MIN_VALUE && contact - g.receivedNanos >= 0) {
        if (!g.proven) {
          g.proven = true;
          continue;
        }
        it.remove();
        String refused = noLease(image, g.serverId);
        if (refused != null) { // it went DOWN, or away, while the grant waited
          g.reply.complete(new Grant(image.version(), 0, refused));
          continue;
        }
        liveness.granted(g.serverId, now);
        g.reply.complete(new Grant(image.version(), settings.lease().toMillis(), ""));
      } else if (now - g.receivedNanos > GRANT_WAIT_NANOS) {
        it.remove();
        g.reply.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE,
            "this leader has not heard from a majority of the PLB nodes for "
                + GRANT_WAIT_NANOS / 1_000_000 + " ms"));
      }
    }
    if (!pendingGrants.isEmpty() && !grantPollScheduled) {
      grantPollScheduled = true;
      loop.schedule(() -> {
        grantPollScheduled = false;
        grantLeases();
      }, 5, TimeUnit.MILLISECONDS);
    }
  }

  /**
   * Why {@code serverId} may not hold a lease now — it is not registered, DOWN, or being declared
   * DOWN — or null when it may. Leader loop only.
   */
  private String noLease(ClusterImage image, String serverId) {
    return Liveness.noLease(image, serverId, livenessInFlight.contains("server:" + serverId));
  }

  private void failPendingGrants(String why) {
    for (PendingGrant g : pendingGrants) {
      g.reply.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE,
          why + leaderHint.get()));
    }
    pendingGrants.clear();
  }

  /** The open handovers with their ages and deadlines, as this leader sees them. */
  public CompletableFuture<List<Open>> openHandovers() {
    return onLeader(() -> {
      reconcile();
      List<Open> out = new ArrayList<>();
      long now = ticker.nanos();
      for (RangeEntry r : publisher.image().ranges()) {
        if (r.handover() != null) {
          Seen s = seen.get(new Key(r.start(), r.epoch() + 1));
          long age = s == null ? 0 : (now - s.sinceNanos()) / 1_000_000;
          Duration limit = timeoutOf(r.handover().phase());
          out.add(new Open(r, r.epoch() + 1, age, limit == null ? 0 : limit.toMillis()));
        }
      }
      return CompletableFuture.completedFuture(out);
    });
  }

  // ------------------------------------------------------------------ the loop

  /** Notes phase changes and aborts handovers past their deadline. Leader loop only. */
  private void reconcile() {
    if (term < 0) {
      return;
    }
    ClusterImage image = publisher.image();
    long now = ticker.nanos();
    Set<Key> present = new HashSet<>();
    boolean waitingOnReverse = false;
    for (RangeEntry r : image.ranges()) {
      if (r.handover() == null) {
        continue;
      }
      Key key = new Key(r.start(), r.epoch() + 1);
      present.add(key);
      HandoverPhase phase = r.handover().phase();
      Seen s = seen.get(key);
      if (s == null || s.phase() != phase) {
        seen.put(key, new Seen(phase, now));
        aborting.remove(key);
        continue;
      }
      Duration limit = timeoutOf(phase);
      if (limit == null) {
        continue;
      }
      if (phase == HandoverPhase.ABORT_SWITCH) {
        waitingOnReverse = true;
      }
      if (now - s.sinceNanos() > limit.toNanos() && aborting.add(key)) {
        CompletableFuture<CommandResult> proposed;
        if (phase == HandoverPhase.ABORT_SWITCH) {
          String why = "not reversed after " + limit.toMillis() + " ms (target "
              + r.handover().target() + " is " + Liveness.stateOf(image, r.handover().target()) + ")";
          LOG.warn("ending the aborted handover of {} without its handback: {}; what {} holds "
              + "reaches {} as late messages", r.rangeText(), why, r.handover().target(),
              r.owner());
          proposed = proposer.propose(
              new Command.ExpireAbort(key.rangeStart(), key.handoverEpoch(), why), term);
        } else {
          String why = phase == HandoverPhase.PREPARE
              ? "target " + r.handover().target() + " not ready after " + limit.toMillis() + " ms"
              : "source " + r.owner() + " not drained after " + limit.toMillis() + " ms";
          LOG.warn("aborting handover of {} to {}: {}", r.rangeText(), r.handover().target(),
              why);
          proposed = proposeAbort(key, why);
        }
        proposed.whenComplete((result, error) -> {
          if (error != null || !result.getOk()) {
            run(() -> aborting.remove(key)); // try again on a later round
          }
        });
      }
    }
    seen.keySet().retainAll(present);
    aborting.retainAll(present);
    checkLiveness(image, now);
    if (waitingOnReverse && now - lastWaitLog > 10_000_000_000L) {
      lastWaitLog = now;
      LOG.info("waiting for aborted handovers to be reversed by their sources");
    }
  }

  // ------------------------------------------------------------------ liveness

  /**
   * Queue-server liveness from heartbeats: the decisions are {@link Liveness}'s (pure, in
   * plb-core, where its rules are stated); this logs them and proposes each, at most one in
   * flight per subject. Leader loop only.
   */
  private void checkLiveness(ClusterImage image, long now) {
    Liveness.Round round = liveness.check(image, now);
    for (String id : round.suspected()) {
      LOG.warn("queue server {} is suspect: no heartbeat for over {} ms", id,
          settings.suspectAfter().toMillis());
    }
    for (String id : round.recovered()) {
      LOG.info("queue server {} is heard again", id);
    }
    for (Liveness.Proposal p : round.proposals()) {
      proposeLiveness(p.subject(), p.command(), p.why());
    }
  }

  private void proposeLiveness(String subject, Command command, String what) {
    if (!livenessInFlight.add(subject)) {
      return;
    }
    LOG.warn("{}", what);
    proposer.propose(command, term).whenComplete((result, error) -> run(() -> {
      livenessInFlight.remove(subject);
      if (error != null || !result.getOk()) {
        LOG.info("{} not committed: {}", what, error != null ? error.getMessage()
            : result.getErrorMessage());
      }
    }));
  }

  private CompletableFuture<CommandResult> proposeAbort(Key key, String reason) {
    return proposer.propose(
        new Command.AbortHandover(key.rangeStart(), key.handoverEpoch(), reason), term);
  }

  private Duration timeoutOf(HandoverPhase phase) {
    return switch (phase) {
      case PREPARE -> settings.prepareTimeout();
      case SWITCH -> settings.drainTimeout();
      case ABORT_SWITCH -> settings.abortSwitchTimeout();
      case COMPLETE -> null; // never committed: COMPLETE is the ownership change
    };
  }

  /** How many ranges of {@code image} have a handover open. */
  static int countOpen(ClusterImage image) {
    int n = 0;
    for (RangeEntry r : image.ranges()) {
      if (r.handover() != null) {
        n++;
      }
    }
    return n;
  }

  /** The committed version of an accepted command; a refused one throws its error. */
  static long requireOk(CommandResult result) {
    if (!result.getOk()) {
      throw new PlbException(ErrorCode.valueOf(result.getErrorCode()), result.getErrorMessage());
    }
    return result.getVersion();
  }

  // ------------------------------------------------------------------ plumbing

  private interface LeaderWork<T> {
    CompletableFuture<T> run();
  }

  /** Runs {@code work} on the loop if this node leads; refuses with the leader's address if not. */
  private <T> CompletableFuture<T> onLeader(LeaderWork<T> work) {
    CompletableFuture<T> out = new CompletableFuture<>();
    run(() -> {
      if (term < 0) {
        out.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE,
            "this node is not the leader" + leaderHint.get()));
        return;
      }
      try {
        work.run().whenComplete((v, e) -> {
          if (e != null) {
            out.completeExceptionally(e instanceof java.util.concurrent.CompletionException
                && e.getCause() != null ? e.getCause() : e);
          } else {
            out.complete(v);
          }
        });
      } catch (RuntimeException e) {
        out.completeExceptionally(e);
      }
    });
    return out;
  }

  private void run(Runnable r) {
    LeaderLoop.submit(loop, LOG, "handover driver", r);
  }
}
