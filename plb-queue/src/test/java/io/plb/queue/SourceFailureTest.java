package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.core.map.ServerState;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.queue.testing.Staging;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The source of a handover dies in SWITCH, holding a pre-switch backlog (m1..m3, no consumer has
 * taken them) and a hold buffer (m4, routed under PREPARE, arriving after it saw SWITCH), while
 * the target holds m5. Either it restarts — its queue and hold buffer survive, the handover
 * completes and a consumer gets m1..m5 in order — or it is declared DOWN first: the range is
 * forced to the target, which releases m5, and when the source returns m1..m4 reach the target as
 * late messages. Nothing is lost in either case.
 */
class SourceFailureTest {
  @TempDir Path tmp;

  @Test
  void sourceRestartsInSwitchAndTheHandoverCompletesInOrder() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of())) {
      List<Delivery> got = new CopyOnWriteArrayList<>();
      Staging.switchWithHoldBuffer(c);
      c.restartQueue(0); // same data, same address: it finds itself registered
      try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address());
          RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
        q1.subscribe("c1", got);
        q2.subscribe("c2", got);
        TestCluster.await(Duration.ofSeconds(30), "handover complete",
            () -> c.map().rangeFor(0).owner().equals("q2")
                && c.map().rangeFor(0).handover() == null);
        TestCluster.await(Duration.ofSeconds(30), "five deliveries", () -> got.size() >= 5);
        assertEquals(List.of("m1", "m2", "m3", "m4", "m5"), payloads(got));
      }
    }
  }

  @Test
  void sourceDeclaredDownHandsItsMessagesOverAsLateOnReturn() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2,
        TestCluster.liveness("3s", "1s"), Map.of())) {
      List<Delivery> got = new CopyOnWriteArrayList<>();
      Staging.switchWithHoldBuffer(c);
      c.stopQueue(0);
      TestCluster.await(Duration.ofSeconds(30), "q1 DOWN and the range forced to q2", () -> {
        var m = c.map();
        return m.server("q1").state() == ServerState.DOWN && m.rangeFor(0).owner().equals("q2")
            && m.rangeFor(0).handover() == null;
      });
      try (RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
        q2.subscribe("c2", got);
        TestCluster.await(Duration.ofSeconds(30), "m5 delivered by the new owner",
            () -> got.size() >= 1);
        c.startQueue(0); // q1 returns: heard again, ACTIVE, hands over what it held as late
        TestCluster.await(Duration.ofSeconds(30), "q1 ACTIVE again",
            () -> c.map().server("q1").state() == ServerState.ACTIVE);
        TestCluster.await(Duration.ofSeconds(30), "all five delivered", () -> got.size() >= 5);
        assertEquals("m5", payloads(got).get(0));
        assertEquals(List.of("m1", "m2", "m3", "m4"), payloads(got).subList(1, 5));
        assertEquals(4, got.stream().filter(Delivery::getLate).count());
        assertEquals(4, c.queue(1).agent().lateReceived());
        TestCluster.await(Duration.ofSeconds(10), "q1 holds nothing any more",
            () -> c.queue(0).store().queued() == 0 && c.queue(0).store().held() == 0);
      }
    }
  }

  /**
   * An owner with a backlog and nothing in any handover buffer is declared DOWN; its range is
   * forced to q2. On its return it sends its queued messages to q2 as late messages — a LATE
   * transfer that belongs to no handover, so it carries no handover epoch. (It was refused as
   * malformed, "handover_epoch must be at least 1", for as long as the backlog stayed.)
   */
  @Test
  void ownerDeclaredDownHandsItsQueuedMessagesOverAsLateOnReturn() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2,
        TestCluster.liveness("3s", "1s"), Map.of())) {
      c.layOut(1);
      try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address())) {
        long v = c.map().version();
        TestCluster.await(Duration.ofSeconds(10), "q1 at the layout",
            () -> c.queue(0).agent().version() >= v);
        for (int i = 1; i <= 3; i++) {
          assertEquals(PublishStatus.ACCEPTED, q1.publish("p", i, "k", "m" + i, v).getStatus());
        }
      }
      assertEquals(0, c.queue(0).store().held());
      c.stopQueue(0);
      TestCluster.await(Duration.ofSeconds(30), "q1 DOWN and the range forced to q2", () -> {
        var m = c.map();
        return m.server("q1").state() == ServerState.DOWN && m.rangeFor(0).owner().equals("q2");
      });
      List<Delivery> got = new CopyOnWriteArrayList<>();
      try (RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
        q2.subscribe("c2", got);
        c.startQueue(0);
        TestCluster.await(Duration.ofSeconds(30), "m1..m3 delivered by q2", () -> got.size() >= 3);
        assertEquals(List.of("m1", "m2", "m3"), payloads(got));
        assertEquals(3, got.stream().filter(Delivery::getLate).count());
        TestCluster.await(Duration.ofSeconds(10), "q1 holds nothing any more",
            () -> c.queue(0).store().queued() == 0 && c.queue(0).store().held() == 0);
      }
    }
  }

  private static List<String> payloads(List<Delivery> got) {
    List<String> out = new ArrayList<>();
    for (Delivery d : got) {
      out.add(d.getPayload().toString(StandardCharsets.UTF_8));
    }
    return out;
  }
}
