package io.plb.queue;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.queue.testing.NetCut;
import io.plb.queue.testing.PlbProcesses;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * A PLB follower cut off from the other nodes (nftables beneath the processes) while its
 * watchers still reach it: it stops serving its stale map once it has heard from no leader for
 * {@code watch.leaderLoss}, and a watcher that followed it moves to another node and sees the
 * changes committed meanwhile. (Before, its watch streams stayed open with progress at its stale
 * version: queue servers watching through it never applied the version their lease grants named
 * and served nothing until the partition healed.)
 */
class PartitionedNodeWatchTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp;

  @Test
  void aWatcherOfACutOffFollowerMovesToANodeThatFollowsTheMap() throws Exception {
    assumeTrue(NetCut.available(), "cutting links needs root and nft");
    try (PlbProcesses plb = PlbProcesses.start(tmp, 3, TestCluster.liveness("6s", "3s"), true);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build()) {
      int leader = plb.awaitLeader(WAIT);
      int follower = (leader + 1) % 3;
      List<String> order = new ArrayList<>();
      for (int k = 0; k < 3; k++) {
        order.add(plb.endpoints().get((follower + k) % 3));
      }
      try (Endpoints eps = new Endpoints(order);
          MapWatcher watcher = new MapWatcher(eps, (image, delta) -> {}).start()) {
        long before = admin.registerServer("q-before", "127.0.0.1:9001", 1.0);
        TestCluster.await(WAIT, "the watcher at " + before, () -> version(watcher) >= before);
        List<NetCut> cuts = plb.cutFromPeers(follower);
        try {
          long after = admin.registerServer("q-after", "127.0.0.1:9002", 1.0);
          TestCluster.await(WAIT, "the watcher at " + after + ", through another node",
              () -> version(watcher) >= after);
        } finally {
          for (NetCut c : cuts) {
            c.close();
          }
        }
      }
    }
  }

  private static long version(MapWatcher w) {
    return w.image() == null ? 0 : w.image().version();
  }
}
