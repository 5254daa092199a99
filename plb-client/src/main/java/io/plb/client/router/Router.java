package io.plb.client.router;

import io.plb.client.Endpoints;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RoutingTable;
import io.plb.core.time.Ticker;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;

/**
 * Routes ordering keys to queue servers by the PLB shard map. It subscribes to the cluster (any
 * node; fails over between nodes and resumes from its last version) and answers
 * {@link #route(byte[])} from a flat sorted array by binary search, without allocating.
 *
 * <p>It also publishes: {@link #publish(byte[], byte[])} sends through a default
 * {@link Producer} session that the router creates on first use, and {@link #producer(String)}
 * creates further sessions. Each session keeps its own per-key order through handovers (DESIGN
 * §5, rule C4); see {@link Producer}. Closing the router closes its sessions.
 *
 * <p>One router per process is enough: it is thread-safe, {@code route} is lock-free (it reads a
 * volatile {@link RoutingTable} that is swapped whole on every map change), and listeners are
 * called in version order on the watch thread.
 */
public final class Router implements AutoCloseable {
  private final List<String> addresses;
  private final Endpoints endpoints;
  private final MapWatcher watcher;
  private final List<BiConsumer<ClusterImage, MapDelta>> listeners = new CopyOnWriteArrayList<>();
  private final Object versionMonitor = new Object();
  private final Ticker ticker = Ticker.SYSTEM;
  private final List<Producer> producers = new CopyOnWriteArrayList<>();
  private final Object producerLock = new Object();
  private volatile Producer defaultProducer;
  private volatile boolean closed;
  private volatile RoutingTable table;

  private Router(List<String> addresses) {
    this.addresses = List.copyOf(addresses);
    this.endpoints = new Endpoints(addresses);
    this.watcher = new MapWatcher(endpoints, this::onMap);
  }

  /** Starts a router on the given PLB endpoints ({@code host:port}). */
  public static Router start(List<String> endpoints) {
    Router r = new Router(endpoints);
    r.watcher.start();
    return r;
  }

  private void onMap(ClusterImage image, MapDelta delta) {
    table = RoutingTable.of(image);
    synchronized (versionMonitor) {
      versionMonitor.notifyAll();
    }
    for (BiConsumer<ClusterImage, MapDelta> l : listeners) {
      l.accept(image, delta);
    }
  }

  /**
   * Map {@code version} exists (a queue server named it): the router's watch moves to another
   * node if it does not bring it soon ({@link MapWatcher#expect}).
   */
  void expectVersion(long version) {
    watcher.expect(version);
  }

  /** Waits until the router has a map at least as new as {@code version}. */
  public boolean awaitVersion(long version, Duration timeout) throws InterruptedException {
    long deadline = ticker.nanos() + timeout.toNanos();
    synchronized (versionMonitor) {
      while (version() < version || table == null) {
        long left = deadline - ticker.nanos();
        if (left <= 0) {
          return false;
        }
        TimeUnit.NANOSECONDS.timedWait(versionMonitor, left);
      }
    }
    return true;
  }

  /** Whether the first map has arrived. */
  public boolean isReady() {
    return table != null;
  }

  /** The version of the map the router routes by; -1 before the first map. */
  public long version() {
    RoutingTable t = table;
    return t == null ? -1 : t.version();
  }

  /** The current image; null before the first map. */
  public ClusterImage image() {
    return watcher.image();
  }

  /**
   * Where {@code key} goes now. Does not allocate.
   *
   * @throws IllegalStateException before the first map has arrived
   */
  public RoutingTable.Route route(byte[] key) {
    return routeHash(KeyHash.hash(key));
  }

  /** Where the key with UTF-8 text {@code key} goes now. */
  public RoutingTable.Route route(String key) {
    return routeHash(KeyHash.hash(key));
  }

  /** Where ring position {@code hash} goes now. */
  public RoutingTable.Route routeHash(long hash) {
    RoutingTable t = table;
    if (t == null) {
      throw new IllegalStateException("the router has no map yet (see awaitVersion)");
    }
    return t.route(hash);
  }

  /** Called with every new image, in version order; {@code delta} null for a full map. */
  public void addListener(BiConsumer<ClusterImage, MapDelta> listener) {
    listeners.add(listener);
  }

  public void removeListener(BiConsumer<ClusterImage, MapDelta> listener) {
    listeners.remove(listener);
  }

  // ---------------------------------------------------------------- publishing

  /**
   * A new producer session named {@code name} (a random UUID when null or empty) with default
   * settings. The name must be unique among live sessions of the cluster. A named session is
   * opened in the PLB cluster first, which gives it an epoch above every earlier session of that
   * name (so a restarted application fences its previous instance): this blocks until the
   * cluster answers, and throws {@link io.plb.client.PlbClientException} if it cannot.
   */
  public Producer producer(String name) {
    return producer(name, Producer.Config.defaults());
  }

  /** A new producer session with the given settings; see {@link #producer(String)}. */
  public Producer producer(String name, Producer.Config config) {
    Objects.requireNonNull(config, "config");
    boolean named = name != null && !name.isEmpty();
    String id = named ? name : UUID.randomUUID().toString();
    // A random id is never reused, so epoch 1 cannot meet an earlier instance's. Opened outside
    // the lock: it waits for the cluster.
    long epoch = !config.idempotent() ? 0 : named ? openProducer(id) : 1;
    synchronized (producerLock) {
      if (closed) {
        throw new IllegalStateException("the router is closed");
      }
      Producer p = new Producer(this, endpoints, id, epoch, config);
      producers.add(p);
      p.start();
      return p;
    }
  }

  private long openProducer(String id) {
    try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(addresses).build()) {
      return admin.openProducer(id);
    }
  }

  /**
   * The router's default producer session (random id, default settings), created on first use
   * and again if it was closed.
   */
  public Producer producer() {
    Producer p = defaultProducer;
    if (p == null || p.isClosed()) {
      synchronized (producerLock) {
        p = defaultProducer;
        if (p == null || p.isClosed()) {
          p = producer(null);
          defaultProducer = p;
        }
      }
    }
    return p;
  }

  /**
   * Publishes through the default session: async, batched, per-key ordered. See
   * {@link Producer#publish(byte[], byte[])}.
   */
  public CompletableFuture<PublishAck> publish(byte[] key, byte[] payload) {
    return producer().publish(key, payload);
  }

  /** Publishes under the UTF-8 bytes of {@code key} through the default session. */
  public CompletableFuture<PublishAck> publish(String key, byte[] payload) {
    return producer().publish(key, payload);
  }

  /** A closed session leaves the router. */
  void forget(Producer p) {
    producers.remove(p);
  }

  /** The node the router is subscribed to now, or null while reconnecting. */
  public String connectedTo() {
    return watcher.connectedTo();
  }

  /** Deltas that did not follow the current version (0 unless the watch contract broke). */
  public long contractViolations() {
    return watcher.contractViolations();
  }

  /**
   * Closes every producer session (each waits up to its close timeout for unfinished messages),
   * then the watch and the channels.
   */
  @Override
  public void close() {
    synchronized (producerLock) {
      closed = true;
    }
    for (Producer p : producers) {
      p.close();
    }
    watcher.close();
    endpoints.close();
  }
}
