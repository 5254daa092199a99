package io.plb.server.leader;

import io.plb.client.wire.Wire;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.balance.MoveHistory;
import io.plb.core.balance.Plan;
import io.plb.core.balance.PlanAction;
import io.plb.core.balance.Planner;
import io.plb.core.balancer.LoadForecaster;
import io.plb.core.balancer.PlanInputs;
import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.forecast.ForecasterConfig;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HistoryState;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.Resolution;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.ForecastHealth;
import io.plb.proto.v1.ForecastPoint;
import io.plb.proto.v1.ForecastRequest;
import io.plb.proto.v1.ForecastResponse;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.PlannedAction;
import io.plb.proto.v1.SeriesAccuracy;
import io.plb.proto.v1.ServerUtilisation;
import io.plb.server.config.NodeConfig;
import io.plb.server.publish.MapPublisher;
import io.plb.server.statemachine.PlbStateMachine;
import io.plb.server.storage.StateStore;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's balancer (DESIGN §8): a thin adapter around the pure {@link LoadForecaster} and
 * {@link Planner}. When this node becomes the ready leader it warms a forecaster from the
 * committed load history (the coarse buckets for the seasonal series, the newest fine buckets for
 * the near term), then follows every fine bucket committed after it; every
 * {@code balancer.interval} it plans on the forecast and proposes the plan's actions in order —
 * moves through the {@link HandoverDriver} (whose limits apply to them as to any move), splits and
 * merges as commands — each with its {@link ActionCause}, so the committed change says why.
 *
 * <p><b>Thread model.</b> One thread, the balancer's own loop: leadership changes, ticks, rounds,
 * the outcome of each proposal and every admin request are queued on it, so its state needs no
 * locks, and a slow forecast never holds up the handover driver or the telemetry intake. Status
 * counters are read from the loop too.
 *
 * <p><b>Invariants.</b> At most one round's actions are being proposed at a time; they are proposed
 * one after another, each only after the previous one committed, and the rest of a round is
 * dropped when one fails, when the balancer is paused, or when leadership is lost. Every proposal
 * carries the term in which this node became leader, so a deposed leader's proposal changes
 * nothing. Nothing is proposed while the committed {@link io.plb.core.balancer.BalancerState} says
 * paused; the state is committed, so a new leader obeys it.
 *
 * <p><b>Leader change.</b> A new leader rebuilds the forecaster from the committed history (which
 * survives failover), and the recent moves — for the window budget and the dwell — from the
 * committed changes that carry a cause with its decision time. What the old leader was proposing
 * and had not committed is lost; nothing else.
 */
public final class Balancer implements PlbStateMachine.LeadershipListener {
  private static final Logger LOG = LoggerFactory.getLogger(Balancer.class);
  /** Slice rows read per history page while warming. */
  private static final int PAGE_ROWS = 50_000;

  private final NodeConfig config;
  private final BalancerConfig planning;
  private final PlbStateMachine stateMachine;
  private final MapPublisher publisher;
  private final HandoverDriver driver;
  private final HandoverDriver.Proposer proposer;
  private final LongSupplier wallMillis;
  private final ScheduledExecutorService loop;
  /** Bounds the admin requests (status, dry run, forecast) queued on the loop. */
  private final RequestLimit requests;
  private final Supplier<String> leaderHint;

  private long term = -1;
  private volatile boolean leading;
  private ScheduledFuture<?> ticker;
  private LoadForecaster forecaster;
  private MoveHistory moves = MoveHistory.EMPTY;
  private long leadingSince;
  private long nextRoundAt;
  private boolean roundInFlight;
  private long rounds;
  private long lastRoundMillis;
  private String lastPlan = "";
  private long proposed;
  private long committed;
  private long failed;
  private String lastError = "";

  /**
   * @param wallMillis wall-clock milliseconds (rounds, move times and history buckets use it)
   * @param loop a single-thread executor owned by the balancer
   */
  public Balancer(NodeConfig config, PlbStateMachine stateMachine, MapPublisher publisher,
      HandoverDriver driver, HandoverDriver.Proposer proposer, LongSupplier wallMillis,
      ScheduledExecutorService loop, Supplier<String> leaderHint) {
    this.config = config;
    this.planning = config.balancerConfig();
    this.stateMachine = stateMachine;
    this.publisher = publisher;
    this.driver = driver;
    this.proposer = proposer;
    this.wallMillis = wallMillis;
    this.loop = loop;
    this.leaderHint = leaderHint;
    this.requests = new RequestLimit("the balancer", "leader.maxQueuedRequests",
        config.leaderMaxQueuedRequests());
  }

