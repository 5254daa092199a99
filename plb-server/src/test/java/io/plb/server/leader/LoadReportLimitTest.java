package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HistoryState;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.AgentServiceGrpc;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.LoadReportResponse;
import io.plb.proto.v1.SliceLoad;
import io.plb.server.rpc.AgentServiceImpl;
import io.plb.server.testing.TestCluster;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A flood of load reports queues on the leader's telemetry loop only up to
 * {@code leader.maxQueuedRequests}: with the loop held up, the reports past the bound are refused
 * RESOURCE_EXHAUSTED at once, over gRPC; once the loop moves, the queued ones are counted and new
 * ones are taken. The agent API and the intake are the node's own classes on a real gRPC server;
 * only the Raft proposal is not run (the test ends before a bucket is due, and a proposal
 * would be refused).
 */
class LoadReportLimitTest {
  private static LoadReport report(long seq) {
    return LoadReport.newBuilder().setServerId("q1").setSession(7).setSeq(seq)
        .setIntervalMillis(50).addSlices(SliceLoad.newBuilder().setSlice(10).setMessagesIn(1))
        .build();
  }

  @Test
  void reportsPastTheBoundAreRefusedAndTheIntakeRecovers() throws Exception {
    ClusterImage image = ClusterImage.EMPTY.apply(CommandProcessor.process(ClusterImage.EMPTY,
        new Command.RegisterServer("q1", "127.0.0.1:9001", 1.0), 1));
    ScheduledExecutorService loop = Executors.newSingleThreadScheduledExecutor();
    TelemetryIntake intake = new TelemetryIntake(
        (command, term) -> CompletableFuture.failedFuture(
            new PlbException(ErrorCode.UNAVAILABLE, "no Raft here")),
        () -> HistoryState.EMPTY, () -> image, HistoryLayout.DEFAULT,
        System::currentTimeMillis, loop, () -> "");
    RequestLimit limit = new RequestLimit("the telemetry intake", "leader.maxQueuedRequests", 2);
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(new AgentServiceImpl(
            () -> CompletableFuture.failedFuture(new PlbException(ErrorCode.UNAVAILABLE, "-")),
            () -> CompletableFuture.completedFuture(intake),
            new RequestLimit("the handover driver", "leader.maxQueuedRequests", 2), limit))
        .build().start();
    ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort())
        .usePlaintext().build();
    CompletableFuture<Void> gate = new CompletableFuture<>();
    try {
      intake.onLeaderReady(1);
      TestCluster.await(Duration.ofSeconds(10), "the intake leading", intake::isLeading);
      loop.execute(gate::join); // the loop is held up
      List<LinkedBlockingQueue<Object>> queued = new ArrayList<>();
      for (int seq = 1; seq <= 2; seq++) {
        LinkedBlockingQueue<Object> answer = new LinkedBlockingQueue<>();
        queued.add(answer);
        AgentServiceGrpc.newStub(ch).reportLoad(report(seq), new StreamObserver<>() {
          @Override
          public void onNext(LoadReportResponse r) {
            answer.add(r);
          }

          @Override
          public void onError(Throwable t) {
            answer.add(t);
          }

          @Override
          public void onCompleted() {}
        });
        // In order: a report numbered below one already counted would be a duplicate.
        int n = seq;
        TestCluster.await(Duration.ofSeconds(10), n + " report(s) queued",
            () -> limit.inFlight() == n);
      }
      for (int seq = 3; seq <= 20; seq++) {
        long s = seq;
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
            () -> AgentServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
                .reportLoad(report(s)));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.toString());
        assertTrue(e.getStatus().getDescription().contains("leader.maxQueuedRequests"),
            e.getStatus().getDescription());
      }
      assertEquals(2, intake.reportsQueued(), "the refused reports never reached the loop");

      gate.complete(null);
      for (LinkedBlockingQueue<Object> answer : queued) {
        Object r = answer.poll(10, TimeUnit.SECONDS);
        assertTrue(r instanceof LoadReportResponse, "answered: " + r);
        assertFalse(((LoadReportResponse) r).getDuplicate());
      }
      TestCluster.await(Duration.ofSeconds(10), "no report in flight",
          () -> limit.inFlight() == 0);
      // Report 3 was refused, not counted: sent again, it is taken.
      assertFalse(AgentServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS)
          .reportLoad(report(3)).getDuplicate());
    } finally {
      gate.complete(null);
      ch.shutdownNow();
      server.shutdownNow();
      loop.shutdownNow();
    }
  }
}
