package io.plb.client.consumer;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.plb.client.router.Router;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.proto.v1.Acknowledge;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.proto.v1.SubscribeStart;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Consumes from every queue server in the PLB map. It follows the map through a {@link Router}:
 * a server that joins gets a {@code QueueService.Subscribe} stream, one that leaves (or changes
 * address) has its stream closed. A stream starts with {@code SubscribeStart} (the consumer's
 * name and how many unacknowledged deliveries the server may send) and then carries
 * acknowledgements.
 *
 * <p>Each delivery is handed to the {@link MessageHandler} and acknowledged once the handler has
 * returned. Acknowledgements are sent at once when nothing else from that server is waiting to be
 * handled, and otherwise coalesced, up to {@link Config#maxAckBatch} per message. If the handler
 * throws, the delivery is not acknowledged: the stream is closed and reopened after a backoff, and
 * the server delivers what was unacknowledged again ({@code redelivered}). So delivery is at least
 * once; a handler should tolerate a repeat.
 *
 * <p>Thread model: one thread per server stream runs the handler for that server's deliveries, in
 * the order the server sent them — so a key's deliveries from one server are handled in order, and
 * different servers are handled in parallel. That thread also opens the stream and writes
 * acknowledgements, so each stream's writes are serialized. gRPC callbacks only hand work to it.
 * When a stream fails, deliveries of the failed stream still waiting for the handler are dropped
 * (the server delivers them again on the next stream) and the stream is reopened with a backoff
 * that doubles up to {@link Config#backoffMax}. Map changes are applied under one lock. Counters
 * may be read from any thread.
 */
public final class Consumer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Consumer.class);

  /** Called for every delivery, on the thread of the server stream it came from. */
  @FunctionalInterface
  public interface MessageHandler {
    /**
     * Handles one delivery. Returning acknowledges it; throwing leaves it unacknowledged and
     * restarts the stream, so the server delivers it again.
     */
    void onMessage(String serverId, Delivery delivery) throws Exception;
  }

  /**
   * Settings of a consumer.
   *
   * @param name sent in {@code SubscribeStart}; for the servers' logs and metrics
   * @param maxInFlight unacknowledged deliveries each server may send (0: the server's default)
   * @param maxAckBatch most delivery ids in one acknowledgement
   * @param backoffBase first reconnect delay
   * @param backoffMax largest reconnect delay
   */
  public record Config(
      String name, int maxInFlight, int maxAckBatch, Duration backoffBase, Duration backoffMax) {
    public Config {
      Objects.requireNonNull(name, "name");
      if (maxInFlight < 0) {
        throw new IllegalArgumentException("maxInFlight must be >= 0");
      }
      if (maxAckBatch <= 0) {
        throw new IllegalArgumentException("maxAckBatch must be > 0");
      }
      if (backoffBase.isNegative() || backoffBase.isZero() || backoffMax.compareTo(backoffBase) < 0) {
        throw new IllegalArgumentException("need 0 < backoffBase <= backoffMax");
      }
    }

    /** 256 in flight per server, acknowledgements of up to 128 ids, backoff 50 ms to 2 s. */
    public static Config defaults(String name) {
      return new Config(name, 256, 128, Duration.ofMillis(50), Duration.ofSeconds(2));
    }

    public Config withMaxInFlight(int v) {
      return new Config(name, v, maxAckBatch, backoffBase, backoffMax);
    }

    public Config withMaxAckBatch(int v) {
      return new Config(name, maxInFlight, v, backoffBase, backoffMax);
    }

    public Config withBackoff(Duration base, Duration max) {
      return new Config(name, maxInFlight, maxAckBatch, base, max);
    }
  }

  private final Router router;
  private final MessageHandler handler;
  private final Config config;
  private final ScheduledExecutorService timer;
  private final BiConsumer<ClusterImage, MapDelta> listener = (image, delta) -> reconcile(image);
  private final Object lock = new Object();
  // Guarded by lock:
  private final Map<String, ServerStream> streams = new HashMap<>();
  private final Map<String, ManagedChannel> channels = new HashMap<>();
  private boolean closed;

  private final AtomicLong delivered = new AtomicLong();
  private final AtomicLong redelivered = new AtomicLong();
  private final AtomicLong late = new AtomicLong();
  private final AtomicLong acknowledged = new AtomicLong();
  private final AtomicLong reconnects = new AtomicLong();
  private final AtomicLong handlerFailures = new AtomicLong();

  private Consumer(Router router, MessageHandler handler, Config config) {
    this.router = Objects.requireNonNull(router, "router");
    this.handler = Objects.requireNonNull(handler, "handler");
    this.config = Objects.requireNonNull(config, "config");
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "plb-consumer-" + config.name() + "-timer");
      t.setDaemon(true);
      return t;
    });
  }

  /** Starts consuming from every queue server in the router's map, now and as it changes. */
  public static Consumer start(Router router, MessageHandler handler, Config config) {
    Consumer c = new Consumer(router, handler, config);
    router.addListener(c.listener);
    ClusterImage image = router.image();
    if (image != null) {
      c.reconcile(image);
    }
    return c;
  }

  /** Deliveries handed to the handler (and returned from it). */
  public long delivered() {
    return delivered.get();
  }

  /** Of those, deliveries the server marked as sent before (to a consumer that went away). */
  public long redelivered() {
    return redelivered.get();
  }

  /** Of those, late messages: from a server that lost its range while DOWN (DESIGN §5). */
  public long late() {
    return late.get();
  }

  /** Delivery ids acknowledged. */
  public long acknowledged() {
    return acknowledged.get();
  }

  /** Deliveries received and not yet handed to the handler, over all servers. */
  public int waiting() {
    synchronized (lock) {
      int n = 0;
      for (ServerStream s : streams.values()) {
        n += s.queued.get();
      }
      return n;
    }
  }

  /** Streams reopened after a failure. */
  public long reconnects() {
    return reconnects.get();
  }

  /** Deliveries whose handler threw. */
  public long handlerFailures() {
    return handlerFailures.get();
  }

  /** The servers the consumer has a stream to (open or reconnecting). */
  public Set<String> servers() {
    synchronized (lock) {
      return new TreeSet<>(streams.keySet());
    }
  }

  /** Whether the stream to {@code serverId} has received anything since it was last opened. */
  public boolean isConnected(String serverId) {
    synchronized (lock) {
      ServerStream s = streams.get(serverId);
      return s != null && s.connected;
    }
  }

  private void reconcile(ClusterImage image) {
    synchronized (lock) {
      if (closed) {
        return;
      }
      for (QueueServerInfo info : image.servers().values()) {
        ServerStream s = streams.get(info.id());
        if (s != null && s.address.equals(info.address())) {
          continue;
        }
        if (s != null) {
          s.close();
        }
        if (info.address().isEmpty()) {
          streams.remove(info.id());
          continue;
        }
        ServerStream next = new ServerStream(info.id(), info.address());
        streams.put(info.id(), next);
        next.open(0);
      }
      for (ServerStream s : new ArrayList<>(streams.values())) {
        if (image.server(s.serverId) == null) {
          s.close();
          streams.remove(s.serverId);
        }
      }
    }
  }

  private ManagedChannel channel(String address) {
    synchronized (lock) {
      if (closed) {
        throw new IllegalStateException("the consumer is closed");
      }
      return channels.computeIfAbsent(address, a -> NettyChannelBuilder.forTarget(a)
          .usePlaintext()
          .keepAliveTime(30, TimeUnit.SECONDS)
          .build());
    }
  }

  /** The subscription to one queue server. */
  private final class ServerStream {
    final String serverId;
    final String address;
    final ExecutorService exec;
    final AtomicInteger queued = new AtomicInteger();
    volatile boolean closed;
    volatile boolean connected;
    // Stream thread only:
    ClientCallStreamObserver<SubscribeRequest> call;
    long gen;
    int failures;
    final List<Long> acks = new ArrayList<>();

    ServerStream(String serverId, String address) {
      this.serverId = serverId;
      this.address = address;
      this.exec = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "plb-consumer-" + config.name() + "-" + serverId);
        t.setDaemon(true);
        return t;
      });
    }

    void open(long delayNanos) {
      if (delayNanos <= 0) {
        run(this::doOpen);
        return;
      }
      try {
        timer.schedule(() -> run(this::doOpen), delayNanos, TimeUnit.NANOSECONDS);
      } catch (RejectedExecutionException e) {
        // closing
      }
    }

    private void run(Runnable task) {
      try {
        exec.execute(task);
      } catch (RejectedExecutionException e) {
        // closing
      }
    }

    private void doOpen() {
      if (closed) {
        return;
      }
      long g = ++gen;
      connected = false;
      try {
        QueueServiceGrpc.newStub(channel(address)).subscribe(
            new ClientResponseObserver<SubscribeRequest, SubscribeResponse>() {
              @Override
              public void beforeStart(ClientCallStreamObserver<SubscribeRequest> requestStream) {
                call = requestStream;
              }

              @Override
              public void onNext(SubscribeResponse resp) {
                connected = true;
                queued.addAndGet(resp.getDeliveriesCount());
                run(() -> handle(g, resp));
              }

              @Override
              public void onError(Throwable t) {
                run(() -> failed(g, Status.fromThrowable(t).toString()));
              }

              @Override
              public void onCompleted() {
                run(() -> failed(g, "stream completed by server"));
              }
            });
        call.onNext(SubscribeRequest.newBuilder()
            .setStart(SubscribeStart.newBuilder()
                .setConsumer(config.name())
                .setMaxInFlight(config.maxInFlight()))
            .build());
      } catch (RuntimeException e) {
        failed(g, "cannot subscribe: " + e);
      }
    }

    private void handle(long g, SubscribeResponse resp) {
      for (Delivery d : resp.getDeliveriesList()) {
        queued.decrementAndGet();
        if (g != gen || closed) {
          continue; // from a stream that failed: the server delivers it again
        }
        try {
          handler.onMessage(serverId, d);
        } catch (Exception e) {
          handlerFailures.incrementAndGet();
          LOG.warn("handler failed on delivery {} (key {} seq {}) from {}; reopening the stream "
              + "so that it is delivered again", d.getDeliveryId(), d.getKey().toStringUtf8(),
              d.getSeq(), serverId, e);
          restart(g, "handler failed");
          continue;
        }
        delivered.incrementAndGet();
        if (d.getRedelivered()) {
          redelivered.incrementAndGet();
        }
        if (d.getLate()) {
          late.incrementAndGet();
        }
        failures = 0;
        acks.add(d.getDeliveryId());
        // Coalesce while more deliveries wait here; the last one waiting sends the batch (a
        // response arriving meanwhile has its own task, which comes later).
        if (acks.size() >= config.maxAckBatch() || queued.get() == 0) {
          sendAcks();
        }
      }
    }

    private void sendAcks() {
      if (acks.isEmpty() || call == null) {
        return;
      }
      try {
        call.onNext(SubscribeRequest.newBuilder()
            .setAck(Acknowledge.newBuilder().addAllDeliveryIds(acks))
            .build());
        acknowledged.addAndGet(acks.size());
      } catch (RuntimeException e) {
        LOG.debug("acknowledgement to {} not sent: {}", serverId, e.toString());
      }
      acks.clear();
    }

    private void restart(long g, String why) {
      if (call != null) {
        call.cancel(why, null);
      }
      failed(g, why);
    }

    private void failed(long g, String why) {
      if (g != gen || closed) {
        return;
      }
      gen++; // deliveries of the failed stream still queued are dropped
      call = null;
      acks.clear();
      connected = false;
      failures++;
      reconnects.incrementAndGet();
      long base = config.backoffBase().toNanos();
      long delay = base << Math.min(failures - 1, 20);
      if (delay <= 0 || delay > config.backoffMax().toNanos()) {
        delay = config.backoffMax().toNanos();
      }
      delay = delay - delay / 5 + ThreadLocalRandom.current().nextLong(delay * 2 / 5 + 1);
      LOG.info("subscription to {} at {} ended ({}); reopening in {} ms", serverId, address, why,
          delay / 1_000_000);
      open(delay);
    }

    void close() {
      closed = true;
      run(() -> {
        if (call != null) {
          call.cancel("consumer closed", null);
          call = null;
        }
      });
      exec.shutdown();
    }
  }

  /** Closes every stream; unacknowledged deliveries go back to their servers. */
  @Override
  public void close() {
    List<ServerStream> all;
    List<ManagedChannel> chans;
    synchronized (lock) {
      if (closed) {
        return;
      }
      closed = true;
      all = new ArrayList<>(streams.values());
      streams.clear();
      chans = new ArrayList<>(channels.values());
      channels.clear();
    }
    router.removeListener(listener);
    for (ServerStream s : all) {
      s.close();
    }
    timer.shutdownNow();
    try {
      for (ServerStream s : all) {
        s.exec.awaitTermination(5, TimeUnit.SECONDS);
      }
      for (ManagedChannel c : chans) {
        c.shutdownNow();
      }
      for (ManagedChannel c : chans) {
        c.awaitTermination(2, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