  // ------------------------------------------------------------------ leadership

  @Override
  public void onLeaderReady(long newTerm) {
    run(() -> {
      stopLeading();
      term = newTerm;
      leading = true;
      leadingSince = wallMillis.getAsLong();
      rounds = 0;
      proposed = 0;
      committed = 0;
      failed = 0;
      lastError = "";
      lastPlan = "";
      lastRoundMillis = 0;
      if (!config.balancerEnabled()) {
        LOG.info("leading in term {}: the balancer is disabled (balancer.enabled = false)",
            newTerm);
        return;
      }
      try {
        start();
      } catch (IOException | RuntimeException e) {
        forecaster = null;
        lastError = "cannot start the balancer: " + e.getMessage();
        LOG.error("{}", lastError, e);
        return;
      }
      nextRoundAt = leadingSince + config.balancerInterval().toMillis();
      long period = Math.max(20, Math.min(1000, Math.min(config.balancerInterval().toMillis(),
          forecaster.settings().fineMillis()) / 2));
      ticker = loop.scheduleWithFixedDelay(this::tick, period, period, TimeUnit.MILLISECONDS);
    });
  }

  @Override
  public void onNotLeader() {
    run(() -> {
      if (term >= 0) {
        LOG.info("no longer leading (was term {}): balancer stopped", term);
      }
      stopLeading();
    });
  }

  private void stopLeading() {
    term = -1;
    leading = false;
    if (ticker != null) {
      ticker.cancel(false);
      ticker = null;
    }
    forecaster = null; // its memory goes with the leadership
    roundInFlight = false;
    moves = MoveHistory.EMPTY;
  }

  /** Whether the balancer serves this leader (this node is a ready leader). */
  public boolean isLeading() {
    return leading;
  }

  /** Builds the forecaster from the committed history, and the recent moves. Loop only. */
  private void start() throws IOException {
    HistoryState state = stateMachine.historyState();
    HistoryLayout layout = state.layout() != null ? state.layout() : config.historyLayout();
    ForecasterConfig fc = config.forecasterConfig(layout.coarseBucketMillis());
    LoadForecaster f = new LoadForecaster(new LoadForecaster.Settings(layout.bucketMillis(),
        layout.coarseBucketMillis(), planning.horizon().toMillis(), planning.quantile(),
        config.costModel(), fc, config.balancerHotKeys()));
    long began = wallMillis.getAsLong();
    long newest = state.lastBucketMillis();
    if (newest >= 0) {
      long[] window = f.warmWindow(newest);
      long recentFrom = newest - (long) (f.settings().recentBuckets() - 1) * layout.bucketMillis();
      List<LoadBucket> fine = readAll(Resolution.FINE, Math.min(window[1], recentFrom), 0);
      f.warm(pages(Resolution.COARSE, window[0], window[1]), fine);
    }
    forecaster = f;
    moves = PlanInputs.recentMoves(publisher.recentChanges(10_000), wallMillis.getAsLong(),
        planning);
    LoadForecaster.Health h = f.health();
    LOG.info("balancer leading in term {}: forecasters warmed from {} coarse buckets ({} filled "
            + "in: no report covered them; {} live slices, {}) in {} ms; {} recent move(s); {}",
        term, h.warmedBuckets(), f.imputedBuckets(),
        h.liveSeries(), f.modelSummary(), wallMillis.getAsLong() - began,
        moves.entries().size(), stateMachine.balancerState().paused() ? "PAUSED" : "running");
  }

  // ------------------------------------------------------------------ the loop

  private void tick() {
    if (term < 0 || forecaster == null) {
      return;
    }
    try {
      follow();
    } catch (IOException | RuntimeException e) {
      lastError = "reading the load history failed: " + e.getMessage();
      LOG.warn("{}", lastError);
      return;
    }
    long now = wallMillis.getAsLong();
    if (now >= nextRoundAt && !roundInFlight) {
      nextRoundAt = now + config.balancerInterval().toMillis();
      round(now);
    }
  }

