package io.plb.queue.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A dispatch round that fails unexpectedly ({@link Dispatcher#failRound}) is tried again: the
 * message whose arrival woke the failed round is still delivered, with nothing else happening on
 * the server to wake the dispatcher, and later messages are delivered as before.
 */
class DispatcherFailureTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @TempDir Path tmp;

  @AfterEach
  void clearFailpoint() {
    Dispatcher.failRound = null;
  }

  @Test
  void aFailedRoundIsTriedAgain() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 1, Map.of(), Map.of());
        RawQueueClient q = new RawQueueClient(c.queue(0).address())) {
      c.layOut(1);
      long tag = c.map().version();
      List<Delivery> got = new CopyOnWriteArrayList<>();
      q.subscribe("c", got);
      TestCluster.await(WAIT, "the consumer's session open", () -> q.status().getConsumers() == 1);

      AtomicInteger failures = new AtomicInteger(3);
      Dispatcher.failRound = () -> {
        if (failures.getAndDecrement() > 0) {
          throw new IllegalStateException("dispatch failure on purpose");
        }
      };
      assertEquals(PublishStatus.ACCEPTED, q.publish("p", 1, "key", "m1", tag).getStatus());
      TestCluster.await(WAIT, "m1 delivered after the failed rounds", () -> got.size() == 1);
      assertTrue(failures.get() <= 0, "the failpoint was hit");
      assertEquals(PublishStatus.ACCEPTED, q.publish("p", 2, "key", "m2", tag).getStatus());
      TestCluster.await(WAIT, "m2 delivered", () -> got.size() == 2);
      assertEquals(List.of("m1", "m2"),
          got.stream().map(d -> d.getPayload().toStringUtf8()).toList());
    }
  }
}
