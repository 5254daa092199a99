package io.plb.server.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.router.Router;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.NodeRole;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real 3-node cluster in one JVM: admin writes through the leader (and through followers, which
 * point at the leader), reads at a minimum version, routing by a subscribed router.
 */
class ClusterBasicsTest {
  @TempDir static Path dir;
  static TestCluster cluster;
  static PlbAdminClient admin;

  @BeforeAll
  static void start() throws Exception {
    cluster = TestCluster.start(dir);
    cluster.awaitLeader(Duration.ofSeconds(20));
    admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build();
  }

  @AfterAll
  static void stop() {
    if (admin != null) {
      admin.close();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  @Test
  void writesCommitAndRoutersFollow() throws Exception {
    long v1 = admin.registerServer("qa", "127.0.0.1:9001", 2.0);
    long v2 = admin.registerServer("qb", "127.0.0.1:9002", null);
    assertTrue(v2 > v1, "versions grow");
    long mid = Long.MIN_VALUE; // 2^63
    long v3 = admin.splitAtHash(0L, mid);
    long v4 = admin.assign(0L, "qa", false);
    long v5 = admin.assign(mid, "qb", false);
    ClusterImage image = admin.getMap(v5);
    assertEquals(v5, image.version());
    assertEquals(2, image.rangeCount());
    assertEquals("qa", image.range(0).owner());
    assertEquals(1, image.range(0).epoch());
    assertTrue(v3 < v4 && v4 < v5);

    try (Router router = Router.start(cluster.endpoints())) {
      assertTrue(router.awaitVersion(v5, Duration.ofSeconds(10)));
      byte[] key = "customer-42".getBytes(StandardCharsets.UTF_8);
      long h = KeyHash.hash(key);
      String expected = Long.compareUnsigned(h, mid) < 0 ? "qa" : "qb";
      assertEquals(expected, router.route(key).owner());
      assertEquals(
          expected.equals("qa") ? "127.0.0.1:9001" : "127.0.0.1:9002",
          router.route(key).address());
      long v6 = admin.setPinned(mid, true);
      assertTrue(router.awaitVersion(v6, Duration.ofSeconds(10)));
      assertTrue(router.image().range(1).pinned());
      assertEquals(0, router.contractViolations());
    }
  }

  @Test
  void followerPointsAtLeaderAndClientFollows() throws Exception {
    int leader = cluster.awaitLeader(Duration.ofSeconds(10));
    int follower = (leader + 1) % 3;
    try (PlbAdminClient viaFollower =
        PlbAdminClient.newBuilder().endpoints(List.of(cluster.endpoint(follower))).build()) {
      long v = viaFollower.registerServer("qf", "127.0.0.1:9009", 1.0);
      assertNotNull(admin.getMap(v).server("qf"));
    }
  }

  @Test
  void everyNodeServesHealthAndReflection() throws Exception {
    for (String endpoint : cluster.endpoints()) {
      io.grpc.ManagedChannel channel = io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
          .forTarget(endpoint).usePlaintext().build();
      try {
        var health = io.grpc.health.v1.HealthGrpc.newBlockingStub(channel)
            .withDeadlineAfter(5, java.util.concurrent.TimeUnit.SECONDS)
            .check(io.grpc.health.v1.HealthCheckRequest.getDefaultInstance());
        assertEquals(io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING,
            health.getStatus());
        java.util.List<String> services = new java.util.ArrayList<>();
        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
        var requests = io.grpc.reflection.v1.ServerReflectionGrpc.newStub(channel)
            .serverReflectionInfo(new io.grpc.stub.StreamObserver<>() {
              @Override
              public void onNext(io.grpc.reflection.v1.ServerReflectionResponse r) {
                r.getListServicesResponse().getServiceList()
                    .forEach(svc -> services.add(svc.getName()));
              }

              @Override
              public void onError(Throwable t) {
                done.countDown();
              }

              @Override
              public void onCompleted() {
                done.countDown();
              }
            });
        requests.onNext(io.grpc.reflection.v1.ServerReflectionRequest.newBuilder()
            .setListServices("*").build());
        requests.onCompleted();
        assertTrue(done.await(5, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(services.containsAll(java.util.List.of("plb.v1.MapService",
            "plb.v1.AdminService", "plb.v1.AgentService", "grpc.health.v1.Health")), services.toString());
      } finally {
        channel.shutdownNow();
      }
    }
  }

  @Test
  void statusNamesLeaderAndMembers() {
    ClusterStatus s = admin.clusterStatus();
    assertEquals(3, s.getMembersCount());
    assertEquals(1, s.getMembersList().stream().filter(m -> m.getRole() == NodeRole.LEADER).count());
    assertTrue(!s.getLeaderId().isEmpty());
  }

  @Test
  void badInputIsRefusedAndChangesNothing() {
    int leader = cluster.awaitLeader(Duration.ofSeconds(10));
    admin.registerServer("qbad", "127.0.0.1:9100", 1.0);
    long commitBefore = cluster.node(leader).localStatus().getCommitIndex();
    ClusterImage before = admin.getMap(0);
    RangeEntry first = before.range(0);
    var e1 = assertThrows(PlbClientException.InvalidArgument.class,
        () -> admin.splitAtHash(first.start(), first.start()));
    assertTrue(e1.getMessage().contains("at its start"), e1.getMessage());
    assertThrows(PlbClientException.FailedPrecondition.class,
        () -> admin.registerServer("qbad", "127.0.0.1:9100", 1.0));
    assertThrows(PlbClientException.InvalidArgument.class,
        () -> admin.registerServer("qneg", "127.0.0.1:9100", -1.0));
    assertThrows(PlbClientException.NotFound.class, () -> admin.removeServer("nobody"));
    assertThrows(PlbClientException.InvalidArgument.class,
        () -> admin.splitAtKey(first.start(), new byte[0]));
    assertThrows(PlbClientException.InvalidArgument.class,
        () -> admin.splitAtKey(first.start(), new byte[1025]));
    assertEquals(commitBefore, cluster.node(leader).localStatus().getCommitIndex(),
        "refused writes never reach the Raft log");
    assertEquals(before.version(), admin.getMap(0).version());
  }
}
