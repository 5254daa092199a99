package io.plb.server.rpc;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.plb.client.wire.GrpcErrors;
import io.plb.client.wire.Wire;
import io.plb.core.command.Command;
import io.plb.core.error.PlbException;
import io.plb.proto.v1.AbortHandoverRequest;
import io.plb.proto.v1.AdminServiceGrpc;
import io.plb.proto.v1.HandoverInfo;
import io.plb.proto.v1.ListHandoversRequest;
import io.plb.proto.v1.ListHandoversResponse;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.proto.v1.MoveRangeRequest;
import io.plb.proto.v1.MoveRangeResponse;
import io.plb.server.leader.Balancer;
import io.plb.server.leader.HandoverDriver;
import io.plb.server.leader.RequestLimit;
import io.plb.proto.v1.BalancerStatus;
import io.plb.proto.v1.BalancerStatusRequest;
import io.plb.proto.v1.ForecastRequest;
import io.plb.proto.v1.ForecastResponse;
import io.plb.proto.v1.PlanRequest;
import io.plb.proto.v1.PlanResponse;
import io.plb.proto.v1.OpenProducerRequest;
import io.plb.proto.v1.OpenProducerResponse;
import io.plb.proto.v1.SetBalancerPausedRequest;
import io.plb.proto.v1.AssignRangeRequest;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.GetStatusRequest;
import io.plb.proto.v1.MergeRangesRequest;
import io.plb.proto.v1.NodeStatus;
import io.plb.proto.v1.RegisterServerRequest;
import io.plb.proto.v1.RemoveServerRequest;
import io.plb.proto.v1.SetPinnedRequest;
import io.plb.proto.v1.SplitRangeRequest;
import io.plb.proto.v1.UpdateServerRequest;
import io.plb.proto.v1.WriteResponse;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Supplier;

/**
 * The admin API of one node. A thin adapter: it turns each request into a {@link Command} and hands
 * it to the {@link Node}, which validates it against the applied image, proposes it through Raft,
 * and answers after commit with the version it produced.
 *
 * <p>Thread-safe: holds no state.
 */
public final class AdminServiceImpl extends AdminServiceGrpc.AdminServiceImplBase {
  /** What the admin API needs from the node. */
  public interface Node {
    /**
     * Validates and proposes {@code command}; completes with the map version it produced, or
     * exceptionally with a {@link PlbException} or the not-leader refusal.
     */
    CompletableFuture<Long> submit(Command command);

    /**
     * Commits that producer {@code producer} opens; completes with its epoch (the entry's index),
     * or exceptionally as {@link #submit} does.
     */
    CompletableFuture<Long> openProducer(String producer);

    NodeStatus localStatus();

    CompletableFuture<ClusterStatus> clusterStatus();

    /** The handover driver, if this node is the ready leader; else the not-leader refusal. */
    CompletableFuture<HandoverDriver> leaderDriver();

    /** Bounds the requests handed to the handover driver's loop (leader.maxQueuedRequests). */
    RequestLimit driverRequests();

    /**
     * A page of the load history from this node's replica.
     *
     * @throws PlbException for a bad request or a failed read
     */
    LoadHistoryResponse loadHistory(LoadHistoryRequest request);

    /** The balancer, if this node is the ready leader; else the not-leader refusal. */
    CompletableFuture<Balancer> leaderBalancer();
  }

  private final Node node;
  private final int maxSplitPieces;

  /** {@code maxSplitPieces}: {@code map.maxSplitPieces}, carried by each split into pieces. */
  public AdminServiceImpl(Node node, int maxSplitPieces) {
    this.node = node;
    this.maxSplitPieces = maxSplitPieces;
  }

  @Override
  public void getNodeStatus(GetStatusRequest request, StreamObserver<NodeStatus> observer) {
    observer.onNext(node.localStatus());
    observer.onCompleted();
  }

  @Override
  public void getClusterStatus(GetStatusRequest request, StreamObserver<ClusterStatus> observer) {
    node.clusterStatus()
        .whenComplete(
            (status, error) -> {
              if (error != null) {
                observer.onError(toStatus(error));
              } else {
                observer.onNext(status);
                observer.onCompleted();
              }
            });
  }

