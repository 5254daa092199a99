package io.plb.server.leader;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HistoryState;
import io.plb.core.load.LoadAggregator;
import io.plb.core.load.LoadReport;
import io.plb.core.map.ClusterImage;
import io.plb.server.statemachine.PlbStateMachine;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's telemetry intake (DESIGN §6): takes the queue servers' load reports, sums them per
 * history bucket with the pure {@link LoadAggregator}, and proposes one {@code AppendLoadSamples}
 * entry per bucket when its time is up.
 *
 * <p><b>Thread model.</b> One thread, this intake's own loop: reports, ticks and leadership
 * changes are queued on it, so the aggregator needs no lock and a slow Raft round never holds up
 * the handover driver. Proposals are asynchronous and carry the term in which this node became
 * leader, so a deposed leader's bucket is rejected when applied.
 *
 * <p><b>Leader change.</b> A new leader starts from the committed history: it continues after the
 * newest committed bucket and knows, per server, the last report that history counts, so a report
 * resent to it is not counted twice. The reports the old leader had summed for a bucket it had not
 * yet committed are lost with it: the history then misses up to one bucket per leader change, and
 * the new leader's first bucket records how much of it it covered.
 *
 * <p><b>Layout.</b> A new history is laid out as this node's configuration says. Once buckets
 * exist, their widths stand: a leader configured with other widths keeps the committed ones (and
 * says so in its log), so a configuration mistake on one node cannot stop the history.
 */
public final class TelemetryIntake implements PlbStateMachine.LeadershipListener {
  private static final Logger LOG = LoggerFactory.getLogger(TelemetryIntake.class);

  private final HandoverDriver.Proposer proposer;
  private final Supplier<HistoryState> committed;
  private final Supplier<ClusterImage> image;
  private final HistoryLayout configured;
  private final LongSupplier wallMillis;
  private final ScheduledExecutorService loop;
  private final Supplier<String> leaderHint;
  private final AtomicLong proposed = new AtomicLong();
  private final AtomicLong failed = new AtomicLong();
  private final AtomicLong reportsQueued = new AtomicLong();
  private LoadAggregator aggregator;
  private ScheduledFuture<?> ticker;
  private long term = -1;
  private volatile boolean leading;

  /**
   * @param committed the history state as applied on this node
   * @param wallMillis wall-clock milliseconds (buckets are labelled with wall time)
   * @param loop a single-thread executor owned by this intake
   */
  public TelemetryIntake(HandoverDriver.Proposer proposer, Supplier<HistoryState> committed,
      Supplier<ClusterImage> image, HistoryLayout configured, LongSupplier wallMillis,
      ScheduledExecutorService loop, Supplier<String> leaderHint) {
    this.proposer = proposer;
    this.committed = committed;
    this.image = image;
    this.configured = configured.check();
    this.wallMillis = wallMillis;
    this.loop = loop;
    this.leaderHint = leaderHint;
  }

  // ------------------------------------------------------------------ leadership

  @Override
  public void onLeaderReady(long newTerm) {
    run(() -> {
      HistoryState state = committed.get();
      HistoryLayout layout = layoutFor(state);
      aggregator = new LoadAggregator(layout, state, wallMillis.getAsLong());
      term = newTerm;
      leading = true;
      if (ticker != null) {
        ticker.cancel(false);
      }
      long period = Math.max(10, Math.min(250, layout.bucketMillis() / 4));
      ticker = loop.scheduleWithFixedDelay(this::tick, period, period, TimeUnit.MILLISECONDS);
      LOG.info("telemetry intake leading in term {}: {} ms buckets, continuing after the bucket "
          + "at {} ms", newTerm, layout.bucketMillis(), state.lastBucketMillis());
    });
  }

