package io.plb.client.admin;

import com.google.protobuf.ByteString;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.plb.client.Endpoints;
import io.plb.client.PlbClientException;
import io.plb.client.wire.GrpcErrors;
import io.plb.client.wire.MapChunks;
import io.plb.client.wire.Wire;
import io.plb.core.command.Limits;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.ServerState;
import io.plb.core.time.Ticker;
import io.plb.proto.v1.AbortHandoverRequest;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.BalancerStatusRequest;
import io.plb.proto.v1.ForecastRequest;
import io.plb.proto.v1.ForecastResponse;
import io.plb.proto.v1.PlanRequest;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.OpenProducerRequest;
import io.plb.proto.v1.SetBalancerPausedRequest;
import io.plb.proto.v1.AdminServiceGrpc;
import io.plb.proto.v1.AgentServiceGrpc;
import io.plb.proto.v1.HandoverReport;
import io.plb.proto.v1.HandoverReportResponse;
import io.plb.proto.v1.HeartbeatRequest;
import io.plb.proto.v1.HeartbeatResponse;
import io.plb.proto.v1.ListHandoversRequest;
import io.plb.proto.v1.ListHandoversResponse;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.LoadReportResponse;
import io.plb.proto.v1.MoveRangeRequest;
import io.plb.proto.v1.MoveRangeResponse;
import io.plb.proto.v1.AssignRangeRequest;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.GetMapRequest;
import io.plb.proto.v1.GetStatusRequest;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.MergeRangesRequest;
import io.plb.proto.v1.NodeStatus;
import io.plb.proto.v1.RegisterServerRequest;
import io.plb.proto.v1.RemoveServerRequest;
import io.plb.proto.v1.SetPinnedRequest;
import io.plb.proto.v1.SplitRangeRequest;
import io.plb.proto.v1.UpdateServerRequest;
import io.plb.proto.v1.WriteResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiFunction;
import java.util.function.Function;

/**
 * The admin client of a PLB cluster: every admin call, with leader following and failover.
 *
 * <p>Writes go to the node believed to lead. A node that is not the leader refuses with the
 * leader's address, and the client follows it; an unreachable node is skipped for the next one.
 * Both retries are safe because the refused write was never proposed. A write whose outcome is
 * unknown (the leader failed while committing it) is not retried: it fails with
 * {@link PlbClientException.Unavailable}, and the caller can read the map to learn what happened.
 * Every call has an overall deadline ({@link Builder#deadline}, default 10 s).
 *
 * <p>Reads are monotonic: the client remembers the highest map version it has read or written
 * and never answers {@link #getMap} with an older one, even when the read lands on a node that has
 * just restarted and is still catching up. Such a node is given a short wait
 * ({@value #BEHIND_NODE_WAIT_MILLIS} ms) before the read moves on to the next node, and the next
 * read starts at the node that answered.
 *
 * <p>Thread-safe; meant to be shared and closed once. Failures are thrown as the typed
 * {@link PlbClientException}s.
 */
public final class PlbAdminClient implements AutoCloseable {
  private final Endpoints endpoints;
  private final Duration deadline;
  private final Ticker ticker;
  private volatile String leaderGuess;
  /** The highest map version read or written through this client (monotonic reads). */
  private final AtomicLong seenVersion = new AtomicLong();
  /** How long one node that has not reached the wanted version is waited for, unless last. */
  private static final long BEHIND_NODE_WAIT_MILLIS = 2_000;
  /** The node that answered the last map read; the next read starts there. */
  private volatile String readGuess;

  private PlbAdminClient(Builder b) {
    this.endpoints = new Endpoints(b.endpoints);
    this.deadline = b.deadline;
    this.ticker = b.ticker;
    this.leaderGuess = endpoints.get(0);
  }

  public static Builder newBuilder() {
    return new Builder();
  }

  /** Configures a client. */
  public static final class Builder {
    private java.util.List<String> endpoints = Endpoints.LOCAL_CLUSTER;
    private Duration deadline = Duration.ofSeconds(10);
    private Ticker ticker = Ticker.SYSTEM;

    public Builder endpoints(java.util.List<String> addresses) {
      this.endpoints = java.util.List.copyOf(addresses);
      return this;
    }

