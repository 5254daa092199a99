package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.core.keyspace.KeyHash;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.PublishStream;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Refusal fences live while their producer session has a publish stream on the server: they go
 * when its last stream ends, and a restart keeps none. Sessions with open streams are bounded
 * ({@code maxProducers}): a request of one more ends its stream RESOURCE_EXHAUSTED with nothing
 * stored. The agent state is written only when the handover sides change.
 */
class FenceLifetimeTest {
  static final Duration T = Duration.ofSeconds(20);
  @TempDir Path tmp;
  QueueCluster cluster;
  ManagedChannel channel;
  RawQueueClient raw;
  /** A key of the range q1 owns, and one of the range q2 owns. */
  String mine;
  String theirs;

  @BeforeEach
  void start() throws Exception {
    cluster = QueueCluster.start(tmp, 1, Map.of(), Map.of("maxProducers", "2"));
    cluster.layOut(2);
    cluster.admin().registerServer("q2", "127.0.0.1:1", 1.0);
    cluster.admin().assign(Long.MIN_VALUE, "q2", true); // the upper half of the ring
    connect();
    mine = keyOf("q1");
    theirs = keyOf("q2");
  }

  private void connect() throws Exception {
    channel = NettyChannelBuilder.forTarget(cluster.queue(0).address()).usePlaintext().build();
    raw = new RawQueueClient(cluster.queue(0).address());
    long v = cluster.map().version();
    TestCluster.await(T, "q1 at the map version", () -> cluster.queue(0).agent().version() >= v);
  }

  private void disconnect() {
    if (raw != null) {
      raw.close();
    }
    if (channel != null) {
      channel.shutdownNow();
    }
  }

  @AfterEach
  void stop() {
    disconnect();
    if (cluster != null) {
      cluster.close();
    }
  }

  private String keyOf(String owner) {
    for (int i = 0; ; i++) {
      String k = "k" + i;
      if (cluster.map().rangeFor(KeyHash.hash(k.getBytes(StandardCharsets.UTF_8))).owner()
          .equals(owner)) {
        return k;
      }
    }
  }

  private long v() {
    return cluster.queue(0).agent().version();
  }

  @Test
  void aSessionsFencesGoWithItsLastStream() throws Exception {
    QueueServer q = cluster.queue(0);
    try (PublishStream a = new PublishStream(channel);
        PublishStream a2 = new PublishStream(channel);
        PublishStream b = new PublishStream(channel)) {
      assertEquals(PublishStatus.WRONG_OWNER, a.send("p1", RawQueueClient.item(1, theirs, "x",
          v())).results().get(0).getStatus());
      assertEquals(1, q.agent().fencedProducers());
      // p1 on a second stream too: its fences stay until both have ended.
      assertEquals(PublishStatus.ACCEPTED, a2.send("p1", RawQueueClient.item(2, mine, "y",
          v())).results().get(0).getStatus());
      assertEquals(PublishStatus.ACCEPTED, b.send("p2", RawQueueClient.item(1, mine, "z",
          v())).results().get(0).getStatus());
      assertEquals(2, q.openSessions());
      a.close();
      TestCluster.await(T, "the first stream released", () -> q.agent().fencedProducers() == 1
          && q.openSessions() == 2);
      a2.close();
      TestCluster.await(T, "p1's fences dropped with its last stream",
          () -> q.agent().fencedProducers() == 0 && q.openSessions() == 1);
    }
    TestCluster.await(T, "every stream released", () -> q.openSessions() == 0);
  }

  @Test
  void sessionsPastTheBoundAreRefusedUntilOneEnds() throws Exception {
    QueueServer q = cluster.queue(0);
    long queued = raw.status().getQueued();
    try (PublishStream a = new PublishStream(channel);
        PublishStream b = new PublishStream(channel)) {
      assertEquals(PublishStatus.WRONG_OWNER, a.send("p1", RawQueueClient.item(1, theirs, "x",
          v())).results().get(0).getStatus());
      assertEquals(PublishStatus.ACCEPTED, b.send("p2", RawQueueClient.item(1, mine, "y",
          v())).results().get(0).getStatus());
      try (PublishStream c = new PublishStream(channel)) {
        Status s = c.send("p3", RawQueueClient.item(1, mine, "z", v())).error();
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
        assertTrue(s.getDescription().contains("maxProducers"), s.getDescription());
      }
      assertEquals(queued + 1, raw.status().getQueued());
      assertEquals(2, q.openSessions());
      a.close();
      TestCluster.await(T, "p1's stream released", () -> q.openSessions() == 1);
      try (PublishStream c = new PublishStream(channel)) {
        assertEquals(PublishStatus.ACCEPTED, c.send("p3", RawQueueClient.item(1, mine, "z",
            v())).results().get(0).getStatus());
      }
    }
    assertEquals(queued + 2, raw.status().getQueued());
  }

  @Test
  void aRestartKeepsNoFencesAndAnUnchangedStateIsNotWrittenAgain() throws Exception {
    long written = cluster.queue(0).agent().statesWritten();
    // New map versions and resend rounds with no handover: nothing to write.
    long w = cluster.admin().registerServer("q3", "127.0.0.1:2", 1.0);
    TestCluster.await(T, "q1 at version " + w, () -> cluster.queue(0).agent().version() >= w);
    assertEquals(written, cluster.queue(0).agent().statesWritten());

    try (PublishStream a = new PublishStream(channel)) {
      assertEquals(PublishStatus.WRONG_OWNER, a.send("p1", RawQueueClient.item(1, theirs, "x",
          v())).results().get(0).getStatus());
      assertEquals(1, cluster.queue(0).agent().fencedProducers());
      disconnect();
      cluster.restartQueue(0);
    }
    connect();
    assertEquals(0, cluster.queue(0).agent().fencedProducers());
    try (PublishStream a = new PublishStream(channel)) {
      assertEquals(PublishStatus.ACCEPTED, a.send("p1", RawQueueClient.item(2, mine, "y",
          v())).results().get(0).getStatus());
    }
  }
}
