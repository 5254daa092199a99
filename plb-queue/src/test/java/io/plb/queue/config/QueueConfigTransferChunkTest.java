package io.plb.queue.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.agent.QueueServerAgent;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The transfer chunk limits: defaults, and out-of-range values refused with the key's name. */
class QueueConfigTransferChunkTest {
  private static QueueConfig config(Map<String, String> extra) {
    Map<String, String> s = new HashMap<>(Map.of("id", "q1", "data", "/tmp/unused"));
    s.putAll(extra);
    return QueueConfig.of(s);
  }

  @Test
  void defaultsAreTheAgents() {
    QueueConfig c = config(Map.of());
    assertEquals(QueueServerAgent.DEFAULT_CHUNK_MESSAGES, c.transferChunkMessages());
    assertEquals(QueueServerAgent.DEFAULT_CHUNK_BYTES, c.transferChunkBytes());
  }

  @Test
  void outOfRangeLimitsAreRefused() {
    for (Map<String, String> bad : List.of(
        Map.of("transfer.chunkMessages", "0"),
        Map.of("transfer.chunkMessages", "100001"),
        Map.of("transfer.chunkBytes", "65535"),
        Map.of("transfer.chunkBytes", String.valueOf((64L << 20) + 1)),
        Map.of("transfer.chunkBytes", "big"))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> config(bad));
      String key = bad.keySet().iterator().next();
      assertTrue(e.getMessage().contains(key), e.getMessage());
    }
    assertEquals(65536, config(Map.of("transfer.chunkBytes", "65536")).transferChunkBytes());
  }
}