    public Builder endpoints(String commaSeparated) {
      this.endpoints = Endpoints.parse(commaSeparated).addresses();
      return this;
    }

    /** The most one call may take, retries included. */
    public Builder deadline(Duration deadline) {
      if (deadline.isNegative() || deadline.isZero()) {
        throw new IllegalArgumentException("deadline must be positive");
      }
      this.deadline = deadline;
      return this;
    }

    public Builder ticker(Ticker ticker) {
      this.ticker = ticker;
      return this;
    }

    public PlbAdminClient build() {
      return new PlbAdminClient(this);
    }
  }

  // ------------------------------------------------------------------ reads

  /** The cluster's members, roles, leader and map version, as one node sees them. */
  public ClusterStatus clusterStatus() {
    long start = start();
    return anyNode(
        addr -> AdminServiceGrpc.newBlockingStub(endpoints.channel(addr))
            .withDeadlineAfter(remainingMillis(start), TimeUnit.MILLISECONDS)
            .getClusterStatus(GetStatusRequest.getDefaultInstance()));
  }

  /** The status of one node, at {@code address}. */
  public NodeStatus nodeStatus(String address) {
    try {
      return AdminServiceGrpc.newBlockingStub(endpoints.channel(address))
          .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
          .getNodeStatus(GetStatusRequest.getDefaultInstance());
    } catch (StatusRuntimeException e) {
      throw PlbClientException.from(e);
    }
  }

  /** A page of the load history, from any node's replica. */
  public LoadHistoryResponse loadHistory(LoadHistoryRequest request) {
    long start = start();
    return anyNode(addr -> AdminServiceGrpc.newBlockingStub(endpoints.channel(addr))
        .withDeadlineAfter(remainingMillis(start), TimeUnit.MILLISECONDS)
        .getLoadHistory(request));
  }

  /** A page of the load history from the node at {@code address}. */
  public LoadHistoryResponse loadHistory(String address, LoadHistoryRequest request) {
    try {
      return AdminServiceGrpc.newBlockingStub(endpoints.channel(address))
          .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
          .getLoadHistory(request);
    } catch (StatusRuntimeException e) {
      throw PlbClientException.from(e);
    }
  }

  /**
   * The map from any node, once it has applied at least {@code minVersion} and at least the
   * highest version this client has already seen. A node behind that version is waited for
   * briefly, then the next node is asked, until the call's deadline.
   */
  public ClusterImage getMap(long minVersion) {
    long start = start();
    long wanted = Math.max(minVersion, seenVersion.get());
    String first = readGuess != null ? readGuess : leaderGuess;
    ClusterImage image = anyNode(first, (addr, lastInRound) -> {
      long remaining = remainingMillis(start);
      long wait = lastInRound ? remaining - 100 : Math.min(remaining - 100, BEHIND_NODE_WAIT_MILLIS);
      ClusterImage answer = readMap(addr, remaining, GetMapRequest.newBuilder()
          .setMinVersion(wanted).setWaitMillis((int) Math.max(1, wait)).build());
      readGuess = addr;
      return answer;
    });
    seen(image.version());
    return image;
  }

  /** One node's answer: the chunks of its map, gathered; the call ends with the last chunk. */
  private ClusterImage readMap(String addr, long remainingMillis, GetMapRequest request) {
    Context.CancellableContext ctx = Context.current().withCancellation();
    try {
      return ctx.call(() -> {
        Iterator<io.plb.proto.v1.MapSnapshot> chunks =
            MapServiceGrpc.newBlockingStub(endpoints.channel(addr))
                .withDeadlineAfter(remainingMillis, TimeUnit.MILLISECONDS)
                .getMap(request);
        MapChunks.Assembly assembly = new MapChunks.Assembly();
        while (chunks.hasNext()) {
          ClusterImage image;
          try {
            image = assembly.add(chunks.next());
          } catch (IllegalStateException e) {
            throw PlbClientException.of(ErrorCode.INTERNAL,
                "node " + addr + " sent a broken map: " + e.getMessage(), e);
          }
          if (image != null) {
            return image;
          }
        }
        throw Status.UNAVAILABLE.withDescription(
            "node " + addr + " ended the map read before its last chunk").asRuntimeException();
      });
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException(e);
    } finally {
      ctx.cancel(null); // ends the call if it stopped before the server did
    }
  }

