package io.plb.server;

import io.plb.core.time.Ticker;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pushes a new commit index to the followers as soon as they can take it, so that map watchers
 * on followers see a committed change within milliseconds rather than with the next periodic
 * heartbeat.
 *
 * <p>Why waiting is needed: a follower sets its commit index to {@code min(leader's commit, its
 * own flushed log index)} when an append or heartbeat arrives, and learns nothing more until the
 * next one. The leader commits as soon as one follower has the entry; the other may still be
 * flushing it. A heartbeat sent at that moment (the leader sends one round per new ReadIndex)
 * reaches the slower follower before its flush, so it stays one commit behind until the periodic
 * heartbeat, half the minimum election timeout later. A second read does not help: the leader
 * answers a read for an index a majority has already acknowledged without any heartbeat. So the
 * single nudge is sent only when every live follower has acknowledged (hence flushed) the entry,
 * or after {@code maxWait} if one does not.
 *
 * <p>Thread model: {@link #committed} is called from any thread; all decisions run on the given
 * single-threaded {@code executor}, which polls the leader's follower progress every
 * {@code pollNanos} while a nudge is pending and does nothing otherwise. Pending state is guarded
 * by {@code this}. Invariant: at most one nudge per pending target; targets only grow.
 */
final class FollowerCommitPush {
  private static final Logger LOG = LoggerFactory.getLogger(FollowerCommitPush.class);

  /**
   * The leader's view of its followers at one instant: each follower's match index (in any order)
   * and how many followers answered recently enough to count as live.
   */
  record Followers(long[] matchIndices, int live) {}

  /** Reads the leader's follower progress; returns null when this node does not lead. */
  @FunctionalInterface
  interface Probe {
    Followers followers();
  }

  enum Decision {
    /** Some live follower has not acknowledged the target yet: a heartbeat now would be lost. */
    WAIT,
    /** Every live follower holds the target: a heartbeat now sets their commit index. */
    NUDGE,
    /** A live follower is still behind after {@code maxWait}: nudge for the others. */
    NUDGE_LATE
  }

  /**
   * The rule, pure: nudge once as many followers hold {@code target} as are live (a follower that
   * does not answer never reaches a new target, so it is not waited for), or once the wait is
   * over.
   */
  static Decision decide(long target, Followers followers, long waitedNanos, long maxWaitNanos) {
    int matched = 0;
    for (long m : followers.matchIndices()) {
      if (m >= target) {
        matched++;
      }
    }
    if (matched >= followers.live()) {
      return Decision.NUDGE;
    }
    return waitedNanos >= maxWaitNanos ? Decision.NUDGE_LATE : Decision.WAIT;
  }

  private final Probe probe;
  private final Runnable nudge;
  private final ScheduledExecutorService executor;
  private final Ticker ticker;
  private final long pollNanos;
  private final long maxWaitNanos;

  private long target; // guarded by this; 0 = nothing pending
  private long pendingSince; // guarded by this
  private boolean polling; // guarded by this
  private boolean waitedForTarget; // guarded by this: some poll for the pending target said WAIT

  private final AtomicLong nudges = new AtomicLong();
  private final AtomicLong lateNudges = new AtomicLong();
  private final AtomicLong waitedNudges = new AtomicLong();

  FollowerCommitPush(Probe probe, Runnable nudge, ScheduledExecutorService executor,
      Ticker ticker, long pollNanos, long maxWaitNanos) {
    this.probe = probe;
    this.nudge = nudge;
    this.executor = executor;
    this.ticker = ticker;
    this.pollNanos = pollNanos;
    this.maxWaitNanos = maxWaitNanos;
  }

  /** The leader has committed (and applied) {@code index}: get it to the followers. */
  void committed(long index) {
    synchronized (this) {
      if (index <= target) {
        return;
      }
      if (target == 0) {
        pendingSince = ticker.nanos();
      }
      target = index;
      if (polling) {
        return;
      }
      polling = true;
    }
    schedule(0);
  }

  /** Nudges sent since start. */
  long nudges() {
    return nudges.get();
  }

  /** Of {@link #nudges}, those sent after giving up on a slow follower. */
  long lateNudges() {
    return lateNudges.get();
  }

  /**
   * Nudges for which some live follower had not yet acknowledged the entry when the leader's
   * client got its reply: a heartbeat sent at that moment would not have set its commit index.
   */
  long waitedNudges() {
    return waitedNudges.get();
  }

  private void schedule(long delayNanos) {
    try {
      executor.schedule(this::poll, delayNanos, TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException e) {
      synchronized (this) { // shutting down
        polling = false;
        target = 0;
      }
    }
  }

  private void poll() {
    Followers followers;
    try {
      followers = probe.followers();
    } catch (RuntimeException e) {
      LOG.debug("follower progress unavailable: {}", e.toString());
      followers = null;
    }
    long now = ticker.nanos();
    Decision decision;
    long sent;
    long waited;
    boolean hadToWait;
    synchronized (this) {
      if (followers == null) { // not the leader (any more): the new leader's heartbeats carry it
        target = 0;
        polling = false;
        waitedForTarget = false;
        return;
      }
      sent = target;
      waited = now - pendingSince;
      decision = decide(target, followers, waited, maxWaitNanos);
      hadToWait = waitedForTarget;
      if (decision == Decision.WAIT) {
        waitedForTarget = true;
      } else {
        waitedForTarget = false;
        target = 0;
        polling = false;
      }
    }
    if (decision == Decision.WAIT) {
      schedule(pollNanos);
      return;
    }
    nudges.incrementAndGet();
    if (hadToWait) {
      waitedNudges.incrementAndGet();
    }
    if (decision == Decision.NUDGE_LATE) {
      lateNudges.incrementAndGet();
    }
    if (LOG.isDebugEnabled()) {
      LOG.debug("commit {} pushed to followers after {} us ({})", sent, waited / 1000, decision);
    }
    nudge.run();
  }
}
