package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.check.History;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.queue.testing.Traffic;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Routers whose map watch is cut keep publishing under the map they last had while a range moves
 * from q1 to q2 beside checked traffic from an up-to-date router. A stale router sends to the old
 * owner with the old tag:
 *
 * <ul>
 *   <li>in SWITCH before the source sealed, the source takes it into its hold buffer (C1), which
 *       reaches the target as its prefix;
 *   <li>in SWITCH after the seal, and after COMPLETE, the old owner answers WRONG_OWNER with its
 *       map version for every message of the pipelined batch (the refusal fence); the router
 *       fetches that map and resends them in order to where it says — the target's held queue,
 *       then the new owner.
 * </ul>
 *
 * <p>The stale routers record into the traffic's history, so the history checker judges their
 * messages with everyone else's: nothing lost, nothing reordered, no duplicate that redelivery does
 * not explain. The handover is held in SWITCH by a consumer that keeps one message of the source
 * unacknowledged, and held sealed-but-not-complete by stopping two of the three PLB nodes.
 */
class StaleRouterTest {
  private static final Duration WAIT = Duration.ofSeconds(60);

  @TempDir Path tmp;

  @Test
  void staleRoutersAreRefusedAndResendInOrder() throws Exception {
    try (QueueCluster c = QueueCluster.start(tmp, 2, Map.of(), Map.of());
        RawQueueClient q1 = new RawQueueClient(c.queue(0).address())) {
      c.layOut(1);
      long epoch = c.map().rangeFor(0).epoch();
      try (Traffic t = Traffic.start(c.plb().endpoints(), 200, 100, 1, 2)) {
        History history = t.workload().history();
        StaleRouter s1 = new StaleRouter("stale-1", c, history);
        StaleRouter s2 = new StaleRouter("stale-2", c, history);
        t.awaitMoreDeliveries(100, WAIT, "traffic flowing");
        assertEquals(0, s1.publish(3));
        assertEquals(0, s2.publish(3));
        List<Delivery> held = new CopyOnWriteArrayList<>();
        AutoCloseable holder = q1.hold("holder", 1, held);
        TestCluster.await(WAIT, "the holder takes a message", () -> !held.isEmpty());

        c.admin().move(0, "q2");
        TestCluster.await(WAIT, "SWITCH at both servers", () -> {
          RangeEntry r = c.map().rangeFor(0);
          return r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH
              && c.queue(0).agent().version() >= c.map().version()
              && c.queue(1).agent().version() >= c.map().version();
        });
        long vSwitch = c.map().version();
        // SWITCH, not sealed: the old owner holds what stale routers send it.
        long holdBefore = c.queue(0).store().held();
        assertEquals(0, s1.publish(3));
        assertEquals(0, s2.publish(3));
        assertTrue(c.queue(0).store().held() >= holdBefore + 6, "in q1's hold buffer");
        assertEquals(s1.version(), s2.version(), "both still route by the first map");
        assertTrue(s1.version() < vSwitch);

        // Seal, with the map frozen so the handover stays in SWITCH.
        c.plb().stopNode(1);
        c.plb().stopNode(2);
        holder.close();
        TestCluster.await(WAIT, "q1 sealed and its hold buffer stored by q2", () -> {
          var sides = c.queue(0).agent().sides();
          return sides.size() == 1 && sides.get(0).bufferTransferred();
        });
        assertEquals(HandoverPhase.SWITCH, c.map().rangeFor(0).handover().phase());
        // SWITCH, sealed: refused, every message of the batch; resent in order to q2.
        assertEquals(3, s1.publish(3));
        assertEquals(vSwitch, s1.lastRefusalVersion());
        assertEquals(vSwitch, s1.version(), "s1 resent under the map it was refused at");
        // The up-to-date router's traffic goes on into q2's held queue (delivered at COMPLETE).
        long ackedFrozen = t.verdictSoFar().acknowledged();
        TestCluster.await(WAIT, "traffic taken while the map is frozen",
            () -> t.verdictSoFar().acknowledged() >= ackedFrozen + 50);

        c.plb().startNode(1);
        c.plb().startNode(2);
        TestCluster.await(WAIT, "COMPLETE", () -> {
          RangeEntry r = c.map().rangeFor(0);
          return r.handover() == null && r.owner().equals("q2") && r.epoch() == epoch + 1;
        });
        long vComplete = c.map().version();
        TestCluster.await(WAIT, "q1 at COMPLETE",
            () -> c.queue(0).agent().version() >= vComplete);
        // After COMPLETE: s2 still routes by the first map, to q1 — refused, resent to q2.
        assertEquals(3, s2.publish(3));
        assertTrue(s2.lastRefusalVersion() >= vComplete);
        // s1 routes by the SWITCH map, to the target, which now owns the range: taken.
        assertEquals(0, s1.publish(3));
        assertTrue(s1.version() < vComplete);

        t.awaitMoreDeliveries(200, WAIT, "traffic after COMPLETE");
        TargetFailureTest.assertClean(t.stopAndCheck(), false);
        assertEquals(12, s1.accepted());
        assertEquals(9, s2.accepted());
      }
      TargetFailureTest.assertNoHandoverOpen(c);
    }
  }

