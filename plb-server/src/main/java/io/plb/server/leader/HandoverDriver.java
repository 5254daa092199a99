package io.plb.server.leader;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.ServerState;
import io.plb.core.map.MapDelta;
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
 * in SWITCH longer than {@code drainTimeout} is aborted (reversed). ABORT_SWITCH has no timeout:
 * the reverse run must finish, and the driver logs it while it waits.
 */
public final class HandoverDriver implements PlbStateMachine.LeadershipListener,
    MapPublisher.Listener {
  private static final Logger LOG = LoggerFactory.getLogger(HandoverDriver.class);

  /** Proposes a command through Raft, fenced by the proposer's term. */
  public interface Proposer {
    CompletableFuture<CommandResult> propose(Command command, long proposerTerm);
  }

  /** The budgets and timeouts the driver works to. */
  public record Settings(
      int maxPerServer, int maxTotal, Duration prepareTimeout, Duration drainTimeout,
      Duration suspectAfter, Duration downAfter) {}

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
  private final Map<Key, Seen> seen = new HashMap<>();
  private final Set<Key> aborting = new HashSet<>();
  /** When this leader last heard a heartbeat from each queue server (ticker nanos). */
  private final Map<String, Long> lastHeard = new HashMap<>();
  private final Set<String> suspected = new HashSet<>();
  /** Liveness proposals (server state changes, forced handovers) in flight, by subject. */
  private final Set<String> livenessInFlight = new HashSet<>();
  /** Reports being proposed: a repeat that arrives meanwhile shares the first one's outcome. */
  private final Map<Command, CompletableFuture<ReportOutcome>> reportsInFlight = new HashMap<>();
  private long leadingSince;
  private long term = -1;
  private volatile boolean leading;
  private long lastWaitLog;

  public HandoverDriver(
      MapPublisher publisher,
      Proposer proposer,
      Settings settings,
      Ticker ticker,
      ScheduledExecutorService loop,
      Supplier<String> leaderHint) {
    this.publisher = publisher;
    this.proposer = proposer;
    this.settings = settings;
    this.ticker = ticker;
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
      leadingSince = ticker.nanos();
      seen.clear();
      aborting.clear();
      suspected.clear();
      livenessInFlight.clear();
      reportsInFlight.clear();
      lastHeard.clear();
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
      MapDelta d = CommandProcessor.process(image, command, image.version() + 1);
      if (d.isEmpty()) {
        return CompletableFuture.completedFuture(
            new ReportOutcome(image.version(), true, d.cause()));
      }
      // A report that would change the map must come from the participant whose step it is:
      // the target opens its held queue; the source drains and takes an aborted range back.
      RangeEntry r = image.range(image.indexOfStart(rangeStart));
      String expected = command instanceof Command.HandoverReady
          ? r.handover().target() : r.owner();
      if (!expected.equals(reporter)) {
        throw PlbException.precondition("server " + reporter + " cannot report this step of the "
            + "handover of " + r.rangeText() + "; it is " + expected + "'s to report");
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

  /** A queue server's heartbeat: notes when this leader last heard from it. */
  public CompletableFuture<Long> heartbeat(String serverId, long serverVersion) {
    return onLeader(() -> {
      lastHeard.put(serverId, ticker.nanos());
      return CompletableFuture.completedFuture(publisher.image().version());
    });
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
        waitingOnReverse = true;
        continue;
      }
      if (now - s.sinceNanos() > limit.toNanos() && aborting.add(key)) {
        String why = phase == HandoverPhase.PREPARE
            ? "target " + r.handover().target() + " not ready after " + limit.toMillis() + " ms"
            : "source " + r.owner() + " not drained after " + limit.toMillis() + " ms";
        LOG.warn("aborting handover of {} to {}: {}", r.rangeText(), r.handover().target(), why);
        proposeAbort(key, why).whenComplete((result, error) -> {
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
   * Queue-server liveness from heartbeats (DESIGN §5 "Failures"): silent for suspectAfter →
   * logged as suspect; for downAfter → committed DOWN. A DOWN server's ranges leave it by forced
   * handover (to the handover's target if it was moving, else to the ACTIVE server with the fewest
   * ranges); a handover whose target is DOWN is aborted. A DOWN server heard again is committed
   * ACTIVE; its agent then hands what it still holds to the new owners as late messages. Silence
   * is measured from this leader's takeover at the earliest. Leader loop only.
   */
  private void checkLiveness(ClusterImage image, long now) {
    for (QueueServerInfo s : image.servers().values()) {
      long last = Math.max(lastHeard.getOrDefault(s.id(), leadingSince), leadingSince);
      long silentMillis = (now - last) / 1_000_000;
      if (s.state() == ServerState.DOWN) {
        if (lastHeard.containsKey(s.id()) && silentMillis < settings.suspectAfter().toMillis()) {
          proposeLiveness("server:" + s.id(),
              new Command.UpdateServer(s.id(), null, null, ServerState.ACTIVE),
              "queue server " + s.id() + " is heard again: ACTIVE");
        }
        continue;
      }
      if (silentMillis > settings.downAfter().toMillis()) {
        proposeLiveness("server:" + s.id(),
            new Command.UpdateServer(s.id(), null, null, ServerState.DOWN),
            "queue server " + s.id() + " silent for " + silentMillis + " ms: DOWN");
      } else if (silentMillis > settings.suspectAfter().toMillis()) {
        if (suspected.add(s.id())) {
          LOG.warn("queue server {} is suspect: no heartbeat for {} ms", s.id(), silentMillis);
        }
      } else if (suspected.remove(s.id())) {
        LOG.info("queue server {} is heard again", s.id());
      }
    }
    for (RangeEntry r : image.ranges()) {
      if (!r.isAssigned()) {
        continue;
      }
      QueueServerInfo owner = image.server(r.owner());
      Handover h = r.handover();
      if (owner != null && owner.state() == ServerState.DOWN) {
        if (h != null && h.phase() == HandoverPhase.PREPARE) {
          proposeLiveness("range:" + r.start(), new Command.AbortHandover(r.start(),
              r.epoch() + 1, "source " + r.owner() + " is DOWN"), "aborting the handover of "
              + r.rangeText() + ": source " + r.owner() + " is DOWN");
          continue;
        }
        String target = h != null && isActive(image, h.target()) ? h.target()
            : image.leastLoadedActive(r.owner());
        if (target == null) {
          continue; // no ACTIVE server to take it; logged by the caller's next round
        }
        proposeLiveness("range:" + r.start(), new Command.ForceHandover(r.start(), r.epoch(),
            target), "forced handover of " + r.rangeText() + " off DOWN " + r.owner() + " to "
            + target);
      } else if (h != null && h.phase() != HandoverPhase.ABORT_SWITCH
          && !isActive(image, h.target())) {
        proposeLiveness("range:" + r.start(), new Command.AbortHandover(r.start(),
            r.epoch() + 1, "target " + h.target() + " is " + stateOf(image, h.target())),
            "aborting the handover of " + r.rangeText() + ": target " + h.target() + " is "
            + stateOf(image, h.target()));
      }
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

  private static boolean isActive(ClusterImage image, String id) {
    QueueServerInfo s = image.server(id);
    return s != null && s.state() == ServerState.ACTIVE;
  }

  private static String stateOf(ClusterImage image, String id) {
    QueueServerInfo s = image.server(id);
    return s == null ? "gone" : s.state().name();
  }

  private CompletableFuture<CommandResult> proposeAbort(Key key, String reason) {
    return proposer.propose(
        new Command.AbortHandover(key.rangeStart(), key.handoverEpoch(), reason), term);
  }

  private Duration timeoutOf(HandoverPhase phase) {
    return switch (phase) {
      case PREPARE -> settings.prepareTimeout();
      case SWITCH -> settings.drainTimeout();
      default -> null;
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
