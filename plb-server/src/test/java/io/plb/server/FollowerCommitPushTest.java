package io.plb.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.server.FollowerCommitPush.Decision;
import io.plb.server.FollowerCommitPush.Followers;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Followers learn each commit from a push, not from the periodic heartbeat: the rule that times
 * the push (pure), and a real 3-node cluster whose heartbeat interval (1.5 s, half the 3 s
 * minimum election timeout) is far longer than the time allowed for a follower to apply an
 * isolated write.
 */
class FollowerCommitPushTest {
  private static final long MS = 1_000_000L;

  @Test
  void waitsUntilEveryLiveFollowerHoldsTheTarget() {
    Followers oneBehind = new Followers(new long[] {10, 9}, 2);
    assertEquals(Decision.WAIT, FollowerCommitPush.decide(10, oneBehind, 5 * MS, 100 * MS));
    Followers bothThere = new Followers(new long[] {10, 11}, 2);
    assertEquals(Decision.NUDGE, FollowerCommitPush.decide(10, bothThere, 0, 100 * MS));
  }

  @Test
  void aSilentFollowerIsNotWaitedFor() {
    // One follower answers no more (1 live of 2): the other holding the target is enough.
    Followers oneDown = new Followers(new long[] {10, 4}, 1);
    assertEquals(Decision.NUDGE, FollowerCommitPush.decide(10, oneDown, 0, 100 * MS));
    Followers noneLiveYetBehind = new Followers(new long[] {9, 4}, 1);
    assertEquals(Decision.WAIT, FollowerCommitPush.decide(10, noneLiveYetBehind, 0, 100 * MS));
  }

  @Test
  void aSlowFollowerIsLeftToTheHeartbeatAfterMaxWait() {
    Followers oneBehind = new Followers(new long[] {10, 9}, 2);
    assertEquals(Decision.WAIT, FollowerCommitPush.decide(10, oneBehind, 99 * MS, 100 * MS));
    assertEquals(Decision.NUDGE_LATE, FollowerCommitPush.decide(10, oneBehind, 100 * MS, 100 * MS));
  }

  @Test
  void isolatedWritesReachEveryFollowerBeforeTheHeartbeat(@TempDir Path dir) throws Exception {
    Map<String, String> slowHeartbeat =
        Map.of("raft.electionTimeoutMin", "8000ms", "raft.electionTimeoutMax", "10000ms");
    try (TestCluster cluster = TestCluster.start(dir, 3, slowHeartbeat);
        PlbAdminClient admin =
            PlbAdminClient.newBuilder().endpoints(cluster.endpoints()).build()) {
      int leader = cluster.awaitLeader(Duration.ofSeconds(30));
      long warm = admin.registerServer("q-warm", "127.0.0.1:9000", null);
      cluster.awaitAllApplied(warm, Duration.ofSeconds(10));
      long pushesBefore = cluster.node(leader).commitPushes();

      int writes = 40;
      for (int i = 0; i < writes; i++) {
        long v = admin.registerServer("q" + i, "127.0.0.1:" + (9001 + i), null);
        // Half the 4 s heartbeat interval: only a push gets the commit there this soon, and a
        // busy machine still has room.
        cluster.awaitAllApplied(v, Duration.ofMillis(2000));
      }
      long pushes = cluster.node(leader).commitPushes() - pushesBefore;
      assertTrue(pushes >= writes, "one push per isolated write, got " + pushes);

      // A stopped follower goes silent; once the leader counts it as down, writes are pushed to
      // the remaining follower without waiting for it.
      int stopped = (leader + 1) % 3;
      int other = (leader + 2) % 3;
      cluster.stopNode(stopped);
      PlbNode lead = cluster.node(leader);
      TestCluster.await(Duration.ofSeconds(20), "the leader to count one live follower",
          () -> {
            Followers f = lead.followerProgressForTest();
            return f != null && f.live() == 1;
          });
      long lateBefore = lead.lateCommitPushes();
      for (int i = 0; i < 5; i++) {
        long v = admin.registerServer("r" + i, "127.0.0.1:" + (9101 + i), null);
        TestCluster.await(Duration.ofMillis(2000), "follower at " + v,
            () -> cluster.node(other).publisher().appliedIndex() >= v);
      }
      assertEquals(lateBefore, lead.lateCommitPushes(), "no push waited for the stopped node");
    }
  }
}
