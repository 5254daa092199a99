package io.plb.queue.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.PublishStatus;
import io.plb.server.testing.TestCluster;
import java.time.Duration;

/** Handover situations set up message by message, for tests that need a handover to stay put. */
public final class Staging {
  private Staging() {}

  /**
   * q1 owns the ring with m1..m3 queued (no consumer, so the backlog cannot drain and the move
   * stays in SWITCH), the move to q2 in SWITCH, m4 in q1's hold buffer (routed under PREPARE,
   * arriving after SWITCH) and m5 in q2's held queue. All five are from producer "p", key "k".
   */
  public static void switchWithHoldBuffer(QueueCluster c) throws Exception {
    c.layOut(1);
    try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address());
        RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
      long v = c.map().version();
      TestCluster.await(Duration.ofSeconds(10), "q1 at the layout",
          () -> c.queue(0).agent().version() >= v);
      for (int i = 1; i <= 3; i++) {
        assertEquals(PublishStatus.ACCEPTED, q1.publish("p", i, "k", "m" + i, v).getStatus());
      }
      long prepare = c.admin().move(0, "q2").getVersion();
      TestCluster.await(Duration.ofSeconds(20), "SWITCH", () -> {
        RangeEntry r = c.map().rangeFor(0);
        return r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH;
      });
      long sw = c.map().version();
      TestCluster.await(Duration.ofSeconds(10), "both servers at SWITCH",
          () -> c.queue(0).agent().version() >= sw && c.queue(1).agent().version() >= sw);
      assertEquals(PublishStatus.ACCEPTED, q1.publish("p", 4, "k", "m4", prepare).getStatus());
      assertEquals(PublishStatus.ACCEPTED, q2.publish("p", 5, "k", "m5", sw).getStatus());
      assertEquals(1, c.queue(0).store().held());
      assertEquals(3, c.queue(0).store().queued());
    }
  }
}
