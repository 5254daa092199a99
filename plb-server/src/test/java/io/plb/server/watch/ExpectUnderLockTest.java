package io.plb.server.watch;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.client.Endpoints;
import io.plb.client.watch.MapWatcher;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link MapWatcher#expect} may be called while holding the lock the map listener takes: a
 * producer handling a WRONG_OWNER answer, or an agent handling a lease grant, calls it under its
 * own lock while a map delivery waits for that lock inside the watcher. It must not wait for the
 * delivery (the two once deadlocked, and the producer's process stopped publishing for good).
 */
class ExpectUnderLockTest {
  @TempDir Path dir;

  @Test
  void expectDoesNotWaitForAListenerThatWaitsForTheCaller() throws Exception {
    try (TestCluster cluster = TestCluster.start(dir);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(cluster.endpoints())
            .build()) {
      cluster.awaitLeader(Duration.ofSeconds(20));
      ReentrantLock subscriberLock = new ReentrantLock();
      CountDownLatch inListener = new CountDownLatch(1);
      AtomicLong handled = new AtomicLong();
      long first = admin.registerServer("q1", "127.0.0.1:9001", 1.0);
      try (Endpoints eps = new Endpoints(cluster.endpoints());
          MapWatcher watcher = new MapWatcher(eps, (image, delta) -> {
            if (image.version() > first) {
              inListener.countDown();
            }
            subscriberLock.lock(); // as the producer's and the agent's listeners do
            subscriberLock.unlock();
            handled.set(image.version());
          }).start()) {
        // Handled by the listener, not only published as the image: the listener must not be
        // waiting for the lock with an earlier version when this thread takes it.
        TestCluster.await(Duration.ofSeconds(20), "the first map handled",
            () -> handled.get() >= first);
        subscriberLock.lock();
        try {
          long next = admin.registerServer("q2", "127.0.0.1:9002", 1.0);
          assertTrue(inListener.await(20, TimeUnit.SECONDS), "the delivery of " + next);
          // The delivery now waits for subscriberLock inside the watcher; this thread holds it.
          CompletableFuture<Void> expect =
              CompletableFuture.runAsync(() -> watcher.expect(next + 10));
          TestCluster.awaitResult(expect, Duration.ofSeconds(10),
              "expect() while the listener waits for the caller's lock");
        } finally {
          subscriberLock.unlock();
        }
      }
    }
  }
}