  private void seen(long version) {
    seenVersion.accumulateAndGet(version, Math::max);
  }

  // ------------------------------------------------------------------ writes

  /** Registers a queue server; {@code capacity} null means the default weight 1.0. */
  public long registerServer(String id, String address, Double capacity) {
    RegisterServerRequest.Builder r = RegisterServerRequest.newBuilder().setId(id).setAddress(address);
    if (capacity != null) {
      r.setCapacity(capacity);
    }
    return write(stub -> stub.registerServer(r.build()));
  }

  /** Changes a server's address, capacity or state; null arguments are left as they are. */
  public long updateServer(String id, String address, Double capacity, ServerState state) {
    UpdateServerRequest.Builder r = UpdateServerRequest.newBuilder().setId(id);
    if (address != null) {
      r.setAddress(address);
    }
    if (capacity != null) {
      r.setCapacity(capacity);
    }
    if (state != null) {
      r.setState(Wire.toProto(state));
    }
    return write(stub -> stub.updateServer(r.build()));
  }

  public long removeServer(String id) {
    return write(stub -> stub.removeServer(RemoveServerRequest.newBuilder().setId(id).build()));
  }

  /** Splits the range starting at {@code rangeStart} so a new range starts at {@code atHash}. */
  public long splitAtHash(long rangeStart, long atHash) {
    return write(
        stub -> stub.splitRange(
            SplitRangeRequest.newBuilder().setRangeStart(rangeStart).setAtHash(atHash).build()));
  }

  /**
   * Splits the range starting at {@code rangeStart} into {@code pieces} ranges of equal width, in
   * one map change (at most the leader's {@code map.maxSplitPieces}).
   */
  public long splitEvenly(long rangeStart, int pieces) {
    return write(
        stub -> stub.splitRange(
            SplitRangeRequest.newBuilder().setRangeStart(rangeStart).setPieces(pieces).build()));
  }

  /** Splits the range starting at {@code rangeStart} at the hash of {@code key}. */
  public long splitAtKey(long rangeStart, byte[] key) {
    try {
      Limits.checkKey(key);
    } catch (PlbException e) {
      throw PlbClientException.of(e.code(), e.getMessage(), e);
    }
    return write(
        stub -> stub.splitRange(
            SplitRangeRequest.newBuilder()
                .setRangeStart(rangeStart)
                .setAtKey(ByteString.copyFrom(key))
                .build()));
  }

  /** Merges the range starting at {@code leftStart} with the one at {@code rightStart}. */
  public long merge(long leftStart, long rightStart) {
    return write(
        stub -> stub.mergeRanges(
            MergeRangesRequest.newBuilder()
                .setRangeStart(leftStart)
                .setNextRangeStart(rightStart)
                .build()));
  }

  /** Assigns an owner to a range (see {@code AssignRangeRequest.force}). */
  public long assign(long rangeStart, String owner, boolean force) {
    return write(
        stub -> stub.assignRange(
            AssignRangeRequest.newBuilder()
                .setRangeStart(rangeStart)
                .setOwner(owner)
                .setForce(force)
                .build()));
  }

  public long setPinned(long rangeStart, boolean pinned) {
    return write(
        stub -> stub.setPinned(
            SetPinnedRequest.newBuilder().setRangeStart(rangeStart).setPinned(pinned).build()));
  }

  /** Opens a hold handover of a range to {@code target}; returns the version and handover epoch. */
  public MoveRangeResponse move(long rangeStart, String target) {
    return call(stub -> stub.moveRange(
        MoveRangeRequest.newBuilder().setRangeStart(rangeStart).setTarget(target).build()));
  }

  /** Aborts the open handover of a range (from SWITCH it runs backwards). */
  public long abortHandover(long rangeStart, String reason) {
    return write(stub -> stub.abortHandover(
        AbortHandoverRequest.newBuilder().setRangeStart(rangeStart).setReason(reason).build()));
  }

  /** The open handovers, with ages and deadlines as the leader sees them. */
  public ListHandoversResponse handovers() {
    return call(stub -> stub.listHandovers(ListHandoversRequest.getDefaultInstance()));
  }