  /** Takes the fine buckets committed since the newest one the forecaster has. Loop only. */
  private void follow() throws IOException {
    long newest = stateMachine.historyState().lastBucketMillis();
    if (newest <= forecaster.newestFineMillis()) {
      return;
    }
    Iterator<LoadBucket> it = pages(Resolution.FINE, forecaster.newestFineMillis() + 1, 0);
    long imputed = forecaster.imputedBuckets();
    while (it.hasNext()) {
      forecaster.observe(it.next());
    }
    if (forecaster.imputedBuckets() > imputed) {
      LOG.warn("no load report covered {} coarse bucket(s) before {}: filled with their forecast"
          + " (a telemetry outage is not taken as an idle cluster)",
          forecaster.imputedBuckets() - imputed,
          java.time.Instant.ofEpochMilli(forecaster.newestFineMillis()));
    }
  }

  private void round(long now) {
    if (stateMachine.balancerState().paused()) {
      lastPlan = "paused by " + stateMachine.balancerState().by() + ": no round";
      return;
    }
    Plan plan;
    try {
      plan = plan(now);
    } catch (RuntimeException e) {
      lastError = "planning failed: " + e.getMessage();
      LOG.warn("{}", lastError, e);
      return;
    }
    rounds++;
    lastRoundMillis = now;
    lastPlan = summary(plan);
    moves = MoveHistory.of(recentOnly(now), plan.engaged());
    if (plan.isEmpty()) {
      LOG.debug("balancer round {}: {}", rounds, lastPlan);
      return;
    }
    LOG.info("balancer round {}: {}", rounds, lastPlan);
    roundInFlight = true;
    proposeFrom(plan, 0, now, rounds, term);
  }

  private List<MoveHistory.Entry> recentOnly(long now) {
    long keep = Math.max(planning.moveWindow().toMillis(), planning.minDwell().toMillis());
    List<MoveHistory.Entry> out = new ArrayList<>();
    for (MoveHistory.Entry e : moves.entries()) {
      if (e.atMillis() > now - keep) {
        out.add(e);
      }
    }
    return out;
  }

  private Plan plan(long now) {
    ClusterImage image = publisher.image();
    return Planner.plan(PlanInputs.ranges(image, forecaster::backlog),
        PlanInputs.servers(image, config.capacityPerWeight()), forecaster.outlook(), planning,
        now, moves);
  }

  /** Proposes action {@code i} of the plan, then the next once it has committed. Loop only. */
  private void proposeFrom(Plan plan, int i, long decidedAt, long round, long roundTerm) {
    if (term != roundTerm) {
      return; // leadership changed: stopLeading reset the round state, a new term owns it now
    }
    if (i >= plan.actions().size()) {
      roundInFlight = false;
      return;
    }
    if (stateMachine.balancerState().paused()) {
      LOG.info("balancer paused: {} planned action(s) dropped", plan.actions().size() - i);
      roundInFlight = false;
      return;
    }
    PlanAction action = plan.actions().get(i);
    ActionCause cause = PlanInputs.causeOf(action, modelOf(action), decidedAt, round);
    proposed++;
    CompletableFuture<Long> out;
    try {
      out = submit(action, cause, roundTerm);
    } catch (RuntimeException e) {
      out = CompletableFuture.failedFuture(e);
    }
    out.whenComplete((version, error) -> run(() -> {
      if (term != roundTerm) {
        return;
      }
      if (error != null) {
        failed++;
        Throwable t = error instanceof java.util.concurrent.CompletionException
            && error.getCause() != null ? error.getCause() : error;
        lastError = action.describe() + ": " + t.getMessage();
        LOG.info("balancer action not taken ({} of the round dropped): {}",
            plan.actions().size() - i - 1, lastError);
        roundInFlight = false;
        return;
      }
      committed++;
      LOG.info("balancer committed at version {}: {}", version, action.describe());
      if (action instanceof PlanAction.Move m) {
        moves = moves.withMove(new MoveHistory.Entry(decidedAt, m.rangeStart(), m.rangeEnd(),
            m.from(), m.to()));
      }
      proposeFrom(plan, i + 1, decidedAt, round, roundTerm);
    }));
  }