  /**
   * A router whose map watch is cut: it routes by the map it has (the target in SWITCH, else the
   * owner), tags with that map's version and sends each batch pipelined in one request. When
   * messages come back refused it does what a router does — fetches a map at least as new as the
   * refusal's version and resends them, in sequence order, where that map says — and then goes
   * stale again. Records every send and acknowledgement in the shared history.
   */
  private static final class StaleRouter {
    private final String id;
    private final QueueCluster c;
    private final History history;
    private ClusterImage map;
    private long seq;
    private long accepted;
    private long lastRefusalVersion;

    StaleRouter(String id, QueueCluster c, History history) {
      this.id = id;
      this.c = c;
      this.history = history;
      this.map = c.map();
    }

    long version() {
      return map.version();
    }

    long accepted() {
      return accepted;
    }

    long lastRefusalVersion() {
      return lastRefusalVersion;
    }

    /** Publishes {@code n} messages over three keys; returns how many were refused at first. */
    int publish(int n) throws Exception {
      List<PublishItem> batch = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        seq++;
        String key = id + "-k" + (seq % 3);
        history.publishSent(id, seq, key);
        batch.add(RawQueueClient.item(seq, key, id + "#" + seq, map.version()));
      }
      int refusedAtFirst = -1;
      for (int attempt = 0; !batch.isEmpty(); attempt++) {
        assertTrue(attempt < 20, "a batch still refused after 20 attempts");
        List<PublishResult> results = send(batch);
        List<PublishItem> again = new ArrayList<>();
        long refusedAt = 0;
        for (int i = 0; i < batch.size(); i++) {
          PublishResult r = results.get(i);
          if (r.getStatus() == PublishStatus.ACCEPTED) {
            assertTrue(again.isEmpty(), "a message accepted after an earlier one was refused: "
                + results);
            history.publishAcked(id, r.getSeq());
            accepted++;
          } else {
            assertEquals(PublishStatus.WRONG_OWNER, r.getStatus(), r.toString());
            refusedAt = Math.max(refusedAt, r.getMapVersion());
            again.add(batch.get(i));
          }
        }
        if (refusedAtFirst < 0) {
          refusedAtFirst = again.size();
        }
        if (!again.isEmpty()) {
          lastRefusalVersion = refusedAt;
          map = c.admin().getMap(refusedAt);
          assertTrue(map.version() >= refusedAt);
          List<PublishItem> retagged = new ArrayList<>();
          for (PublishItem it : again) {
            retagged.add(it.toBuilder().setMapVersion(map.version()).build());
          }
          again = retagged;
        }
        batch = again;
      }
      return refusedAtFirst;
    }

    private List<PublishResult> send(List<PublishItem> batch) throws Exception {
      RangeEntry r = map.rangeFor(0);
      String dest = r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH
          ? r.handover().target() : r.owner();
      try (RawQueueClient q = new RawQueueClient(map.server(dest).address())) {
        return q.publishBatch(id, batch);
      }
    }
  }
}