  // ------------------------------------------------------------------ balancer

  /**
   * Pauses ({@code true}) or resumes the leader's balancer; committed, so it holds across leader
   * changes. {@code by} names who asks (empty: "operator"). Returns the map version (unchanged).
   */
  public long setBalancerPaused(boolean paused, String by) {
    return write(stub -> stub.setBalancerPaused(SetBalancerPausedRequest.newBuilder()
        .setPaused(paused).setBy(by == null ? "" : by).build()));
  }

  /** The balancer's status, from the leader. */
  public BalancerStatus balancerStatus() {
    return call(stub -> stub.getBalancerStatus(BalancerStatusRequest.getDefaultInstance()));
  }

  /** What the balancer would do now (a dry run on the leader: nothing changes). */
  public PlanResponse plan() {
    return call(stub -> stub.planDryRun(PlanRequest.getDefaultInstance()));
  }

  /** Actual load against forecast, from the leader. */
  public ForecastResponse forecast(ForecastRequest request) {
    return call(stub -> stub.getForecast(request));
  }

  // ------------------------------------------------------------------ producers

  /**
   * Opens producer {@code id} (committed): returns its epoch, above the epoch of every earlier
   * instance of the same id, so queue servers refuse the older instances' messages once the new
   * one has stored any (docs/design.md §5 "Idempotent publish").
   */
  public long openProducer(String id) {
    return call(stub -> stub.openProducer(OpenProducerRequest.newBuilder().setProducer(id)
        .build())).getEpoch();
  }

  // ------------------------------------------------------------------ plumbing

  private long start() {
    return ticker.nanos();
  }

  private long remainingMillis(long start) {
    return Math.max(1, deadline.toMillis() - (ticker.nanos() - start) / 1_000_000L);
  }

  private long write(Function<AdminServiceGrpc.AdminServiceBlockingStub, WriteResponse> call) {
    long version = call(call).getVersion();
    seen(version);
    return version;
  }

  // ------------------------------------------------------------------ queue-server agent calls

  /** Which report a queue server's agent sends to the leader. */
  public enum Report { READY, DRAINED, REVERSED }

  /**
   * A handover report from queue server {@code serverId}; the leader ignores a late or duplicated
   * one ({@link HandoverReportResponse#getIgnored()}).
   */
  public HandoverReportResponse report(Report kind, String serverId, long rangeStart,
      long handoverEpoch) {
    HandoverReport r = HandoverReport.newBuilder().setServerId(serverId).setRangeStart(rangeStart)
        .setHandoverEpoch(handoverEpoch).build();
    return onLeader(channel -> {
      AgentServiceGrpc.AgentServiceBlockingStub stub = AgentServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
      return switch (kind) {
        case READY -> stub.handoverReady(r);
        case DRAINED -> stub.handoverDrained(r);
        case REVERSED -> stub.abortReversed(r);
      };
    });
  }

