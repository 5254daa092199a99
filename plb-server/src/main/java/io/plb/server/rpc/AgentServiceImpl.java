package io.plb.server.rpc;

import io.grpc.stub.StreamObserver;
import io.plb.client.wire.GrpcErrors;
import io.plb.core.command.Command;
import io.plb.core.command.Limits;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import io.plb.proto.v1.AgentServiceGrpc;
import io.plb.proto.v1.HandoverReport;
import io.plb.proto.v1.HandoverReportResponse;
import io.plb.proto.v1.HeartbeatRequest;
import io.plb.proto.v1.HeartbeatResponse;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.LoadReportResponse;
import io.plb.client.wire.Wire;
import io.plb.core.load.LoadAggregator;
import io.plb.server.leader.HandoverDriver;
import io.plb.server.leader.RequestLimit;
import io.plb.server.leader.TelemetryIntake;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;

/**
 * Reports from queue servers to the leader: ready, drained, reversed, heartbeats and load. A thin
 * adapter: it checks the report's fields and hands it to the {@link HandoverDriver}, which
 * recognises late and duplicated reports and proposes the rest, or — for load — to the
 * {@link TelemetryIntake}. Reports handed to either loop are bounded ({@link RequestLimit});
 * heartbeats are not. Thread-safe.
 */
public final class AgentServiceImpl extends AgentServiceGrpc.AgentServiceImplBase {
  private final Supplier<CompletableFuture<HandoverDriver>> driver;
  private final Supplier<CompletableFuture<TelemetryIntake>> telemetry;
  private final RequestLimit driverRequests;
  private final RequestLimit loadReports;

  /**
   * @param driverRequests bounds the handover reports handed to the driver's loop
   * @param loadReports bounds the load reports handed to the telemetry intake's loop
   */
  public AgentServiceImpl(Supplier<CompletableFuture<HandoverDriver>> driver,
      Supplier<CompletableFuture<TelemetryIntake>> telemetry, RequestLimit driverRequests,
      RequestLimit loadReports) {
    this.driver = driver;
    this.telemetry = telemetry;
    this.driverRequests = driverRequests;
    this.loadReports = loadReports;
  }

  @Override
  public void reportLoad(LoadReport r, StreamObserver<LoadReportResponse> o) {
    try {
      Limits.checkServerId(r.getServerId());
    } catch (PlbException e) {
      o.onError(GrpcErrors.toStatus(e));
      return;
    }
    AdminServiceImpl.reply(telemetry.get()
        .thenCompose(t -> {
          // Who reports first: a report from a server the map does not list is refused before
          // it is read or queued.
          t.checkRegistered(r.getServerId());
          io.plb.core.load.LoadReport report = Wire.fromProto(r).check();
          return loadReports.submit(() -> t.report(report));
        })
        .thenApply(offer -> LoadReportResponse.newBuilder()
            .setDuplicate(offer.verdict() == LoadAggregator.Verdict.DUPLICATE)
            .setBucketStartMillis(Math.max(0, offer.bucketStartMillis()))
            .build()), o);
  }

  @Override
  public void handoverReady(HandoverReport r, StreamObserver<HandoverReportResponse> o) {
    report(r, new Command.HandoverReady(r.getRangeStart(), r.getHandoverEpoch()), o);
  }

  @Override
  public void handoverDrained(HandoverReport r, StreamObserver<HandoverReportResponse> o) {
    report(r, new Command.HandoverDrained(r.getRangeStart(), r.getHandoverEpoch()), o);
  }

  @Override
  public void abortReversed(HandoverReport r, StreamObserver<HandoverReportResponse> o) {
    report(r, new Command.FinishAbort(r.getRangeStart(), r.getHandoverEpoch()), o);
  }

  @Override
  public void heartbeat(HeartbeatRequest r, StreamObserver<HeartbeatResponse> o) {
    try {
      Limits.checkServerId(r.getServerId());
    } catch (PlbException e) {
      o.onError(GrpcErrors.toStatus(e));
      return;
    }
    AdminServiceImpl.reply(driver.get()
        .thenCompose(d -> d.heartbeat(r.getServerId(), r.getMapVersion()))
        .thenApply(g -> HeartbeatResponse.newBuilder().setVersion(g.version())
            .setLeaseMillis(g.leaseMillis()).setDetail(g.detail()).build()), o);
  }

  private void report(HandoverReport r, Command command,
      StreamObserver<HandoverReportResponse> o) {
    try {
      Limits.checkServerId(r.getServerId());
      if (r.getHandoverEpoch() < 1) {
        throw PlbException.invalid("handover_epoch must be at least 1 (range at "
            + Ring.hex(r.getRangeStart()) + ")");
      }
    } catch (PlbException e) {
      o.onError(GrpcErrors.toStatus(e));
      return;
    }
    AdminServiceImpl.reply(driver.get()
        .thenCompose(d -> driverRequests.submit(
            () -> d.report(command, r.getRangeStart(), r.getServerId())))
        .thenApply(out -> HandoverReportResponse.newBuilder()
            .setVersion(out.version())
            .setIgnored(out.ignored())
            .setDetail(out.detail())
            .build()), o);
  }

}
