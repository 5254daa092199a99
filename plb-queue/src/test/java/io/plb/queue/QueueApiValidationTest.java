package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.QueueStatusRequest;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferOutcome;
import io.plb.queue.testing.QueueCluster;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad input on the queue API gets a clear error and changes nothing. */
class QueueApiValidationTest {
  @TempDir static Path tmp;
  static QueueCluster cluster;
  static ManagedChannel channel;
  static QueueServiceGrpc.QueueServiceBlockingStub stub;

  @BeforeAll
  static void start() throws Exception {
    cluster = QueueCluster.start(tmp, 1, Map.of(), Map.of("maxMessageBytes", "1024"));
    cluster.layOut(1);
    channel = NettyChannelBuilder.forTarget(cluster.queue(0).address()).usePlaintext().build();
    stub = QueueServiceGrpc.newBlockingStub(channel);
  }

  @AfterAll
  static void stop() {
    channel.shutdownNow();
    cluster.close();
  }

  private static PublishItem.Builder item(String key, int payloadBytes) {
    return PublishItem.newBuilder().setSeq(1).setKey(ByteString.copyFromUtf8(key))
        .setPayload(ByteString.copyFrom(new byte[payloadBytes]))
        .setMapVersion(cluster.map().version());
  }

  private static List<PublishResult> publish(String producer, PublishItem.Builder... items)
      throws Exception {
    LinkedBlockingQueue<Object> out = new LinkedBlockingQueue<>();
    StreamObserver<PublishRequest> req = QueueServiceGrpc.newStub(channel).publish(
        new StreamObserver<>() {
          @Override
          public void onNext(PublishResponse r) {
            out.add(r);
          }

          @Override
          public void onError(Throwable t) {
            out.add(t);
          }

          @Override
          public void onCompleted() {}
        });
    PublishRequest.Builder b = PublishRequest.newBuilder().setProducer(producer);
    for (PublishItem.Builder i : items) {
      b.addItems(i);
    }
    req.onNext(b.build());
    Object r = out.poll(20, TimeUnit.SECONDS);
    req.onCompleted();
    assertTrue(r instanceof PublishResponse, "no answer: " + r);
    return ((PublishResponse) r).getResultsList();
  }

  private static long queued() {
    return stub.getQueueStatus(QueueStatusRequest.getDefaultInstance()).getQueued();
  }

  @Test
  void badMessagesAreRejectedOneByOneAndNothingIsStored() throws Exception {
    long before = queued();
    List<PublishResult> r = publish("p-bad",
        item("", 10),                               // empty key
        item("k", 2048),                            // over maxMessageBytes
        item("k", 10).setMapVersion(0),             // no map version
        item("k".repeat(5000), 10),                 // key too long
        item("k", 10).setSeq(0));                   // no sequence number
    assertEquals(5, r.size());
    for (PublishResult x : r) {
      assertEquals(PublishStatus.REJECTED, x.getStatus(), x.toString());
      assertTrue(!x.getDetail().isEmpty(), "a rejection says why");
    }
    assertTrue(r.get(0).getDetail().contains("empty ordering key"), r.get(0).getDetail());
    assertTrue(r.get(1).getDetail().contains("2048"), r.get(1).getDetail());
    assertEquals(before, queued());
  }

  @Test
  void anUnnamedProducerIsRejected() throws Exception {
    long before = queued();
    List<PublishResult> r = publish("", item("k", 1));
    assertEquals(PublishStatus.REJECTED, r.get(0).getStatus());
    assertEquals(before, queued());
  }

  @Test
  void aGoodMessageNextToBadOnesIsAccepted() throws Exception {
    long before = queued();
    List<PublishResult> r = publish("p-mixed", item("", 1), item("k", 1).setSeq(2));
    assertEquals(PublishStatus.REJECTED, r.get(0).getStatus());
    assertEquals(PublishStatus.ACCEPTED, r.get(1).getStatus());
    assertTrue(queued() >= before); // a consumer may not be connected: it stays queued
  }

  @Test
  void transfersForUnknownRangesOrEpochsAreRefused() {
    long version = cluster.map().version();
    TransferHeldRequest.Builder good = TransferHeldRequest.newBuilder().setFromServer("q9")
        .setRangeStart(0).setHandoverEpoch(5).setDirection(TransferDirection.FORWARD)
        .setMapVersion(version).addMessages(StoredMessage.newBuilder()
            .setKey(ByteString.copyFromUtf8("k")).setProducer("p").setSeq(1));
    long held = stub.getQueueStatus(QueueStatusRequest.getDefaultInstance()).getHeld();
    // no open handover of this range at this epoch here
    assertEquals(TransferOutcome.TRANSFER_REFUSED, stub.transferHeld(good.build()).getOutcome());
    // a range start that is not a range at all
    assertEquals(TransferOutcome.TRANSFER_REFUSED,
        stub.transferHeld(good.clone().setRangeStart(12345).build()).getOutcome());
    assertEquals(held, stub.getQueueStatus(QueueStatusRequest.getDefaultInstance()).getHeld());
  }

  @Test
  void malformedTransfersAreInvalidArguments() {
    TransferHeldRequest.Builder b = TransferHeldRequest.newBuilder().setFromServer("q9")
        .setRangeStart(0).setHandoverEpoch(1).setDirection(TransferDirection.FORWARD)
        .setMapVersion(1);
    for (TransferHeldRequest bad : List.of(
        b.clone().setFromServer("").build(),
        b.clone().setHandoverEpoch(0).build(),
        b.clone().setDirection(TransferDirection.TRANSFER_DIRECTION_UNSPECIFIED).build(),
        b.clone().setMapVersion(0).build(),
        b.clone().addMessages(StoredMessage.newBuilder().setProducer("p")).build(),
        b.clone().setChunk(1).setCursor(com.google.protobuf.ByteString.copyFrom(new byte[65]))
            .build(),
        b.clone().setFinalChunk(true).build())) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
          () -> stub.transferHeld(bad));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    }
  }
}
