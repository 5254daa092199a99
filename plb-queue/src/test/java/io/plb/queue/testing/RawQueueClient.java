package io.plb.queue.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.proto.v1.Acknowledge;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.QueueStatus;
import io.plb.proto.v1.QueueStatusRequest;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.proto.v1.SubscribeStart;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferHeldResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The queue API by hand, for tests that must place a message exactly: publish messages with a
 * chosen map-version tag to a chosen server, subscribe and acknowledge everything, hold
 * deliveries without acknowledging them, send a {@code TransferHeld} as a peer would, read the
 * server's status. Closes its channel on {@link #close}.
 */
public final class RawQueueClient implements AutoCloseable {
  private final ManagedChannel channel;

  public RawQueueClient(String address) {
    this.channel = NettyChannelBuilder.forTarget(address).usePlaintext().build();
  }

  /** Publishes one message and waits for its result. */
  public PublishResult publish(String producer, long seq, String key, String payload, long tag)
      throws InterruptedException {
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
    req.onNext(PublishRequest.newBuilder().setProducer(producer).addItems(PublishItem.newBuilder()
        .setSeq(seq).setKey(ByteString.copyFromUtf8(key)).setMapVersion(tag)
        .setPayload(ByteString.copyFromUtf8(payload))).build());
    Object r = out.poll(30, TimeUnit.SECONDS);
    req.onCompleted();
    assertTrue(r instanceof PublishResponse, "no publish answer: " + r);
    return ((PublishResponse) r).getResults(0);
  }

  /**
   * Publishes {@code items} in one request on a fresh stream (as a router's pipelined batch) and
   * waits for their results, in order.
   */
  public List<PublishResult> publishBatch(String producer, List<PublishItem> items)
      throws InterruptedException {
    return publishBatch(PublishRequest.newBuilder().setProducer(producer).addAllItems(items)
        .build());
  }

  /** Sends {@code request} on a fresh stream and waits for its results, in order. */
  public List<PublishResult> publishBatch(PublishRequest request) throws InterruptedException {
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
    req.onNext(request);
    Object r = out.poll(30, TimeUnit.SECONDS);
    req.onCompleted();
    assertTrue(r instanceof PublishResponse, "no publish answer: " + r);
    return new ArrayList<>(((PublishResponse) r).getResultsList());
  }

  /** One item as a router builds it: key and payload as UTF-8, routed under map {@code tag}. */
  public static PublishItem item(long seq, String key, String payload, long tag) {
    return PublishItem.newBuilder().setSeq(seq).setKey(ByteString.copyFromUtf8(key))
        .setMapVersion(tag).setPayload(ByteString.copyFromUtf8(payload)).build();
  }

  /** Sends a {@code TransferHeld} as a peer's agent would, and returns the answer. */
  public TransferHeldResponse transfer(TransferHeldRequest request) {
    return QueueServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
        .transferHeld(request);
  }

  /** The server's status counters. */
  public QueueStatus status() {
    return QueueServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS)
        .getQueueStatus(QueueStatusRequest.getDefaultInstance());
  }

  /**
   * Subscribes as a consumer that takes up to {@code maxInFlight} deliveries and acknowledges
   * none: whatever it holds stays out (which keeps a handover's source backlog from draining)
   * until the returned handle is closed, when the server delivers it again, marked redelivered.
   */
  public Holding hold(String consumer, int maxInFlight, List<Delivery> got) {
    return hold(consumer, maxInFlight, got::add);
  }

  /** {@link #hold(String, int, List)}, handing each delivery to {@code onDelivery}. */
  public Holding hold(String consumer, int maxInFlight,
      java.util.function.Consumer<Delivery> onDelivery) {
    @SuppressWarnings("unchecked")
    StreamObserver<SubscribeRequest>[] req = new StreamObserver[1];
    req[0] = QueueServiceGrpc.newStub(channel).subscribe(new StreamObserver<>() {
      @Override
      public void onNext(SubscribeResponse r) {
        r.getDeliveriesList().forEach(onDelivery);
      }

      @Override
      public void onError(Throwable t) {}

      @Override
      public void onCompleted() {}
    });
    synchronized (req) {
      req[0].onNext(SubscribeRequest.newBuilder().setStart(SubscribeStart.newBuilder()
          .setConsumer(consumer).setMaxInFlight(maxInFlight)).build());
    }
    return new Holding(req);
  }

  /** A consumer that acknowledges only what it is told to; closing it ends its stream. */
  public static final class Holding implements AutoCloseable {
    private final StreamObserver<SubscribeRequest>[] req;

    private Holding(StreamObserver<SubscribeRequest>[] req) {
      this.req = req;
    }

    /** Acknowledges these deliveries. */
    public void ack(long... deliveryIds) {
      Acknowledge.Builder ack = Acknowledge.newBuilder();
      for (long id : deliveryIds) {
        ack.addDeliveryIds(id);
      }
      synchronized (req) {
        req[0].onNext(SubscribeRequest.newBuilder().setAck(ack).build());
      }
    }

    @Override
    public void close() {
      synchronized (req) {
        req[0].onCompleted();
      }
    }
  }

  /** Subscribes; every delivery is added to {@code got} and acknowledged. */
  public void subscribe(String consumer, List<Delivery> got) {
    subscribe(consumer, got::add);
  }

  /** Subscribes; every delivery is handed to {@code onDelivery}, then acknowledged. */
  public void subscribe(String consumer, java.util.function.Consumer<Delivery> onDelivery) {
    subscribe(consumer, 0, onDelivery, false);
  }

  /**
   * As {@link #subscribe(String, java.util.function.Consumer)}, with at most {@code maxInFlight}
   * deliveries unacknowledged (0: the server's default): large messages then stay within this
   * client's 4 MiB inbound limit. The call waits for the channel to be ready, so a server that
   * was just restarted is subscribed to once it answers rather than failed at once.
   */
  public void subscribe(String consumer, int maxInFlight,
      java.util.function.Consumer<Delivery> onDelivery) {
    subscribe(consumer, maxInFlight, onDelivery, true);
  }

  private void subscribe(String consumer, int maxInFlight,
      java.util.function.Consumer<Delivery> onDelivery, boolean waitForReady) {
    @SuppressWarnings("unchecked")
    StreamObserver<SubscribeRequest>[] req = new StreamObserver[1];
    QueueServiceGrpc.QueueServiceStub stub = QueueServiceGrpc.newStub(channel);
    req[0] = (waitForReady ? stub.withWaitForReady() : stub).subscribe(new StreamObserver<>() {
      @Override
      public void onNext(SubscribeResponse r) {
        Acknowledge.Builder ack = Acknowledge.newBuilder();
        for (Delivery d : r.getDeliveriesList()) {
          onDelivery.accept(d);
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
          .setStart(SubscribeStart.newBuilder().setConsumer(consumer)
              .setMaxInFlight(maxInFlight)).build());
    }
  }

  @Override
  public void close() {
    channel.shutdownNow();
  }
}
