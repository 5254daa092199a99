package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.queue.testing.PublishStream;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A message or transfer tagged with a map version the server has not reached waits for it (C2),
 * within bounds: a tag more than {@code maxVersionLead} ahead, or one that finds
 * {@code maxMapWaiters} requests waiting already, is answered at once (a publish OVERLOADED, a
 * transfer RESOURCE_EXHAUSTED), stores nothing, and the server keeps serving.
 */
class MapWaitBoundTest {
  @TempDir Path tmp;
  QueueCluster cluster;
  ManagedChannel channel;
  RawQueueClient raw;

  @BeforeEach
  void start() throws Exception {
    cluster = QueueCluster.start(tmp, 1, Map.of(), Map.of("maxMapWaiters", "1",
        "maxVersionLead", "1000", "mapWait", "60s"));
    cluster.layOut(1);
    channel = NettyChannelBuilder.forTarget(cluster.queue(0).address()).usePlaintext().build();
    raw = new RawQueueClient(cluster.queue(0).address());
    long v = cluster.map().version();
    TestCluster.await(Duration.ofSeconds(20), "q1 at the map version", () ->
        cluster.queue(0).agent().version() >= v);
  }

  @AfterEach
  void stop() {
    if (raw != null) {
      raw.close();
    }
    if (channel != null) {
      channel.shutdownNow();
    }
    if (cluster != null) {
      cluster.close();
    }
  }

  private static TransferHeldRequest transfer(long tag) {
    return TransferHeldRequest.newBuilder().setFromServer("q9").setRangeStart(0)
        .setHandoverEpoch(1).setDirection(TransferDirection.FORWARD).setMapVersion(tag)
        .addMessages(StoredMessage.newBuilder().setKey(ByteString.copyFromUtf8("k"))
            .setProducer("p").setSeq(1)).build();
  }

  private Status transferError(long tag) {
    return assertThrows(StatusRuntimeException.class, () -> raw.transfer(transfer(tag)))
        .getStatus();
  }

  @Test
  void aTagFarAheadIsNotWaitedFor() throws Exception {
    long v = cluster.queue(0).agent().version();
    long queued = raw.status().getQueued();
    try (PublishStream s = new PublishStream(channel)) {
      PublishResult r = s.send("p-far", RawQueueClient.item(1, "k", "far", v + 5000))
          .results().get(0);
      assertEquals(PublishStatus.OVERLOADED, r.getStatus());
      assertTrue(r.getDetail().contains("maxVersionLead"), r.getDetail());
    }
    Status t = transferError(Long.MAX_VALUE);
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, t.getCode());
    assertTrue(t.getDescription().contains("maxVersionLead"), t.getDescription());
    assertEquals(queued, raw.status().getQueued());
    // A worker is released just after its answer leaves: wait for it, do not race it.
    TestCluster.await(Duration.ofSeconds(20), "no worker held by the refused requests",
        () -> cluster.queue(0).busyWorkers() == 0);
    // Within the lead the server still waits for a version, and takes the message once there.
    try (PublishStream s = new PublishStream(channel)) {
      s.send("p-near", RawQueueClient.item(1, "k", "near", v + 1));
      TestCluster.await(Duration.ofSeconds(20), "the publish waiting for the next version",
          () -> cluster.queue(0).busyWorkers() == 1);
      cluster.admin().registerServer("q9", "127.0.0.1:1", 1.0);
      assertEquals(PublishStatus.ACCEPTED, s.results().get(0).getStatus());
    }
    assertEquals(queued + 1, raw.status().getQueued());
  }

  @Test
  void waitersPastTheBoundAreAnsweredAtOnce() throws Exception {
    QueueServer q = cluster.queue(0);
    long v = q.agent().version();
    long queued = raw.status().getQueued();
    try (PublishStream a = new PublishStream(channel);
        PublishStream b = new PublishStream(channel)) {
      a.send("p-a", RawQueueClient.item(1, "ka", "a1", v + 1));
      TestCluster.await(Duration.ofSeconds(20), "one publish waiting for the next version",
          () -> q.busyWorkers() == 1);
      PublishResult r = b.send("p-b", RawQueueClient.item(1, "kb", "b1", v + 1)).results()
          .get(0);
      assertEquals(PublishStatus.OVERLOADED, r.getStatus());
      assertTrue(r.getDetail().contains("maxMapWaiters"), r.getDetail());
      Status t = transferError(v + 1);
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, t.getCode());
      assertTrue(t.getDescription().contains("maxMapWaiters"), t.getDescription());
      assertEquals(queued, raw.status().getQueued());

      cluster.admin().registerServer("q9", "127.0.0.1:1", 1.0);
      assertEquals(PublishStatus.ACCEPTED, a.results().get(0).getStatus());
      // The refused one, sent again under the current map, is taken.
      assertEquals(PublishStatus.ACCEPTED, b.send("p-b", RawQueueClient.item(1, "kb", "b1",
          q.agent().version())).results().get(0).getStatus());
    }
    assertEquals(queued + 2, raw.status().getQueued());
    TestCluster.await(Duration.ofSeconds(20), "workers free", () -> q.busyWorkers() == 0);
  }
}
