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
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The queue server's worker pool is bounded ({@code maxWorkers}): a publish request or a
 * transfer that finds every worker busy is answered RESOURCE_EXHAUSTED at once, stores nothing,
 * and the server serves normally once workers are free again.
 */
class WorkerPoolBoundTest {
  @TempDir Path tmp;
  QueueCluster cluster;
  ManagedChannel channel;
  RawQueueClient raw;

  @BeforeEach
  void start() throws Exception {
    // Two workers; a publish tagged with the next map version holds one until that version.
    cluster = QueueCluster.start(tmp, 1, Map.of(), Map.of("maxWorkers", "2", "mapWait", "60s"));
    cluster.layOut(1);
    channel = NettyChannelBuilder.forTarget(cluster.queue(0).address()).usePlaintext().build();
    raw = new RawQueueClient(cluster.queue(0).address());
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

  @Test
  void requestsPastTheWorkersAreRefusedAndTheServerRecovers() throws Exception {
    QueueServer q = cluster.queue(0);
    long v = cluster.map().version();
    TestCluster.await(Duration.ofSeconds(20), "q1 at the map version", () ->
        q.agent().version() >= v);
    long queued = raw.status().getQueued();
    try (PublishStream a = new PublishStream(channel);
        PublishStream b = new PublishStream(channel);
        PublishStream c = new PublishStream(channel)) {
      a.send("p-a", RawQueueClient.item(1, "ka", "a1", v + 1));
      b.send("p-b", RawQueueClient.item(1, "kb", "b1", v + 1));
      TestCluster.await(Duration.ofSeconds(20), "both workers waiting for the next version",
          () -> q.busyWorkers() == 2);

      // A third stream finds no worker: its request ends the stream, nothing stored.
      c.send("p-c", RawQueueClient.item(1, "kc", "c1", v));
      Status s = c.error();
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
      assertTrue(s.getDescription().contains("maxWorkers"), s.getDescription());
      StatusRuntimeException t = assertThrows(StatusRuntimeException.class,
          () -> raw.transfer(TransferHeldRequest.newBuilder().setFromServer("q9")
              .setRangeStart(0).setHandoverEpoch(1).setDirection(TransferDirection.FORWARD)
              .setMapVersion(v).addMessages(StoredMessage.newBuilder()
                  .setKey(ByteString.copyFromUtf8("k")).setProducer("p").setSeq(1)).build()));
      assertEquals(Status.Code.RESOURCE_EXHAUSTED, t.getStatus().getCode());
      assertEquals(queued, raw.status().getQueued());
      assertEquals(0, raw.status().getHeld());

      // A new map version frees both workers; their messages are taken.
      cluster.admin().registerServer("q9", "127.0.0.1:1", 1.0);
      assertEquals(PublishStatus.ACCEPTED, a.results().get(0).getStatus());
      assertEquals(PublishStatus.ACCEPTED, b.results().get(0).getStatus());
    }
    TestCluster.await(Duration.ofSeconds(20), "workers free", () -> q.busyWorkers() == 0);
    // The server serves as before: the refused message, sent again, is taken.
    try (PublishStream c = new PublishStream(channel)) {
      List<PublishResult> r = c.send("p-c", RawQueueClient.item(1, "kc", "c1",
          q.agent().version())).results();
      assertEquals(PublishStatus.ACCEPTED, r.get(0).getStatus());
    }
    assertEquals(queued + 3, raw.status().getQueued());
  }
}
