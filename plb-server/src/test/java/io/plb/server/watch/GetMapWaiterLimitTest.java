package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.client.admin.PlbAdminClient;
import io.plb.proto.v1.GetMapRequest;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.MapSnapshot;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code GetMap(min_version)} calls waiting for a version a node has not applied are bounded per
 * node ({@code watch.maxGetMapWaiters}): one past the bound is RESOURCE_EXHAUSTED at once,
 * naming the setting; a call that needs no wait is still answered; the waiting calls are
 * answered when their version comes and the node serves as before.
 */
class GetMapWaiterLimitTest {
  static final Duration T = Duration.ofSeconds(30);
  @TempDir Path dir;
  TestCluster cluster;
  ManagedChannel channel;

  @BeforeEach
  void start() throws Exception {
    cluster = TestCluster.start(dir, 3, Map.of("watch.maxGetMapWaiters", "2"));
    cluster.awaitLeader(T);
    channel = NettyChannelBuilder.forTarget(cluster.endpoint(0)).usePlaintext().build();
  }

  @AfterEach
  void stop() {
    if (channel != null) {
      channel.shutdownNow();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  /** Sends GetMap(min_version) without blocking; its answer or error lands in the queue. */
  private LinkedBlockingQueue<Object> getMap(long minVersion) {
    LinkedBlockingQueue<Object> out = new LinkedBlockingQueue<>();
    MapServiceGrpc.newStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS).getMap(
        GetMapRequest.newBuilder().setMinVersion(minVersion).setWaitMillis(30_000).build(),
        new StreamObserver<>() {
          @Override
          public void onNext(MapSnapshot m) {
            out.add(m);
          }

          @Override
          public void onError(Throwable t) {
            out.add(t);
          }

          @Override
          public void onCompleted() {}
        });
    return out;
  }

  private static MapSnapshot answer(LinkedBlockingQueue<Object> q) throws InterruptedException {
    Object r = q.poll(20, TimeUnit.SECONDS);
    assertTrue(r instanceof MapSnapshot, "expected a map, got " + r);
    return (MapSnapshot) r;
  }

  @Test
  void waitersPastTheBoundAreRefusedAndTheNodeRecovers() throws Exception {
    try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
        .build()) {
      long v = admin.registerServer("q1", "127.0.0.1:1", 1.0);
      TestCluster.await(T, "node 0 at version " + v,
          () -> answerNow(v).getVersion() >= v);
      long next = v + 1;
      LinkedBlockingQueue<Object> a = getMap(next);
      LinkedBlockingQueue<Object> b = getMap(next);
      TestCluster.await(T, "two GetMap calls waiting on node 0",
          () -> cluster.node(0).getMapWaiterCount() == 2);

      Object c = getMap(next).poll(20, TimeUnit.SECONDS);
      assertTrue(c instanceof StatusRuntimeException, "expected a refusal, got " + c);
      Status s = ((StatusRuntimeException) c).getStatus();
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
      assertTrue(s.getDescription().contains("watch.maxGetMapWaiters"), s.getDescription());
      // A call that needs no wait takes no place.
      assertEquals(v, answerNow(v).getVersion());
      assertEquals(2, cluster.node(0).getMapWaiterCount());

      long w = admin.registerServer("q2", "127.0.0.1:2", 1.0);
      assertTrue(answer(a).getVersion() >= w);
      assertTrue(answer(b).getVersion() >= w);
      TestCluster.await(T, "no GetMap waiting", () -> cluster.node(0).getMapWaiterCount() == 0);
      // The refused caller asks again and is answered.
      assertTrue(answer(getMap(next)).getVersion() >= w);

      // A caller that goes away frees its place.
      MapServiceGrpc.MapServiceStub stub = MapServiceGrpc.newStub(channel);
      io.grpc.Context.CancellableContext ctx = io.grpc.Context.current().withCancellation();
      LinkedBlockingQueue<Object> gone = new LinkedBlockingQueue<>();
      ctx.run(() -> stub.getMap(GetMapRequest.newBuilder().setMinVersion(w + 1_000)
          .setWaitMillis(30_000).build(), new StreamObserver<>() {
            @Override
            public void onNext(MapSnapshot m) {}

            @Override
            public void onError(Throwable t) {
              gone.add(t);
            }

            @Override
            public void onCompleted() {}
          }));
      TestCluster.await(T, "one GetMap waiting", () -> cluster.node(0).getMapWaiterCount() == 1);
      ctx.cancel(null);
      TestCluster.await(T, "the cancelled GetMap's place freed",
          () -> cluster.node(0).getMapWaiterCount() == 0);
    }
  }

  /** The first chunk of a GetMap answer (a small map is one chunk). */
  private MapSnapshot answerNow(long minVersion) {
    return MapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
        .getMap(GetMapRequest.newBuilder().setMinVersion(minVersion).setWaitMillis(5_000)
            .build()).next();
  }
}