  private CompletableFuture<Long> submit(PlanAction action, ActionCause cause, long roundTerm) {
    if (action instanceof PlanAction.Move m) {
      return driver.move(m.rangeStart(), m.rangeEnd(), m.to(), cause)
          .thenApply(HandoverDriver.Started::version);
    }
    Command c;
    if (action instanceof PlanAction.Split s) {
      c = new Command.SplitRange(s.rangeStart(), s.at(), cause);
    } else if (action instanceof PlanAction.Merge g) {
      c = new Command.MergeRanges(g.leftStart(), g.rightStart(), cause);
    } else {
      throw new IllegalStateException("unknown action " + action);
    }
    CommandProcessor.validate(publisher.image(), c); // bad input never reaches the log
    return proposer.propose(c, roundTerm).thenApply(HandoverDriver::requireOk);
  }

  private String modelOf(PlanAction action) {
    if (action instanceof PlanAction.Move m) {
      return forecaster.modelOfRange(m.rangeStart(), m.rangeEnd());
    }
    long start = action instanceof PlanAction.Split s ? s.rangeStart()
        : ((PlanAction.Merge) action).leftStart();
    RangeEntry r = publisher.image().rangeFor(start);
    return forecaster.modelOfRange(r.start(), r.end());
  }

  static String summary(Plan plan) {
    String criterion = plan.criterion() + " " + fmt(plan.criterionBefore());
    if (plan.isEmpty()) {
      return "no action: " + criterion + (plan.notes().isEmpty() ? ""
          : " (" + String.join("; ", plan.notes()) + ")");
    }
    return plan.actions().size() + " action(s): " + plan.moves().size() + " move(s), "
        + plan.splits().size() + " split(s), " + plan.merges().size() + " merge(s); "
        + criterion + " -> " + fmt(plan.criterionAfter());
  }

  private static String fmt(double v) {
    return String.format(Locale.ROOT, "%.3f", v);
  }

  // ------------------------------------------------------------------ admin requests

  /** The balancer's status on this leader. */
  public CompletableFuture<BalancerStatus> status() {
    return onLeader(() -> {
      var state = stateMachine.balancerState();
      BalancerStatus.Builder b = BalancerStatus.newBuilder()
          .setLeaderId(config.nodeId())
          .setEnabled(config.balancerEnabled())
          .setPaused(state.paused())
          .setPausedBy(state.by())
          .setIntervalMillis(config.balancerInterval().toMillis())
          .setRounds(rounds)
          .setLastRoundMillis(lastRoundMillis)
          .setLastPlan(lastPlan)
          .setActionsProposed(proposed)
          .setActionsCommitted(committed)
          .setActionsFailed(failed)
          .setHandoversInFlight(HandoverDriver.countOpen(publisher.image()))
          .setLastError(lastError)
          .setLeadingSinceMillis(leadingSince);
      if (forecaster != null) {
        LoadForecaster.Health h = forecaster.health();
        ForecastHealth.Builder fh = ForecastHealth.newBuilder()
            .setLiveSeries(h.liveSeries())
            .setInFallback(h.inFallback())
            .setCoarseBuckets(h.coarseBuckets())
            .setNewestBucketMillis(Math.max(0, h.newestFineMillis()))
            .setWarmedBuckets(h.warmedBuckets())
            .setFilledBuckets(forecaster.imputedBuckets());
        h.servedModels().forEach(fh::putServedModels);
        b.setForecast(fh);
      }
      return b.build();
    });
  }

