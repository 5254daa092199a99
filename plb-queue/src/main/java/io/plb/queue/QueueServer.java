package io.plb.queue;

import io.plb.core.time.WallClock;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.agent.QueueServerAgent;
import io.plb.core.map.QueueServerInfo;
import io.plb.queue.config.QueueConfig;
import io.plb.queue.rpc.Dispatcher;
import io.plb.queue.rpc.QueueServiceImpl;
import io.plb.queue.store.QueueStore;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One reference queue server: a RocksDB {@link QueueStore}, the embedded
 * {@link QueueServerAgent}, and the gRPC queue API. Start with {@link #start}; {@link #close}
 * stops it (a kill -9 loses nothing acknowledged: every acknowledged write is synced when
 * {@code sync} is on).
 */
public final class QueueServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(QueueServer.class);

  private final QueueConfig config;
  private final QueueStore store;
  private final QueueServerAgent agent;
  private final Dispatcher dispatcher;
  private final QueueServiceImpl service;
  private final ThreadPoolExecutor workers;
  private final Server grpc;
  private final String address;

  private QueueServer(QueueConfig config) throws IOException {
    this.config = config;
    // One wall clock stamps acceptance and measures holds, so hold times compare like with like.
    this.store = QueueStore.open(config.data(), config.sync(), WallClock.SYSTEM);
    // A release moves buffers in steps of a transfer chunk: memory bounded the same way.
    store.releaseStep((int) config.transferChunkMessages(), config.transferChunkBytes());
    this.agent = QueueServerAgent.builder(config.id(), store)
        .plbEndpoints(config.plb())
        .resendInterval(config.resendInterval())
        .heartbeatInterval(config.heartbeatInterval())
        .lateBatch(config.lateBatchMessages(), config.lateBatchBytes())
        .io(config.agentIoThreads(), config.agentIoQueue())
        .transferChunk(config.transferChunkMessages(), config.transferChunkBytes())
        .loadFigures(store::queued, store::held)
        .telemetry(config.reportInterval(), config.hotKeys())
        .loadGauges(store::sampleSlices)
        .build();
    this.dispatcher = new Dispatcher(store, config.id(), agent.load(), agent::holdsLease,
        agent::owns);
    agent.onServingChange(dispatcher::wake);
    store.onAck(agent::onAcked);
    store.onReady(dispatcher::wake);
    AtomicLong n = new AtomicLong();
    // Bounded and without a queue: a request that finds every worker busy is refused at once
    // (RESOURCE_EXHAUSTED, see QueueServiceImpl) instead of waiting in an unbounded queue or
    // starting a thread per request for any number of streams.
    this.workers = new ThreadPoolExecutor(0, config.maxWorkers(), 60, TimeUnit.SECONDS,
        new SynchronousQueue<>(), r -> {
          Thread t = new Thread(r, "plb-queue-worker-" + n.incrementAndGet());
          t.setDaemon(true);
          return t;
        }, new ThreadPoolExecutor.AbortPolicy());
    this.service = new QueueServiceImpl(config, agent, store, dispatcher, workers,
        WallClock.SYSTEM);
    String listen = config.listen();
    int colon = listen.lastIndexOf(':');
    this.grpc = NettyServerBuilder
        .forAddress(new InetSocketAddress(listen.substring(0, colon),
            Integer.parseInt(listen.substring(colon + 1))))
        .addService(service)
        .addService(ProtoReflectionServiceV1.newInstance())
        .maxInboundMessageSize(256 << 20)
        // Routers, consumers and peer agents ping every 30 s (also between calls) to notice a
        // dead server; the default policy (5 min, not without calls) would answer that with
        // GOAWAY and break every publish link.
        .permitKeepAliveTime(10, TimeUnit.SECONDS)
        .permitKeepAliveWithoutCalls(true)
        .build()
        .start();
    this.address = config.advertise().isEmpty()
        ? listen.substring(0, colon) + ":" + grpc.getPort() : config.advertise();
  }

  /** Opens the store, starts the API and the agent, and registers with PLB if configured. */
  public static QueueServer start(QueueConfig config) throws IOException {
    QueueServer s = new QueueServer(config);
    try {
      if (config.register()) {
        s.register();
      }
      s.agent.start();
    } catch (RuntimeException e) {
      s.close();
      throw e;
    }
    LOG.info("queue server {} serving on {} (data {}, sync {}, {} queued, {} held)",
        config.id(), s.address, config.data(), config.sync(), s.store.queued(), s.store.held());
    return s;
  }

  private void register() {
    try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(config.plb())
        .deadline(Duration.ofSeconds(30)).build()) {
      try {
        admin.registerServer(config.id(), address, config.capacity());
        LOG.info("registered {} at {} with PLB", config.id(), address);
      } catch (PlbClientException e) {
        if (!e.getMessage().contains("already")) {
          throw e;
        }
        QueueServerInfo known = admin.getMap(0).servers().get(config.id());
        if (known != null && known.address().equals(address)) {
          // A restart on the same address: the registration stands as it is (its capacity
          // and state may have been changed by an operator since; they are kept).
          LOG.info("{} was registered at {}; registration kept", config.id(), address);
          return;
        }
        admin.updateServer(config.id(), address, null, null);
        LOG.info("{} was registered; address updated to {}", config.id(), address);
      }
    }
  }

  public String id() {
    return config.id();
  }

  /** The address producers and peers reach this server at. */
  public String address() {
    return address;
  }

  public int port() {
    return grpc.getPort();
  }

  public QueueStore store() {
    return store;
  }

  public QueueServerAgent agent() {
    return agent;
  }

  /** Producer sessions with publish streams open here (at most {@code maxProducers}). */
  public int openSessions() {
    return service.openSessions();
  }

  /** Workers handling a publish request or a transfer now (at most {@code maxWorkers}). */
  public int busyWorkers() {
    return workers.getActiveCount();
  }

  /**
   * Stops the server: first the publish streams, each after answering the request it is handling
   * (so no stored message loses its answer and comes again), then the agent, the API, the
   * consumers and the store.
   */
  @Override
  public void close() {
    try {
      service.stopPublishing(Duration.ofSeconds(10));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    agent.close();
    grpc.shutdown();
    dispatcher.close();
    try {
      if (!grpc.awaitTermination(5, TimeUnit.SECONDS)) {
        grpc.shutdownNow();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      grpc.shutdownNow();
    }
    workers.shutdownNow();
    try {
      workers.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    store.close();
  }
}
