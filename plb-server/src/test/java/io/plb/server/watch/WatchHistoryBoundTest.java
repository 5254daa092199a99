package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.server.storage.StateStore;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node's change history, in memory and in RocksDB, stays within {@code watch.historyRanges}
 * when few changes hold many ranges (splits into thousands of pieces), well before
 * {@code watch.historyEntries} changes are kept, and after a restart too.
 */
class WatchHistoryBoundTest {
  @TempDir Path dir;

  @Test
  void largeChangesAreDroppedByTheirRangesInMemoryAndOnDisk() throws Exception {
    long last;
    try (TestCluster cluster = TestCluster.start(dir, 1, Map.of(
            "watch.historyEntries", "20", "watch.historyRanges", "10000"));
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
            .build()) {
      cluster.awaitLeader(Duration.ofSeconds(20));
      admin.splitEvenly(0L, 16);
      ClusterImage top = admin.getMap(0);
      last = 0;
      for (int i = 0; i < 10; i++) {
        last = admin.splitEvenly(top.range(i).start(), 3000); // 3,001 range entries each
      }
      cluster.awaitAllApplied(last, Duration.ofSeconds(30));
      assertEquals(3, cluster.node(0).publisher().historySize(),
          "3 x 3,001 ranges fit in 10,000; the 4th would not");
      cluster.stopNode(0);
      try (StateStore store = StateStore.open(cluster.dataDir(0).resolve("db"))) {
        List<MapDelta> kept = store.loadChanges();
        assertTrue(kept.size() <= 3 + 2, "RocksDB keeps what memory keeps, and at most the "
            + "changes of one trim interval (2 applies) more: " + kept.size());
        assertEquals(last, kept.get(kept.size() - 1).version());
      }
      cluster.startNode(0);
      cluster.awaitAllApplied(last, Duration.ofSeconds(30));
      assertEquals(3, cluster.node(0).publisher().historySize(), "after a restart too");
    }
  }
}
