package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.server.testing.CuttableProxy;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A watch stream to a node that goes silent — its packets dropped, so neither side notices for
 * the keep-alive's 50 s — is left for another node as soon as the subscriber learns of a newer
 * version (a queue server from its lease grant, a router from a refusal) and the stream has not
 * brought it within {@link MapWatcher#BEHIND_LIMIT_MILLIS}. (In the nemesis, queue servers
 * watching through an isolated leader served nothing for up to 25 s.)
 */
class SilentNodeWatchTest {
  @TempDir Path dir;

  @Test
  void aWatcherBehindAKnownVersionLeavesASilentNode() throws Exception {
    try (TestCluster cluster = TestCluster.start(dir);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
            .build()) {
      cluster.awaitLeader(Duration.ofSeconds(20));
      long before = admin.registerServer("q-before", "127.0.0.1:9001", 1.0);
      try (CuttableProxy silent = new CuttableProxy(cluster.endpoint(0));
          Endpoints eps = new Endpoints(List.of(silent.address(), cluster.endpoint(1),
              cluster.endpoint(2)));
          MapWatcher watcher = new MapWatcher(eps, (image, delta) -> {}).start()) {
        TestCluster.await(Duration.ofSeconds(20), "the watcher at " + before,
            () -> version(watcher) >= before);
        silent.swallowReplies();
        long after = admin.registerServer("q-after", "127.0.0.1:9002", 1.0);
        watcher.expect(after);
        TestCluster.await(Duration.ofSeconds(10), "the watcher at " + after
            + " through another node", () -> version(watcher) >= after);
        assertTrue(watcher.behindSwitches() >= 1);
      }
    }
  }

  private static long version(MapWatcher w) {
    ClusterImage i = w.image();
    return i == null ? 0 : i.version();
  }
}
