package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.Acknowledge;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.proto.v1.SubscribeStart;
import io.plb.queue.config.QueueConfig;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One queue server hands a range to another while a producer publishes one message at a time
 * (raw gRPC, no router): every message is delivered once, in order.
 */
class QueueHandoverSmokeTest {
  @TempDir Path tmp;

  @Test
  void moveWhilePublishing() throws Exception {
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"));
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build()) {
      plb.awaitLeader(Duration.ofSeconds(20));
      QueueServer q1 = QueueServer.start(config(plb, "q1"));
      QueueServer q2 = QueueServer.start(config(plb, "q2"));
      try {
        admin.assign(0, "q1", false);
        ClusterImage[] image = {admin.getMap(0)};
        List<String> got = new CopyOnWriteArrayList<>();
        List<ManagedChannel> channels = new ArrayList<>();
        for (QueueServer q : List.of(q1, q2)) {
          ManagedChannel ch = NettyChannelBuilder.forTarget(q.address()).usePlaintext().build();
          channels.add(ch);
          subscribe(ch, got);
        }
        int n = 200;
        CompletableFuture<Void> mover = CompletableFuture.runAsync(() -> {
          TestCluster.await(Duration.ofSeconds(20), "some published", () -> got.size() > 20);
          admin.move(0, "q2");
        });
        for (int seq = 1; seq <= n; ) {
          ClusterImage map = admin.getMap(0);
          var r = map.rangeFor(0);
          String dest = r.handover() != null
              && r.handover().phase() == io.plb.core.map.HandoverPhase.SWITCH
              ? r.handover().target() : r.owner();
          ManagedChannel ch = channels.get(dest.equals("q1") ? 0 : 1);
          PublishResult res = publishOne(ch, seq, map.version());
          if (res.getStatus() == PublishStatus.ACCEPTED) {
            seq++;
          } else {
            assertEquals(PublishStatus.WRONG_OWNER, res.getStatus(), res.toString());
          }
        }
        mover.get(30, TimeUnit.SECONDS);
        TestCluster.await(Duration.ofSeconds(30), "all delivered", () -> got.size() >= n);
        TestCluster.await(Duration.ofSeconds(30), "handover complete",
            () -> admin.getMap(0).rangeFor(0).owner().equals("q2"));
        List<String> expected = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
          expected.add("m" + i);
        }
        assertEquals(expected, got);
        channels.forEach(ManagedChannel::shutdownNow);
      } finally {
        q1.close();
        q2.close();
      }
    }
  }

  private QueueConfig config(TestCluster plb, String id) {
    return QueueConfig.of(Map.of("id", id, "data", tmp.resolve(id).toString(),
        "plb", String.join(",", plb.endpoints()), "resendInterval", "100ms"));
  }

  private static PublishResult publishOne(ManagedChannel ch, long seq, long version)
      throws Exception {
    LinkedBlockingQueue<PublishResponse> out = new LinkedBlockingQueue<>();
    StreamObserver<PublishRequest> req = QueueServiceGrpc.newStub(ch).publish(
        new StreamObserver<>() {
          @Override
          public void onNext(PublishResponse r) {
            out.add(r);
          }

          @Override
          public void onError(Throwable t) {}

          @Override
          public void onCompleted() {}
        });
    req.onNext(PublishRequest.newBuilder().setProducer("p1").addItems(PublishItem.newBuilder()
        .setSeq(seq).setKey(ByteString.copyFromUtf8("k")).setMapVersion(version)
        .setPayload(ByteString.copyFromUtf8("m" + seq))).build());
    PublishResponse r = out.poll(20, TimeUnit.SECONDS);
    req.onCompleted();
    assertTrue(r != null, "no publish answer");
    return r.getResults(0);
  }

  private static void subscribe(ManagedChannel ch, List<String> got) {
    StreamObserver<SubscribeRequest>[] req = new StreamObserver[1];
    req[0] = QueueServiceGrpc.newStub(ch).subscribe(new StreamObserver<>() {
      @Override
      public void onNext(SubscribeResponse r) {
        Acknowledge.Builder ack = Acknowledge.newBuilder();
        for (Delivery d : r.getDeliveriesList()) {
          got.add(d.getPayload().toString(StandardCharsets.UTF_8));
          ack.addDeliveryIds(d.getDeliveryId());
        }
        synchronized (req) {
          req[0].onNext(SubscribeRequest.newBuilder().setAck(ack).build());
        }
      }

      @Override
      public void onError(Throwable t) {}

      @Override
      public void onCompleted() {}
    });
    synchronized (req) {
      req[0].onNext(SubscribeRequest.newBuilder()
          .setStart(SubscribeStart.newBuilder().setConsumer("c")).build());
    }
  }
}
