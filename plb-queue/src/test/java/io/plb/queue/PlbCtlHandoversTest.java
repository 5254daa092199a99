package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.plb.client.cli.PlbCtl;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.Staging;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code plbctl handovers} shows what an open handover waits for, as the queue servers report
 * it: the source's backlog and the messages held at source and target — and says so when a
 * queue server does not answer.
 */
class PlbCtlHandoversTest {
  @TempDir Path tmp;

  private static String[] run(QueueCluster c, String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    String[] all = new String[args.length + 2];
    all[0] = "--endpoints";
    all[1] = String.join(",", c.plb().endpoints());
    System.arraycopy(args, 0, all, 2, args.length);
    int code = new PlbCtl(new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8), Map.of()).run(all);
    assertEquals(0, code, err.toString(StandardCharsets.UTF_8));
    return new String[] {out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8)};
  }

  @Test
  void showsBacklogAndHeldCountsOfEachOpenHandover() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      Staging.switchWithHoldBuffer(c); // q1: 3 queued + 1 in the hold buffer; q2: 1 held

      String json = run(c, "--json", "handovers")[0].trim();
      JsonObject h = JsonParser.parseString(json).getAsJsonObject()
          .getAsJsonArray("handovers").get(0).getAsJsonObject();
      assertEquals("q1", h.get("source").getAsString());
      assertEquals(3, h.get("source_backlog").getAsLong(), json);
      assertEquals(1, h.get("held_at_source").getAsLong(), json);
      assertEquals(1, h.get("held_at_target").getAsLong(), json);

      String table = run(c, "handovers")[0];
      assertTrue(table.contains("BACKLOG") && table.contains("HELD SRC"), table);
      String row = table.lines().filter(l -> l.contains("q1") && l.contains("SWITCH"))
          .findFirst().orElseThrow(() -> new AssertionError(table));
      assertTrue(row.matches(".*SWITCH.*\\s3\\s+1\\s+1\\s*$"), row);

      // The target stops: its figure becomes unknown, and the output says why.
      c.stopQueue(1);
      String json2 = run(c, "--json", "handovers")[0].trim();
      JsonObject h2 = JsonParser.parseString(json2).getAsJsonObject()
          .getAsJsonArray("handovers").get(0).getAsJsonObject();
      assertEquals(3, h2.get("source_backlog").getAsLong(), json2);
      assertTrue(h2.get("held_at_target").isJsonNull(), json2);
      String table2 = run(c, "handovers")[0];
      assertTrue(table2.contains("queue server q2 did not answer"), table2);
    }
  }
}