  @Override
  public void registerServer(RegisterServerRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void updateServer(UpdateServerRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void removeServer(RemoveServerRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void splitRange(SplitRangeRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r, maxSplitPieces), o);
  }

  @Override
  public void mergeRanges(MergeRangesRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void assignRange(AssignRangeRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void setPinned(SetPinnedRequest r, StreamObserver<WriteResponse> o) {
    write(() -> Wire.fromProto(r), o);
  }

  @Override
  public void moveRange(MoveRangeRequest r, StreamObserver<MoveRangeResponse> o) {
    if (r.getTarget().isEmpty()) {
      o.onError(GrpcErrors.toStatus(PlbException.invalid("move needs a target server")));
      return;
    }
    reply(node.leaderDriver()
        .thenCompose(d -> node.driverRequests().submit(
            () -> d.move(r.getRangeStart(), r.getTarget())))
        .thenApply(s -> MoveRangeResponse.newBuilder()
            .setVersion(s.version())
            .setHandoverEpoch(s.handoverEpoch())
            .build()), o);
  }

  @Override
  public void abortHandover(AbortHandoverRequest r, StreamObserver<WriteResponse> o) {
    String reason = r.getReason().isEmpty() ? "aborted by an operator" : r.getReason();
    reply(node.leaderDriver()
        .thenCompose(d -> node.driverRequests().submit(
            () -> d.abort(r.getRangeStart(), reason)))
        .thenApply(v -> WriteResponse.newBuilder().setVersion(v).build()), o);
  }

  @Override
  public void listHandovers(ListHandoversRequest r, StreamObserver<ListHandoversResponse> o) {
    reply(node.leaderDriver()
        .thenCompose(d -> node.driverRequests().submit(d::openHandovers))
        .thenApply(list -> {
          ListHandoversResponse.Builder b = ListHandoversResponse.newBuilder()
              .setLeaderId(node.localStatus().getId())
              .setVersion(node.localStatus().getMapVersion());
          for (HandoverDriver.Open h : list) {
            b.addHandovers(HandoverInfo.newBuilder()
                .setRange(Wire.toProto(h.range()))
                .setHandoverEpoch(h.handoverEpoch())
                .setAgeMillis(h.ageMillis())
                .setTimeoutMillis(h.timeoutMillis()));
          }
          return b.build();
        }), o);
  }

  @Override
  public void getLoadHistory(LoadHistoryRequest r, StreamObserver<LoadHistoryResponse> o) {
    LoadHistoryResponse response;
    try {
      response = node.loadHistory(r);
    } catch (PlbException e) {
      o.onError(GrpcErrors.toStatus(e));
      return;
    }
    o.onNext(response);
    o.onCompleted();
  }

  @Override
  public void setBalancerPaused(SetBalancerPausedRequest r, StreamObserver<WriteResponse> o) {
    write(() -> new Command.SetBalancerPaused(r.getPaused(), r.getBy()), o);
  }

  @Override
  public void openProducer(OpenProducerRequest r, StreamObserver<OpenProducerResponse> o) {
    node.openProducer(r.getProducer()).whenComplete((epoch, error) -> {
      if (error != null) {
        o.onError(toStatus(error));
      } else {
        o.onNext(OpenProducerResponse.newBuilder().setEpoch(epoch).build());
        o.onCompleted();
      }
    });
  }

  @Override
  public void getBalancerStatus(BalancerStatusRequest r, StreamObserver<BalancerStatus> o) {
    reply(node.leaderBalancer().thenCompose(Balancer::status), o);
  }

  @Override
  public void planDryRun(PlanRequest r, StreamObserver<PlanResponse> o) {
    reply(node.leaderBalancer().thenCompose(Balancer::dryRun), o);
  }

  @Override
  public void getForecast(ForecastRequest r, StreamObserver<ForecastResponse> o) {
    reply(node.leaderBalancer().thenCompose(b -> b.forecast(r)), o);
  }

  /** Completes {@code observer} with the future's value or its error, mapped to a status. */
  static <T> void reply(CompletableFuture<T> future, StreamObserver<T> observer) {
    future.whenComplete((v, error) -> {
      if (error != null) {
        observer.onError(toStatus(error));
      } else {
        observer.onNext(v);
        observer.onCompleted();
      }
    });
  }

  private void write(Supplier<Command> parse, StreamObserver<WriteResponse> observer) {
    Command command;
    try {
      command = parse.get();
    } catch (PlbException e) {
      observer.onError(GrpcErrors.toStatus(e));
      return;
    }
    node.submit(command)
        .whenComplete(
            (version, error) -> {
              if (error != null) {
                observer.onError(toStatus(error));
              } else {
                observer.onNext(WriteResponse.newBuilder().setVersion(version).build());
                observer.onCompleted();
              }
            });
  }

  static RuntimeException toStatus(Throwable error) {
    Throwable e = error instanceof CompletionException && error.getCause() != null
        ? error.getCause() : error;
    if (e instanceof PlbException p) {
      return GrpcErrors.toStatus(p);
    }
    if (e instanceof io.grpc.StatusRuntimeException s) {
      return s;
    }
    return Status.INTERNAL.withDescription("unexpected failure: " + e).withCause(e)
        .asRuntimeException();
  }
}
