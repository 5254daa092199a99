package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Messages held for a handover count against {@code maxHeld}, queued ones against
 * {@code maxQueued}: a hot range held at its target through a long SWITCH fills the target's
 * handover quota, not the quota of every other range it serves.
 */
class HeldQuotaTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  @TempDir Path tmp;

  /** A key whose hash falls in the lower half of the ring (or the upper, with {@code upper}). */
  private static String keyIn(boolean upper) {
    for (int i = 0; ; i++) {
      String k = "k" + i;
      if ((KeyHash.hash(k.getBytes(StandardCharsets.UTF_8)) < 0) == upper) {
        return k;
      }
    }
  }

  @Test
  void heldMessagesHaveTheirOwnQuota() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(),
        Map.of("maxQueued", "3", "maxHeld", "5"))) {
      c.layOut(2); // [0, 2^63) on q1, [2^63, 2^64) on q2
      String moving = keyIn(false);
      String staying = keyIn(true);
      try (RawQueueClient q1 = new RawQueueClient(c.queue(0).address());
          RawQueueClient q2 = new RawQueueClient(c.queue(1).address())) {
        long v = c.map().version();
        TestCluster.await(WAIT, "both servers at the layout",
            () -> c.queue(0).agent().version() >= v && c.queue(1).agent().version() >= v);
        // A backlog with no consumer keeps the move in SWITCH.
        assertEquals(PublishStatus.ACCEPTED, q1.publish("p", 1, moving, "m1", v).getStatus());
        c.admin().move(0, "q2");
        TestCluster.await(WAIT, "SWITCH", () -> {
          RangeEntry r = c.map().rangeFor(0);
          return r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH;
        });
        long sw = c.map().version();
        TestCluster.await(WAIT, "q2 at SWITCH", () -> c.queue(1).agent().version() >= sw);
        for (int seq = 2; seq <= 6; seq++) {
          assertEquals(PublishStatus.ACCEPTED,
              q2.publish("p", seq, moving, "m" + seq, sw).getStatus(), "held m" + seq);
        }
        PublishResult sixth = q2.publish("p", 7, moving, "m7", sw);
        assertEquals(PublishStatus.OVERLOADED, sixth.getStatus());
        assertTrue(sixth.getDetail().contains("maxHeld"), sixth.getDetail());
        // q2's own range is still served: its queue quota is untouched by the held messages.
        for (int seq = 1; seq <= 3; seq++) {
          assertEquals(PublishStatus.ACCEPTED,
              q2.publish("p2", seq, staying, "s" + seq, sw).getStatus(), "queued s" + seq);
        }
        PublishResult fourth = q2.publish("p2", 4, staying, "s4", sw);
        assertEquals(PublishStatus.OVERLOADED, fourth.getStatus());
        assertTrue(fourth.getDetail().contains("maxQueued"), fourth.getDetail());
        assertEquals(5, c.queue(1).store().held());
        assertEquals(3, c.queue(1).store().queued());
      }
    }
  }
}
