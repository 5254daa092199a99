package io.plb.queue.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A store listener (the dispatcher's wake-up on "ready", the agent's backlog check on "ack")
 * that throws after a write is contained ({@link QueueStore#failListener}): every publish stored
 * is answered ACCEPTED — not failed, which would make its producer send it again — and the
 * consumer's stream, whose acks run the ack listener, stays up, so every message is delivered
 * once, in order, none marked redelivered.
 */
class ListenerFailureTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @TempDir Path tmp;

  @AfterEach
  void clearFailpoint() {
    QueueStore.failListener = null;
  }

  @Test
  void aThrowingListenerLosesNoAnswerAndStopsNothing() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 1, Map.of(), Map.of());
        RawQueueClient q = new RawQueueClient(c.queue(0).address())) {
      c.layOut(1);
      long tag = c.map().version();
      List<Delivery> got = new CopyOnWriteArrayList<>();
      q.subscribe("c", got);
      TestCluster.await(WAIT, "the consumer's session open", () -> q.status().getConsumers() == 1);

      QueueStore.failListener = kind -> true; // every ready and ack listener call throws
      int n = 10;
      for (int i = 1; i <= n; i++) {
        // One key: each message is delivered only once the one before is acknowledged.
        PublishResult r = q.publish("p", i, "key", "m" + i, tag);
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), "message " + i + ": " + r);
      }
      TestCluster.await(WAIT, "all delivered", () -> got.size() >= n);
      TestCluster.await(WAIT, "all acknowledged", () -> q.status().getQueued() == 0);

      List<String> payloads = new ArrayList<>();
      for (Delivery d : got) {
        payloads.add(d.getPayload().toStringUtf8());
        assertFalse(d.getRedelivered(), "the consumer's stream never broke: " + d);
      }
      List<String> expected = new ArrayList<>();
      for (int i = 1; i <= n; i++) {
        expected.add("m" + i);
      }
      assertEquals(expected, payloads);
      QueueStore store = c.queue(0).store();
      assertTrue(store.listenerFailures() >= 2 * n, "each publish and ack had its listener fail: "
          + store.listenerFailures());
      assertEquals(1, q.status().getConsumers(), "the same session throughout");
    }
  }
}
