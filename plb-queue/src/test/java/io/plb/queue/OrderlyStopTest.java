package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A queue server stopped while a router streams publishes at it answers every message it stored:
 * the request being handled is finished and answered, the stream then ends UNAVAILABLE, and
 * nothing that was not answered is stored. Before, the stop kept taking requests on open streams
 * and then cancelled them, so the message being stored lost its answer, the router sent it again,
 * and it was delivered twice.
 */
class OrderlyStopTest {
  @TempDir Path tmp;

  @Test
  void aStopAnswersEveryMessageItStored() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 1, Map.of(), Map.of())) {
      c.layOut(1);
      long v = c.map().version();
      TestCluster.await(Duration.ofSeconds(20), "q1 at the layout",
          () -> c.queue(0).agent().version() >= v);
      ManagedChannel ch = NettyChannelBuilder.forTarget(c.queue(0).address()).usePlaintext()
          .build();
      AtomicInteger accepted = new AtomicInteger();
      AtomicInteger other = new AtomicInteger();
      AtomicReference<Throwable> ended = new AtomicReference<>();
      try {
        StreamObserver<PublishRequest> req = QueueServiceGrpc.newStub(ch).publish(
            new StreamObserver<>() {
              @Override
              public void onNext(PublishResponse r) {
                for (PublishResult x : r.getResultsList()) {
                  (x.getStatus() == PublishStatus.ACCEPTED ? accepted : other).incrementAndGet();
                }
              }

              @Override
              public void onError(Throwable t) {
                ended.set(t);
              }

              @Override
              public void onCompleted() {}
            });
        // Requests written back to back, as a router's link does; the server takes them one
        // at a time, so when the stop comes one is being stored and many wait.
        int n = 5000;
        for (int i = 1; i <= n; i++) {
          req.onNext(PublishRequest.newBuilder().setProducer("p").addItems(
              RawQueueClient.item(i, "k" + (i % 10), "m" + i, v)).build());
        }
        TestCluster.await(Duration.ofSeconds(30), "publishes answered",
            () -> accepted.get() >= 100);
        c.stopQueue(0);
        TestCluster.await(Duration.ofSeconds(10), "the stream ended", () -> ended.get() != null);
        assertEquals(0, other.get());
        assertTrue(accepted.get() < n, "the stop came while requests were waiting");
      } finally {
        ch.shutdownNow();
      }
      c.startQueue(0);
      assertEquals(accepted.get(), c.queue(0).store().queued(),
          "every stored message was answered, and only those");
      assertEquals(Status.Code.UNAVAILABLE, Status.fromThrowable(ended.get()).getCode(),
          String.valueOf(ended.get()));
    }
  }
}
