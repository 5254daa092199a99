package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishStatus;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Consumer sessions of one queue server take turns: when messages arrive one at a time, each
 * goes to the session after the one served last, so no session with credit is starved — with an
 * even number of sessions too.
 */
class DispatchFairnessTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @TempDir Path tmp;

  @Test
  void messagesArrivingOneAtATimeAlternateBetweenTwoSessions() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 1, Map.of(), Map.of());
        RawQueueClient q = new RawQueueClient(c.queue(0).address())) {
      c.layOut(1);
      long tag = c.map().version();
      List<Delivery> a = new CopyOnWriteArrayList<>();
      List<Delivery> b = new CopyOnWriteArrayList<>();
      try (AutoCloseable ha = q.hold("a", 100, a);
          AutoCloseable hb = q.hold("b", 100, b)) {
        TestCluster.await(WAIT, "both sessions open",
            () -> q.status().getConsumers() == 2);
        int n = 20;
        for (int i = 1; i <= n; i++) {
          assertEquals(PublishStatus.ACCEPTED,
              q.publish("p", i, "key-" + i, "m" + i, tag).getStatus());
          int sent = i;
          TestCluster.await(WAIT, "message " + i + " delivered", () -> a.size() + b.size() == sent);
        }
        assertTrue(a.size() >= n / 4 && b.size() >= n / 4,
            "both sessions served: a got " + a.size() + ", b got " + b.size());
      }
    }
  }
}
