package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.HeartbeatRequest;
import io.plb.proto.v1.HeartbeatResponse;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The leader's side of the owner lease and of queue-server liveness (docs/design.md §5 "Owner
 * leases"), over the AgentService a queue server's agent uses: which heartbeats are granted a
 * lease, and that a range is never forced away while a lease the leader granted may still run.
 */
class OwnerLeaseDriverTest {
  private static final Duration T = Duration.ofSeconds(30);
  private static final Map<String, String> LIVENESS = TestCluster.liveness("4s", "2s");

  @TempDir Path dir;

  private static HeartbeatResponse beat(PlbAdminClient admin, String id) {
    return admin.heartbeat(HeartbeatRequest.newBuilder().setServerId(id).build());
  }

  @Test
  void anActiveServersHeartbeatIsGrantedTheLeaseAtTheLeadersVersion() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, LIVENESS);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(T);
      long registered = admin.registerServer("q1", "127.0.0.1:9001", null);
      HeartbeatResponse r = beat(admin, "q1");
      assertEquals(2000, r.getLeaseMillis(), r.toString());
      assertTrue(r.getVersion() >= registered, r.toString());
      assertEquals("", r.getDetail());
    }
  }

  @Test
  void aHeartbeatFromAnUnregisteredServerIsRefusedAndLeavesNoTrace() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, LIVENESS);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(T);
      long before = admin.getMap(0).version();
      PlbClientException e = assertThrows(PlbClientException.class, () -> beat(admin, "ghost"));
      assertTrue(e.getMessage().contains("not registered"), e.getMessage());
      assertEquals(before, admin.getMap(0).version(), "the map is unchanged");
      assertThrows(PlbClientException.class, () -> beat(admin, ""), "a malformed id");
    }
  }

  @Test
  void aDownServerIsHeardButGrantedNoLeaseUntilItIsActiveAgain() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, LIVENESS);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(T);
      admin.registerServer("q1", "127.0.0.1:9001", null);
      TestCluster.await(T, "q1 DOWN (it never heartbeats)",
          () -> admin.getMap(0).server("q1").state() == ServerState.DOWN);
      HeartbeatResponse r = beat(admin, "q1");
      assertEquals(0, r.getLeaseMillis(), r.toString());
      assertTrue(r.getDetail().contains("DOWN"), r.getDetail());
      TestCluster.await(T, "q1 ACTIVE again once heard",
          () -> admin.getMap(0).server("q1").state() == ServerState.ACTIVE);
      TestCluster.await(T, "a lease for q1 again", () -> beat(admin, "q1").getLeaseMillis() > 0);
    }
  }

  /**
   * Silence counts from the later of the takeover and the registration: a server registered
   * long after the leader took over is not DOWN before its first heartbeat could have come.
   */
  @Test
  void aServerRegisteredLateIsGivenDownAfterFromItsRegistration() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, LIVENESS);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(T);
      admin.registerServer("early", "127.0.0.1:9001", null);
      // Once it is DOWN, the leader has led for more than server.downAfter.
      TestCluster.await(T, "the early server DOWN",
          () -> admin.getMap(0).server("early").state() == ServerState.DOWN);
      long registered = System.nanoTime();
      admin.registerServer("late", "127.0.0.1:9002", null);
      TestCluster.await(T, "the late server DOWN (it never heartbeats)",
          () -> admin.getMap(0).server("late").state() == ServerState.DOWN);
      long millis = (System.nanoTime() - registered) / 1_000_000;
      assertTrue(millis >= 4000, "DOWN " + millis + " ms after its registration");
    }
  }

  /**
   * However a server came to be DOWN — here an operator says so right after the leader granted
   * it a lease — its ranges are forced away only once that lease plus the margin has run out.
   */
  @Test
  void aRangeIsForcedOnlyOnceTheOwnersLastLeaseHasRunOut() throws Exception {
    try (TestCluster c = TestCluster.start(dir, 3, LIVENESS);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(c.endpoints()).build()) {
      c.awaitLeader(T);
      admin.registerServer("q1", "127.0.0.1:9001", null);
      admin.registerServer("q2", "127.0.0.1:9002", null);
      admin.assign(0, "q1", false);
      // q2 heartbeats throughout, so it stays ACTIVE to take the range.
      ScheduledExecutorService q2 = Executors.newSingleThreadScheduledExecutor();
      try {
        q2.scheduleWithFixedDelay(() -> beat(admin, "q2"), 0, 200, TimeUnit.MILLISECONDS);
        long granted = System.nanoTime();
        assertTrue(beat(admin, "q1").getLeaseMillis() > 0);
        // Past server.suspectAfter, a DOWN server is no longer "heard again" (made ACTIVE) on
        // the strength of that heartbeat; its lease (+ margin) still runs for ~1.5 s more.
        TestCluster.await(T, "1.5 s since q1's heartbeat",
            () -> System.nanoTime() - granted > 1_500_000_000L);
        admin.updateServer("q1", null, null, ServerState.DOWN);
        TestCluster.await(T, "the ring forced to q2",
            () -> admin.getMap(0).rangeFor(0).owner().equals("q2"));
        long millis = (System.nanoTime() - granted) / 1_000_000;
        assertTrue(millis >= 3000, "forced " + millis + " ms after q1's last lease was granted");
      } finally {
        q2.shutdownNow();
      }
    }
  }
}
