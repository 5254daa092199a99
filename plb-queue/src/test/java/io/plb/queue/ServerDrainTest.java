package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.cli.PlbCtl;
import io.plb.client.workload.Workload;
import io.plb.core.map.ServerState;
import io.plb.queue.testing.QueueCluster;
import io.plb.server.testing.TestCluster;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code plbctl server drain} moves every range off a live server while traffic flows. */
class ServerDrainTest {
  @TempDir Path tmp;

  @Test
  void drainMovesEveryRangeAwayWithoutLoss() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 3, Map.of(), Map.of("sync", "false"))) {
      c.layOut(9);
      Workload w = new Workload(Workload.Options.defaults(c.plb().endpoints()).withKeys(500)
          .withRate(150).withDuration(Duration.ofSeconds(10)).withClients(2, 2), null);
      CompletableFuture<Workload.Result> run = CompletableFuture.supplyAsync(() -> {
        try {
          return w.run();
        } catch (InterruptedException e) {
          throw new IllegalStateException(e);
        }
      });
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      int code = new PlbCtl(new PrintStream(out, true, StandardCharsets.UTF_8), System.err,
          Map.of()).run(new String[] {"--endpoints", String.join(",", c.plb().endpoints()),
              "server", "drain", "q1", "--max-wait", "120"});
      String text = out.toString(StandardCharsets.UTF_8);
      System.out.println(text);
      assertEquals(0, code, text);
      assertTrue(text.contains("server q1 is drained"), text);
      assertEquals(0, c.map().rangesOf("q1").size());
      assertEquals(ServerState.DRAINING, c.map().server("q1").state());
      var v = TestCluster.awaitResult(run, Duration.ofSeconds(120),
          "the workload to end").verdict();
      assertEquals(0, v.lost(), v.toString());
      assertEquals(0, v.reorderedKeys(), v.toString());
    }
  }
}
