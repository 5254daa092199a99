package io.plb.queue.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The queue server's limits: safe defaults, and a bad value names its key. */
class QueueConfigTest {
  private static QueueConfig with(String key, String value) {
    Map<String, String> v = new HashMap<>(Map.of("id", "q1", "data", "/tmp/q1"));
    if (key != null) {
      v.put(key, value);
    }
    return QueueConfig.of(v);
  }

  private static void refused(String key, String value) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> with(key, value));
    assertTrue(e.getMessage().contains(key), e.getMessage());
  }

  @Test
  void workerPoolIsBounded() {
    assertEquals(256, with(null, null).maxWorkers());
    assertEquals(2, with("maxWorkers", "2").maxWorkers());
    refused("maxWorkers", "1");
    refused("maxWorkers", "10001");
    refused("maxWorkers", "many");
  }

  @Test
  void agentIoPoolIsBounded() {
    assertEquals(16, with(null, null).agentIoThreads());
    assertEquals(1000, with(null, null).agentIoQueue());
    assertEquals(2, with("agentIo.threads", "2").agentIoThreads());
    refused("agentIo.threads", "1");
    refused("agentIo.threads", "1025");
    refused("agentIo.queue", "0");
    refused("agentIo.queue", "1000001");
    refused("agentIo.queue", "lots");
  }

  @Test
  void producerSessionsAreBounded() {
    assertEquals(10_000, with(null, null).maxProducers());
    refused("maxProducers", "0");
    refused("maxProducers", "1000001");
  }

  @Test
  void waitsForMapVersionsAreBounded() {
    assertEquals(64, with(null, null).maxMapWaiters());
    assertEquals(1_000_000, with(null, null).maxVersionLead());
    refused("maxMapWaiters", "0");
    refused("maxMapWaiters", "10001");
    refused("maxVersionLead", "0");
    refused("maxVersionLead", "-5");
  }
}
