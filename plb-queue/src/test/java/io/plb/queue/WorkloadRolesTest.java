package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.queue.testing.QueueCluster;
import io.plb.server.testing.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The workload split in two, as the nemesis runs it in two processes: producers (and moves) write
 * their half of the history when done; consumers wait for it and check both halves together.
 */
class WorkloadRolesTest {
  @TempDir Path tmp;

  @Test
  void producersAndConsumersApartCheckTheWholeHistory() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(2);
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of("sync", "false"))) {
      c.layOut(4);
      Path half = tmp.resolve("producers.history");
      Workload.Options base = Workload.Options.defaults(c.plb().endpoints()).withKeys(200)
          .withRate(150).withDuration(Duration.ofSeconds(6)).withClients(2, 2).withMoves(6);
      Workload producers = new Workload(base.withRole(Workload.Role.PRODUCERS, half), System.out);
      Workload consumers = new Workload(base.withRole(Workload.Role.CONSUMERS, half), System.out);
      CompletableFuture<Workload.Result> checked =
          CompletableFuture.supplyAsync(() -> run(consumers), pool);
      CompletableFuture<Workload.Result> produced =
          CompletableFuture.supplyAsync(() -> run(producers), pool);
      HistoryChecker.Verdict p =
          TestCluster.awaitResult(produced, Duration.ofSeconds(120), "the producers").verdict();
      assertTrue(Files.exists(half), "the producers wrote their half");
      HistoryChecker.Verdict v =
          TestCluster.awaitResult(checked, Duration.ofSeconds(120), "the consumers").verdict();
      System.out.println("producers: " + p + "\nconsumers: " + v);
      assertTrue(p.acknowledged() > 300, p.toString());
      assertEquals(0, p.delivered(), "the producers' process consumed nothing");
      assertEquals(p.published(), v.published(), "the consumers read every send");
      assertEquals(p.acknowledged(), v.acknowledged());
      assertTrue(v.ok(), v.toString());
      assertTrue(v.delivered() >= v.acknowledged(), v.toString());
    } finally {
      pool.shutdownNow();
    }
  }

  private static Workload.Result run(Workload w) {
    try {
      return w.run();
    } catch (InterruptedException e) {
      throw new IllegalStateException(e);
    }
  }
}