  /** A queue server's heartbeat to the leader. */
  public HeartbeatResponse heartbeat(HeartbeatRequest request) {
    return onLeader(channel -> AgentServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS).heartbeat(request));
  }

  /** A queue server's load report to the leader (see {@code AgentService.ReportLoad}). */
  public LoadReportResponse reportLoad(LoadReport report) {
    return onLeader(channel -> AgentServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS).reportLoad(report));
  }

  /** A call that only the leader answers: follows leader hints, skips unreachable nodes. */
  private <T> T call(Function<AdminServiceGrpc.AdminServiceBlockingStub, T> call) {
    return onLeader(channel -> call.apply(AdminServiceGrpc.newBlockingStub(channel)));
  }

  private <T> T onLeader(Function<io.grpc.Channel, T> call) {
    long start = start();
    String target = leaderGuess;
    int nextIndex = Math.max(0, endpoints.indexOf(target)) + 1;
    StatusRuntimeException last = null;
    int attempt = 0;
    while (remainingMillis(start) > 1) {
      try {
        T r = call.apply(new DeadlineChannel(endpoints.channel(target), remainingMillis(start)));
        leaderGuess = target;
        return r;
      } catch (StatusRuntimeException e) {
        last = e;
        String hint = GrpcErrors.leaderHint(e);
        boolean notLeader = GrpcErrors.isNotLeader(e);
        boolean unreachable = e.getStatus().getCode() == Status.Code.UNAVAILABLE && !notLeader
            && isTransportFailure(e);
        if (notLeader && hint != null && !hint.isEmpty() && !hint.equals(target)) {
          target = hint;
        } else if (notLeader || unreachable) {
          target = endpoints.get(nextIndex++);
          backoff(++attempt, start);
        } else {
          if (e.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED) {
            // A node that takes in requests and answers none (a leader cut off by a partition
            // that drops its packets) would otherwise get every later call too, each for the
            // whole deadline: the next call starts at the next node, which redirects to the
            // leader if there is another one. Not retried here: a write may have been applied.
            leaderGuess = endpoints.get(nextIndex);
          }
          throw PlbClientException.from(e);
        }
      }
    }
    throw PlbClientException.of(
        ErrorCode.UNAVAILABLE,
        "no PLB leader answered within " + deadline.toMillis() + " ms"
            + (last == null ? "" : "; last error: " + last.getStatus().getDescription()),
        last);
  }

  /** A transport failure: the request never reached a PLB node. */
  private static boolean isTransportFailure(StatusRuntimeException e) {
    String d = e.getStatus().getDescription();
    return d == null
        || !(d.startsWith("write not committed") || d.startsWith("leadership moved"));
  }

  private <T> T anyNode(Function<String, T> call) {
    return anyNode(leaderGuess, (addr, lastInRound) -> call.apply(addr));
  }

  /**
   * Calls one node after another, starting at {@code first}, until one answers or the deadline
   * passes. A node that is unreachable, or that answers it is behind the wanted version (the
   * server's DEADLINE_EXCEEDED while the call still has time), passes the call on.
   */
  private <T> T anyNode(String first, BiFunction<String, Boolean, T> call) {
    long start = start();
    StatusRuntimeException last = null;
    int i = Math.max(0, endpoints.indexOf(first));
    for (int attempt = 0; remainingMillis(start) > 1; attempt++) {
      String addr = endpoints.get(i + attempt);
      boolean lastInRound = (attempt + 1) % endpoints.size() == 0;
      try {
        return call.apply(addr, lastInRound);
      } catch (StatusRuntimeException e) {
        last = e;
        if (!(e.getStatus().getCode() == Status.Code.UNAVAILABLE || behind(e))) {
          throw PlbClientException.from(e);
        }
        if (lastInRound) {
          backoff(attempt, start);
        }
      }
    }
    throw PlbClientException.from(
        last != null ? last : Status.UNAVAILABLE.withDescription("no node answered").asException());
  }

  /** The node answered that it has not applied the wanted version within the wait it was given. */
  private static boolean behind(StatusRuntimeException e) {
    String d = e.getStatus().getDescription();
    return e.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED
        && d != null && d.startsWith("node has applied only");
  }

  private void backoff(int attempt, long start) {
    long wait = Math.min(Math.min(50L << Math.min(attempt, 4), 500L), remainingMillis(start));
    try {
      // A short pause before retrying another node; bounded by the call's deadline.
      TimeUnit.MILLISECONDS.sleep(wait);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw PlbClientException.of(ErrorCode.UNAVAILABLE, "interrupted", e);
    }
  }

  @Override
  public void close() {
    endpoints.close();
  }

  /** A channel whose calls get a deadline unless they set an earlier one. */
  private static final class DeadlineChannel extends io.grpc.Channel {
    private final io.grpc.Channel inner;
    private final long millis;

    DeadlineChannel(io.grpc.Channel inner, long millis) {
      this.inner = inner;
      this.millis = millis;
    }

    @Override
    public <Q, R> io.grpc.ClientCall<Q, R> newCall(io.grpc.MethodDescriptor<Q, R> method,
        io.grpc.CallOptions options) {
      io.grpc.Deadline d = io.grpc.Deadline.after(millis, TimeUnit.MILLISECONDS);
      if (options.getDeadline() == null || d.isBefore(options.getDeadline())) {
        options = options.withDeadline(d);
      }
      return inner.newCall(method, options);
    }

    @Override
    public String authority() {
      return inner.authority();
    }
  }
}