  @Override
  public void onNotLeader() {
    run(() -> {
      if (aggregator != null && aggregator.openReports() > 0) {
        LOG.info("no longer leading: the open load bucket ({} reports) is dropped",
            aggregator.openReports());
      }
      aggregator = null;
      term = -1;
      leading = false;
      if (ticker != null) {
        ticker.cancel(false);
        ticker = null;
      }
    });
  }

  /** Whether this intake takes reports (this node is a ready leader). */
  public boolean isLeading() {
    return leading;
  }

  /** The committed layout's widths if there is a history, else the configured layout. */
  private HistoryLayout layoutFor(HistoryState state) {
    HistoryLayout history = state.layout();
    if (history == null || history.sameWidths(configured)) {
      return configured;
    }
    HistoryLayout merged = new HistoryLayout(history.bucketMillis(),
        configured.fineRetentionMillis(), history.coarseBucketMillis(),
        configured.coarseRetentionMillis(), configured.hotKeys());
    try {
      merged.check();
    } catch (PlbException e) {
      merged = history;
    }
    LOG.warn("this node is configured for {} ms / {} ms history buckets, but the history is laid "
        + "out in {} ms / {} ms buckets: keeping the history's widths", configured.bucketMillis(),
        configured.coarseBucketMillis(), history.bucketMillis(), history.coarseBucketMillis());
    return merged;
  }

  // ------------------------------------------------------------------ reports

  /**
   * Refuses a report from a server the map does not list, on the caller's thread: checked before
   * the report is read or queued, so a flood of them costs a map lookup each and nothing else.
   *
   * @throws PlbException NOT_FOUND naming the server
   */
  public void checkRegistered(String serverId) {
    if (image.get().server(serverId) == null) {
      throw PlbException.notFound("queue server " + serverId
          + " is not registered; register it before it reports load");
    }
  }

  /** Reports queued on the intake's loop since start. */
  public long reportsQueued() {
    return reportsQueued.get();
  }

  /**
   * Counts one report from a registered queue server.
   *
   * @return the aggregator's verdict and the bucket it counted in; fails with a
   *     {@link PlbException} (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE when not leading)
   */
  public CompletableFuture<LoadAggregator.Offer> report(LoadReport report) {
    CompletableFuture<LoadAggregator.Offer> out = new CompletableFuture<>();
    try {
      checkRegistered(report.serverId());
    } catch (PlbException e) {
      return CompletableFuture.failedFuture(e);
    }
    reportsQueued.incrementAndGet();
    boolean queued = run(() -> {
      try {
        if (aggregator == null) {
          throw new PlbException(ErrorCode.UNAVAILABLE,
              "this node is not the leader" + leaderHint.get());
        }
        report.check();
        checkRegistered(report.serverId()); // again: it may have been removed since
        out.complete(aggregator.offer(report, wallMillis.getAsLong()));
      } catch (RuntimeException e) {
        out.completeExceptionally(e);
      }
    });
    if (!queued) {
      out.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE, "the node is stopping"));
    }
    return out;
  }

  /** Buckets proposed and buckets whose proposal failed, since start. */
  public long bucketsProposed() {
    return proposed.get();
  }

  public long bucketsFailed() {
    return failed.get();
  }

  // ------------------------------------------------------------------ the loop

  private void tick() {
    if (aggregator == null) {
      return;
    }
    long proposerTerm = term;
    for (AppendLoadSamples entry : aggregator.due(wallMillis.getAsLong())) {
      proposed.incrementAndGet();
      proposer.propose(entry, proposerTerm).whenComplete((result, error) -> {
        if (error != null || !result.getOk()) {
          failed.incrementAndGet();
          // The bucket is lost; a later one may still commit (they are appended in time order).
          LOG.warn("load bucket at {} ms not committed: {}", entry.bucket().startMillis(),
              error != null ? error.getMessage() : result.getErrorMessage());
        }
      });
    }
  }

  /** Queues {@code r} on the loop; false when the node is stopping. */
  private boolean run(Runnable r) {
    return LeaderLoop.submit(loop, LOG, "telemetry intake", r);
  }
}
