package io.plb.queue.testing;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import io.plb.queue.QueueServer;
import io.plb.queue.config.QueueConfig;
import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * A PLB cluster with reference queue servers beside it, all in-process on free loopback ports:
 * real Ratis, RocksDB and gRPC. Queue servers can be stopped and started again on their data.
 * Not thread-safe; close it to stop everything.
 */
public final class QueueCluster implements AutoCloseable {
  private final Path root;
  private final TestCluster plb;
  private final PlbAdminClient admin;
  private final QueueServer[] queues;
  private final Map<String, String> queueSettings;

  private QueueCluster(Path root, int queueCount, Map<String, String> plbSettings,
      Map<String, String> queueSettings) throws IOException {
    this.root = root;
    this.plb = TestCluster.start(root.resolve("plb"), 3, plbSettings);
    plb.awaitLeader(Duration.ofSeconds(30));
    this.admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
    this.queues = new QueueServer[queueCount];
    this.queueSettings = queueSettings;
    for (int i = 0; i < queueCount; i++) {
      startQueue(i);
    }
  }

  /** Three PLB nodes and {@code queueCount} queue servers q1..qN. */
  public static QueueCluster start(Path root, int queueCount, Map<String, String> plbSettings,
      Map<String, String> queueSettings) throws IOException {
    return new QueueCluster(root, queueCount, plbSettings, queueSettings);
  }

  /** Splits the ring into {@code ranges} equal ranges, owners round-robin over the servers. */
  public void layOut(int ranges) {
    long step = Long.divideUnsigned(-1L, ranges) + 1;
    for (int i = 1; i < ranges; i++) {
      admin.splitAtHash((i - 1) * step, i * step);
    }
    for (int i = 0; i < ranges; i++) {
      admin.assign(i * step, "q" + (i % queues.length + 1), false);
    }
  }

  /** Starts queue server i and waits until it serves: registered and holding its lease. */
  public void startQueue(int i) throws IOException {
    start(i, "127.0.0.1:0");
    awaitServing(i);
  }

  private void awaitServing(int i) {
    QueueServer q = queues[i];
    TestCluster.await(Duration.ofSeconds(30), q.id() + " holding its ownership lease",
        () -> q.agent().holdsLease());
  }

  /**
   * Stops queue server i and starts it again on the same data and the same address, as a
   * restarted process on a fixed port does (it finds itself registered already).
   */
  public void restartQueue(int i) throws IOException {
    String listen = "127.0.0.1:" + queues[i].port();
    stopQueue(i);
    start(i, listen);
    awaitServing(i);
  }

  /**
   * Starts queue server i on its data at {@code port} with extra settings (for example
   * {@code register=false} when PLB has no quorum to take a registration).
   */
  public void startQueue(int i, int port, Map<String, String> extra) throws IOException {
    Map<String, String> s = new HashMap<>(queueSettings);
    s.putAll(extra);
    start(i, "127.0.0.1:" + port, s);
  }

  private void start(int i, String listen) throws IOException {
    start(i, listen, queueSettings);
  }

  private void start(int i, String listen, Map<String, String> settings) throws IOException {
    String id = "q" + (i + 1);
    Map<String, String> s = new HashMap<>(Map.of("id", id,
        "data", root.resolve(id).toString(), "plb", String.join(",", plb.endpoints()),
        "resendInterval", "100ms", "heartbeatInterval", "200ms", "listen", listen));
    s.putAll(settings);
    queues[i] = QueueServer.start(QueueConfig.of(s));
  }

  public void stopQueue(int i) {
    if (queues[i] != null) {
      queues[i].close();
      queues[i] = null;
    }
  }

  public QueueServer queue(int i) {
    return queues[i];
  }

  public TestCluster plb() {
    return plb;
  }

  public PlbAdminClient admin() {
    return admin;
  }

  public ClusterImage map() {
    return admin.getMap(0);
  }

  @Override
  public void close() {
    for (int i = 0; i < queues.length; i++) {
      stopQueue(i);
    }
    admin.close();
    plb.close();
  }
}