  /** What the balancer would do now, proposing nothing. */
  public CompletableFuture<PlanResponse> dryRun() {
    return onLeader(() -> {
      requireForecaster();
      follow();
      ClusterImage image = publisher.image();
      long now = wallMillis.getAsLong();
      Plan plan = plan(now);
      PlanResponse.Builder b = PlanResponse.newBuilder()
          .setMapVersion(image.version())
          .setPaused(stateMachine.balancerState().paused())
          .setCriterion(plan.criterion().name())
          .setCriterionBefore(plan.criterionBefore())
          .setCriterionAfter(plan.criterionAfter())
          .setActing(plan.acting())
          .addAllNotes(plan.notes())
          .setModel(forecaster.modelSummary());
      for (PlanAction a : plan.actions()) {
        PlannedAction.Builder p = PlannedAction.newBuilder()
            .setCause(Wire.toProto(PlanInputs.causeOf(a, modelOf(a), now, rounds + 1)))
            .setDescribe(a.describe());
        if (a instanceof PlanAction.Move m) {
          p.setKind(PlannedAction.Kind.MOVE).setRangeStart(m.rangeStart())
              .setRangeEnd(m.rangeEnd()).setFrom(m.from()).setTo(m.to());
        } else if (a instanceof PlanAction.Split s) {
          p.setKind(PlannedAction.Kind.SPLIT).setRangeStart(s.rangeStart()).setAt(s.at());
        } else if (a instanceof PlanAction.Merge g) {
          p.setKind(PlannedAction.Kind.MERGE).setRangeStart(g.leftStart())
              .setRightStart(g.rightStart());
        }
        b.addActions(p);
      }
      for (QueueServerInfo s : image.servers().values()) {
        Double before = plan.utilisationBefore().get(s.id());
        Double after = plan.utilisationAfter().get(s.id());
        b.addServers(ServerUtilisation.newBuilder()
            .setServerId(s.id())
            .setBefore(before == null ? Double.NaN : before)
            .setAfter(after == null ? Double.NaN : after)
            .setCapacity(s.capacity() * config.capacityPerWeight()));
      }
      return b.build();
    });
  }

  /** Actual against forecast for a server's ranges, a range, or the whole ring. */
  public CompletableFuture<ForecastResponse> forecast(ForecastRequest r) {
    return onLeader(() -> {
      int buckets = r.getBuckets() == 0 ? 12 : r.getBuckets();
      if (buckets < 0 || buckets > LoadForecaster.KEPT) {
        throw PlbException.invalid("buckets must be 1.." + LoadForecaster.KEPT + " (0: 12), got "
            + Integer.toUnsignedString(r.getBuckets()));
      }
      ClusterImage image = publisher.image();
      List<long[]> ranges = new ArrayList<>();
      String scope;
      switch (r.getScopeCase()) {
        case SERVER_ID -> {
          io.plb.core.command.Limits.checkServerId(r.getServerId());
          if (image.server(r.getServerId()) == null) {
            throw PlbException.notFound("no queue server with id " + r.getServerId());
          }
          for (RangeEntry e : image.ranges()) {
            if (e.owner().equals(r.getServerId())) {
              ranges.add(new long[] {e.start(), e.end()});
            }
          }
          scope = "server " + r.getServerId() + " (" + ranges.size() + " ranges)";
        }
        case RANGE_START -> {
          int i = image.indexOfStart(r.getRangeStart());
          if (i < 0) {
            throw PlbException.notFound("no range starts at " + Ring.hex(r.getRangeStart())
                + "; it lies in range " + image.rangeFor(r.getRangeStart()).rangeText());
          }
          RangeEntry e = image.range(i);
          ranges.add(new long[] {e.start(), e.end()});
          scope = "range " + e.rangeText() + " on " + (e.isAssigned() ? e.owner() : "nobody");
        }
        default -> {
          ranges.add(new long[] {0, Ring.RING_END});
          scope = "the whole ring";
        }
      }
      requireForecaster();
      follow();
      long[] starts = new long[ranges.size()];
      long[] ends = new long[ranges.size()];
      for (int i = 0; i < starts.length; i++) {
        starts[i] = ranges.get(i)[0];
        ends[i] = ranges.get(i)[1];
      }
      double[] weights = LoadForecaster.weightsOf(starts, ends);
      int first = -1;
      int last = -1;
      for (int i = 0; i < weights.length; i++) {
        if (weights[i] > 0) {
          last = i;
          if (first < 0) {
            first = i;
          }
        }
      }
      LoadForecaster.View v = forecaster.view(weights, buckets);
      LoadForecaster.Health h = forecaster.health();
      ForecastResponse.Builder b = ForecastResponse.newBuilder()
          .setScope(scope)
          .setFirstSlice(Math.max(0, first))
          .setLastSlice(Math.max(0, last))
          .setBucketMillis(forecaster.settings().coarseMillis())
          .setWape(v.wape())
          .setMase(v.mase())
          .setLiveSeries(h.liveSeries())
          .setInFallback(h.inFallback());
      h.servedModels().forEach(b::putServedModels);
      for (LoadForecaster.Point p : v.recent()) {
        b.addRecent(point(p));
      }
      for (LoadForecaster.Point p : v.ahead()) {
        b.addAhead(point(p));
      }
      for (LoadForecaster.SliceAccuracy s : v.series()) {
        var a = s.accuracy();
        b.addSeries(SeriesAccuracy.newBuilder()
            .setSlice(s.slice())
            .setModel(a.served())
            .setChosen(a.chosen())
            .setFallback(a.fallback())
            .setMase(a.mase())
            .setWape(a.wape())
            .setReactiveMase(a.reactiveMase())
            .setReactiveWape(a.reactiveWape())
            .setRate(s.rate()));
      }
      return b.build();
    });
  }

