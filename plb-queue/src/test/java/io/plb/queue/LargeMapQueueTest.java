package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.client.router.PublishAck;
import io.plb.client.router.Router;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.queue.config.QueueConfig;
import io.plb.server.testing.LargeMaps;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two reference queue servers start fresh against a map of 1,000,000 ranges (built on one real
 * PLB node): each one's agent gets the whole map in chunks, and a fresh router's messages, routed
 * by it, are accepted by the servers that own their keys at the map's version.
 */
class LargeMapQueueTest {
  private static final Duration T = Duration.ofSeconds(60);

  @TempDir Path tmp;

  @Test
  void freshQueueServersAndARouterWorkOnAMillionRanges() throws Exception {
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 1,
            Map.of("map.maxSplitPieces", "4000", "watch.historyEntries", "20"));
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints())
            .deadline(Duration.ofSeconds(30)).build()) {
      plb.awaitLeader(T);
      List<String> ids = List.of("q1", "q2");
      List<String> addresses = new ArrayList<>();
      for (String id : ids) {
        addresses.add("127.0.0.1:" + TestCluster.freePort());
        admin.registerServer(id, addresses.get(addresses.size() - 1), null);
      }
      long version = LargeMaps.build(admin, ids, 250, 4000);
      ClusterImage map = admin.getMap(version);
      assertEquals(1_000_000, map.rangeCount());

      List<QueueServer> queues = new ArrayList<>();
      try {
        startAndCheck(plb, ids, addresses, version, map, queues);
      } finally {
        for (QueueServer q : queues) {
          q.close();
        }
      }
    }
  }

  private void startAndCheck(TestCluster plb, List<String> ids, List<String> addresses,
      long version, ClusterImage map, List<QueueServer> queues) throws Exception {
    long started = System.nanoTime();
    for (int i = 0; i < ids.size(); i++) {
      queues.add(QueueServer.start(QueueConfig.of(Map.of("id", ids.get(i),
          "listen", addresses.get(i), "data", tmp.resolve(ids.get(i)).toString(),
          "plb", String.join(",", plb.endpoints()), "sync", "false"))));
    }
    for (QueueServer q : queues) {
      TestCluster.await(T, q.id() + " at version " + version,
          () -> q.agent().version() == version);
      assertEquals(map, q.agent().image());
    }
    System.out.printf("two fresh queue servers had the %,d-range map after %d ms%n",
        map.rangeCount(), (System.nanoTime() - started) / 1_000_000);

    try (Router router = Router.start(plb.endpoints())) {
      assertTrue(router.awaitVersion(version, T));
      long sent = System.nanoTime();
      List<CompletableFuture<PublishAck>> acks = new ArrayList<>();
      List<String> keys = new ArrayList<>();
      for (int k = 0; k < 200; k++) {
        keys.add("customer-" + k);
        acks.add(router.publish(keys.get(k), new byte[] {1}));
      }
      for (int k = 0; k < keys.size(); k++) {
        PublishAck ack = acks.get(k).get(T.toSeconds(), TimeUnit.SECONDS);
        String owner = map.rangeFor(
            KeyHash.hash(keys.get(k).getBytes(StandardCharsets.UTF_8))).owner();
        assertEquals(owner, ack.serverId(), keys.get(k));
        assertEquals(version, ack.mapVersion());
      }
      System.out.printf("200 messages accepted in %d ms%n",
          (System.nanoTime() - sent) / 1_000_000);
      assertEquals(0, router.contractViolations());
    }
  }
}
