package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.proto.v1.GetMapRequest;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How long one {@code GetMap(min_version)} call may wait is bounded per node
 * ({@code watch.maxGetMapWait}): a longer {@code wait_millis} is shortened to it, the call ends
 * DEADLINE_EXCEEDED saying so, and its place among the waiters is freed — a caller cannot park a
 * waiter on a node for as long as it likes.
 */
class GetMapWaitBoundTest {
  static final Duration T = Duration.ofSeconds(30);
  @TempDir Path dir;
  TestCluster cluster;
  ManagedChannel channel;

  @BeforeEach
  void start() throws Exception {
    cluster = TestCluster.start(dir, 1, Map.of("watch.maxGetMapWait", "300ms"));
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

  @Test
  void aLongerWaitIsShortenedToTheBound() {
    long far = 1_000_000_000L; // a version this node will not reach
    // The client's own deadline (20 s) is far beyond the bound and far below the wait asked for
    // (one hour): only the node's bound can end the call with the node's message.
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
        () -> MapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS)
            .getMap(GetMapRequest.newBuilder().setMinVersion(far).setWaitMillis(3_600_000)
                .build()).next());
    Status s = e.getStatus();
    assertEquals(Status.Code.DEADLINE_EXCEEDED, s.getCode(), s.toString());
    assertTrue(s.getDescription() != null && s.getDescription().contains("after 300 ms")
        && s.getDescription().contains("wait_millis 3600000 shortened to watch.maxGetMapWait"),
        s.toString());
    TestCluster.await(T, "no GetMap waiting", () -> cluster.node(0).getMapWaiterCount() == 0);

    // A wait within the bound is kept as asked, and says nothing about shortening.
    StatusRuntimeException within = assertThrows(StatusRuntimeException.class,
        () -> MapServiceGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS)
            .getMap(GetMapRequest.newBuilder().setMinVersion(far).setWaitMillis(100)
                .build()).next());
    assertEquals(Status.Code.DEADLINE_EXCEEDED, within.getStatus().getCode());
    assertTrue(within.getStatus().getDescription().contains("after 100 ms"),
        within.getStatus().toString());
    assertFalse(within.getStatus().getDescription().contains("shortened"));
  }
}