  private static ForecastPoint point(LoadForecaster.Point p) {
    return ForecastPoint.newBuilder()
        .setStartMillis(p.startMillis())
        .setHasActual(p.hasActual())
        .setActual(p.actual())
        .setForecast(p.forecast())
        .setUpper(p.upper())
        .build();
  }

  private void requireForecaster() {
    if (forecaster == null) {
      throw PlbException.precondition(config.balancerEnabled()
          ? "the balancer could not start on this leader: " + lastError
          : "the balancer is disabled on the leader (balancer.enabled = false)");
    }
  }

  // ------------------------------------------------------------------ history reads

  /** Every bucket of a resolution starting in {@code [from, to)} ({@code to} 0: no end). */
  private List<LoadBucket> readAll(Resolution r, long from, long to) throws IOException {
    List<LoadBucket> out = new ArrayList<>();
    Iterator<LoadBucket> it = pages(r, from, to);
    while (it.hasNext()) {
      out.add(it.next());
    }
    return out;
  }

  /** The buckets of a resolution in {@code [from, to)}, read a page at a time. */
  private Iterator<LoadBucket> pages(Resolution r, long from, long to) {
    return new Iterator<>() {
      private List<LoadBucket> page = List.of();
      private int i;
      private long next = Math.max(0, from);
      private boolean done;

      @Override
      public boolean hasNext() {
        while (i >= page.size() && !done) {
          StateStore.HistoryPage p;
          try {
            p = stateMachine.readHistory(r, next, to, 0, Ring.SLICES - 1, "", PAGE_ROWS);
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
          page = p.buckets();
          i = 0;
          done = p.nextFromMillis() == 0;
          next = p.nextFromMillis();
        }
        return i < page.size();
      }

      @Override
      public LoadBucket next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return page.get(i++);
      }
    };
  }

  // ------------------------------------------------------------------ plumbing

  private interface LeaderWork<T> {
    T run() throws IOException;
  }

  /**
   * Runs {@code work} on the loop if this node leads; refuses with the leader's address if not,
   * and RESOURCE_EXHAUSTED when {@code leader.maxQueuedRequests} requests wait already.
   */
  private <T> CompletableFuture<T> onLeader(LeaderWork<T> work) {
    return requests.submit(() -> queue(work));
  }

  private <T> CompletableFuture<T> queue(LeaderWork<T> work) {
    CompletableFuture<T> out = new CompletableFuture<>();
    boolean queued = run(() -> {
      if (term < 0) {
        out.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE,
            "this node is not the leader" + leaderHint.get()));
        return;
      }
      try {
        out.complete(work.run());
      } catch (IOException e) {
        out.completeExceptionally(new PlbException(ErrorCode.INTERNAL,
            "reading the load history failed: " + e.getMessage(), e));
      } catch (RuntimeException e) {
        out.completeExceptionally(e);
      }
    });
    if (!queued) {
      out.completeExceptionally(new PlbException(ErrorCode.UNAVAILABLE, "the node is stopping"));
    }
    return out;
  }

  private boolean run(Runnable r) {
    return LeaderLoop.submit(loop, LOG, "balancer", r);
  }
}
