package io.plb.queue.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.agent.QueueServerAgent;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The late batch limits: defaults, and out-of-range values refused with the key's name. */
class QueueConfigLateBatchTest {
  private static QueueConfig config(Map<String, String> extra) {
    Map<String, String> s = new HashMap<>(Map.of("id", "q1", "data", "/tmp/unused"));
    s.putAll(extra);
    return QueueConfig.of(s);
  }

  @Test
  void defaultsAreTheAgents() {
    QueueConfig c = config(Map.of());
    assertEquals(QueueServerAgent.DEFAULT_LATE_BATCH_MESSAGES, c.lateBatchMessages());
    assertEquals(QueueServerAgent.DEFAULT_LATE_BATCH_BYTES, c.lateBatchBytes());
  }

  @Test
  void outOfRangeLimitsAreRefused() {
    for (Map<String, String> bad : java.util.List.of(
        Map.of("lateBatch.messages", "0"),
        Map.of("lateBatch.messages", "100001"),
        Map.of("lateBatch.bytes", "1024"),
        Map.of("lateBatch.bytes", String.valueOf((64L << 20) + 1)),
        Map.of("lateBatch.bytes", "lots"))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> config(bad));
      String key = bad.keySet().iterator().next();
      assertTrue(e.getMessage().contains(key), e.getMessage());
    }
    assertEquals(1, config(Map.of("lateBatch.messages", "1")).lateBatchMessages());
  }
}
