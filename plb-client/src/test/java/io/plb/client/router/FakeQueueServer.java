package io.plb.client.router;

import com.google.protobuf.ByteString;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * A queue server the test controls, on a free port. Publish: it records every item per stream and
 * per request, answers each item by a policy (ACCEPTED unless the test says otherwise) and can
 * hold requests until {@link #release()}; once an item of a request is answered OVERLOADED, the
 * rest of that request is too (a real server must not accept a later item of the same batch).
 * Subscribe: a queue the test fills with {@link #offer}, delivered to the latest subscriber at most
 * {@code max_in_flight} unacknowledged at a time; what a subscriber leaves unacknowledged is
 * delivered again, marked redelivered.
 *
 * <p>Thread-safe: everything happens under the object's monitor, and every change wakes
 * {@link #await} callers.
 */
public final class FakeQueueServer extends QueueServiceGrpc.QueueServiceImplBase
    implements AutoCloseable {

  /** One received publish item; {@code overloadsSeen} is its request's, -1 when unset. */
  public record Item(int stream, String producer, long seq, String key, String payload,
      long mapVersion, long rangeStart, long overloadsSeen, long epoch, long settledBelow,
      List<String> maybeStoredAt) {}

  private final String id;
  private final Server server;
  private final String address;
  private long version = 1;
  private Function<Item, PublishResult> policy;
  private boolean holding;
  private final List<Item> received = new ArrayList<>();
  private final List<List<Item>> requests = new ArrayList<>();
  private final List<Item> accepted = new ArrayList<>();
  private final ArrayDeque<Parked> parked = new ArrayDeque<>();
  private final List<PublishStream> publishStreams = new ArrayList<>();
  private int streamCount;

  private record Parked(PublishStream stream, List<Item> items) {}

  public FakeQueueServer(String id) {
    this.id = id;
    this.policy = this::accept;
    try {
      server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
          .addService(this)
          .build()
          .start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    address = "127.0.0.1:" + server.getPort();
  }

  public String id() {
    return id;
  }

  public String address() {
    return address;
  }

  // ---------------------------------------------------------------- answers

  public PublishResult accept(Item item) {
    return result(item, PublishStatus.ACCEPTED, "");
  }

  public PublishResult result(Item item, PublishStatus status, String detail) {
    return PublishResult.newBuilder().setSeq(item.seq()).setStatus(status)
        .setMapVersion(version()).setDetail(detail).build();
  }

  public PublishResult wrongOwner(Item item, long atVersion) {
    return PublishResult.newBuilder().setSeq(item.seq()).setStatus(PublishStatus.WRONG_OWNER)
        .setMapVersion(atVersion).build();
  }

  /** How items are answered from now on. */
  public synchronized void setPolicy(Function<Item, PublishResult> p) {
    policy = p;
  }

  /** The map version put into answers. */
  public synchronized void setVersion(long v) {
    version = v;
  }

  public synchronized long version() {
    return version;
  }

  /** Holds every request from now on until {@link #release()}. */
  public synchronized void hold() {
    holding = true;
  }

  /** Answers every held request, in arrival order, and stops holding. */
  public synchronized void release() {
    holding = false;
    while (!parked.isEmpty()) {
      Parked p = parked.poll();
      p.stream.answer(p.items);
    }
    notifyAll();
  }

  /** Fails every publish stream (the producer sees UNAVAILABLE); held requests are dropped. */
  public synchronized void killPublishStreams() {
    for (PublishStream s : new ArrayList<>(publishStreams)) {
      s.dead = true;
      s.out.onError(Status.UNAVAILABLE.withDescription("killed by the test").asException());
    }
    publishStreams.clear();
    parked.clear();
    notifyAll();
  }

  // ---------------------------------------------------------------- what arrived

  public synchronized List<Item> received() {
    return new ArrayList<>(received);
  }

  public synchronized List<List<Item>> requests() {
    List<List<Item>> out = new ArrayList<>();
    for (List<Item> r : requests) {
      out.add(new ArrayList<>(r));
    }
    return out;
  }

  public synchronized List<Item> accepted() {
    return new ArrayList<>(accepted);
  }

  public synchronized int parkedRequests() {
    return parked.size();
  }

  public synchronized int publishStreamsOpened() {
    return streamCount;
  }

  /** Waits until {@code condition} holds for this server, or fails after {@code timeout}. */
  public synchronized void await(Predicate<FakeQueueServer> condition, Duration timeout,
      String what) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.test(this)) {
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        throw new AssertionError(id + ": timed out waiting for " + what + "; received "
            + received.size() + " items in " + requests.size() + " requests");
      }
      TimeUnit.NANOSECONDS.timedWait(this, left);
    }
  }

  // ---------------------------------------------------------------- publish

  private final class PublishStream implements StreamObserver<PublishRequest> {
    final int number;
    final StreamObserver<PublishResponse> out;
    boolean dead;

    PublishStream(int number, StreamObserver<PublishResponse> out) {
      this.number = number;
      this.out = out;
    }

    @Override
    public void onNext(PublishRequest req) {
      synchronized (FakeQueueServer.this) {
        if (dead) {
          return;
        }
        List<Item> items = new ArrayList<>();
        for (PublishItem i : req.getItemsList()) {
          items.add(new Item(number, req.getProducer(), i.getSeq(), i.getKey().toStringUtf8(),
              i.getPayload().toStringUtf8(), i.getMapVersion(), i.getRangeStart(),
              req.hasOverloadsSeen() ? req.getOverloadsSeen() : -1, req.getProducerEpoch(),
              req.getSettledBelow(), List.copyOf(i.getMaybeStoredAtList())));
        }
        received.addAll(items);
        requests.add(items);
        if (holding || !parked.isEmpty()) {
          parked.add(new Parked(this, items));
        } else {
          answer(items);
        }
        FakeQueueServer.this.notifyAll();
      }
    }

    /** Under the server's monitor. */
    void answer(List<Item> items) {
      if (dead) {
        return;
      }
      PublishResponse.Builder b = PublishResponse.newBuilder();
      boolean overloaded = false;
      for (Item i : items) {
        PublishResult r = overloaded ? result(i, PublishStatus.OVERLOADED, "") : policy.apply(i);
        if (r.getStatus() == PublishStatus.OVERLOADED) {
          overloaded = true;
        }
        if (r.getStatus() == PublishStatus.ACCEPTED) {
          accepted.add(i);
        }
        b.addResults(r);
      }
      out.onNext(b.build());
    }

    @Override
    public void onError(Throwable t) {
      gone();
    }

    @Override
    public void onCompleted() {
      gone();
      synchronized (FakeQueueServer.this) {
        out.onCompleted();
      }
    }

    private void gone() {
      synchronized (FakeQueueServer.this) {
        dead = true;
        publishStreams.remove(this);
        parked.removeIf(p -> p.stream == this);
        FakeQueueServer.this.notifyAll();
      }
    }
  }

  @Override
  public synchronized StreamObserver<PublishRequest> publish(
      StreamObserver<PublishResponse> responseObserver) {
    PublishStream s = new PublishStream(++streamCount, responseObserver);
    publishStreams.add(s);
    notifyAll();
    return s;
  }

  // ---------------------------------------------------------------- subscribe

  private final ArrayDeque<Delivery> ready = new ArrayDeque<>();
  private final TreeMap<Long, Delivery> unacked = new TreeMap<>();
  private final List<Long> acked = new ArrayList<>();
  private final Set<String> subscriberNames = new HashSet<>();
  private SubscribeStream subscriber;
  private long nextDeliveryId = 1;
  private long nextOfferSeq = 1;
  private int subscribes;
  private int deliveries;
  private int cancelledSubscriptions;
  private int ackMessages;

  /** Queues a message for consumers. */
  public synchronized void offer(String key, String payload) {
    ready.add(Delivery.newBuilder()
        .setDeliveryId(nextDeliveryId++)
        .setKey(ByteString.copyFromUtf8(key))
        .setPayload(ByteString.copyFromUtf8(payload))
        .setProducer("test")
        .setSeq(nextOfferSeq++)
        .build());
    pumpDeliveries();
  }

  public synchronized List<Long> acked() {
    return new ArrayList<>(acked);
  }

  /** Acknowledge messages received (each may carry many ids). */
  public synchronized int ackMessages() {
    return ackMessages;
  }

  public synchronized int unackedCount() {
    return unacked.size();
  }

  public synchronized int subscribes() {
    return subscribes;
  }

  /** Deliveries sent, redeliveries included. */
  public synchronized int deliveries() {
    return deliveries;
  }

  public synchronized int cancelledSubscriptions() {
    return cancelledSubscriptions;
  }

  public synchronized boolean hasSubscriber() {
    return subscriber != null && subscriber.started;
  }

  public synchronized Set<String> subscriberNames() {
    return new HashSet<>(subscriberNames);
  }

  /** Fails the current subscription; what it left unacknowledged is delivered again. */
  public synchronized void killSubscriber() {
    if (subscriber != null) {
      SubscribeStream s = subscriber;
      s.gone();
      s.out.onError(Status.UNAVAILABLE.withDescription("killed by the test").asException());
    }
  }

  private void pumpDeliveries() {
    SubscribeStream s = subscriber;
    if (s == null || !s.started) {
      return;
    }
    while (!ready.isEmpty() && unacked.size() < s.maxInFlight) {
      Delivery d = ready.poll();
      unacked.put(d.getDeliveryId(), d);
      deliveries++;
      s.out.onNext(SubscribeResponse.newBuilder().addDeliveries(d).build());
    }
    notifyAll();
  }

  private final class SubscribeStream implements StreamObserver<SubscribeRequest> {
    final ServerCallStreamObserver<SubscribeResponse> out;
    boolean started;
    boolean dead;
    int maxInFlight;

    SubscribeStream(ServerCallStreamObserver<SubscribeResponse> out) {
      this.out = out;
    }

    @Override
    public void onNext(SubscribeRequest req) {
      synchronized (FakeQueueServer.this) {
        if (dead) {
          return;
        }
        if (req.hasStart()) {
          started = true;
          maxInFlight = req.getStart().getMaxInFlight() == 0 ? 256
              : req.getStart().getMaxInFlight();
          subscriberNames.add(req.getStart().getConsumer());
          if (subscriber != null && subscriber != this) {
            subscriber.gone();
          }
          subscriber = this;
          subscribes++;
        } else if (req.hasAck()) {
          ackMessages++;
          for (long id : req.getAck().getDeliveryIdsList()) {
            if (unacked.remove(id) != null) {
              acked.add(id);
            }
          }
        }
        pumpDeliveries();
      }
    }

    @Override
    public void onError(Throwable t) {
      synchronized (FakeQueueServer.this) {
        if (!dead) {
          cancelledSubscriptions++;
        }
        gone();
      }
    }

    @Override
    public void onCompleted() {
      synchronized (FakeQueueServer.this) {
        gone();
        out.onCompleted();
      }
    }

    /** Under the server's monitor: unacknowledged deliveries go back, marked redelivered. */
    void gone() {
      if (dead) {
        return;
      }
      dead = true;
      if (subscriber == this) {
        subscriber = null;
        List<Delivery> back = new ArrayList<>();
        for (Delivery d : unacked.values()) {
          back.add(d.toBuilder().setRedelivered(true).build());
        }
        unacked.clear();
        for (int i = back.size() - 1; i >= 0; i--) {
          ready.addFirst(back.get(i));
        }
      }
      FakeQueueServer.this.notifyAll();
    }
  }

  @Override
  public synchronized StreamObserver<SubscribeRequest> subscribe(
      StreamObserver<SubscribeResponse> responseObserver) {
    ServerCallStreamObserver<SubscribeResponse> out =
        (ServerCallStreamObserver<SubscribeResponse>) responseObserver;
    SubscribeStream s = new SubscribeStream(out);
    out.setOnCancelHandler(() -> {
      synchronized (FakeQueueServer.this) {
        if (!s.dead) {
          cancelledSubscriptions++;
        }
        s.gone();
      }
    });
    return s;
  }

  @Override
  public void close() throws InterruptedException {
    server.shutdownNow();
    server.awaitTermination(5, TimeUnit.SECONDS);
  }
}
