package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.client.router.Producer;
import io.plb.client.router.PublishAck;
import io.plb.client.router.Router;
import io.plb.core.map.HandoverPhase;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueStatus;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.CuttableProxy;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * Idempotent publish (docs/design.md §5): a producer's resend of a message whose answer it lost
 * is stored at most once — after a broken connection, and after the queue server was killed
 * (SIGKILL) between storing the message and sending the answer — and an older instance of a
 * named producer is refused once a newer one stored a message.
 */
class IdempotentPublishTest {
  private static final Duration WAIT = Duration.ofSeconds(60);

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp;

  /**
   * The real router behind a proxy that loses the answers to every message the server stored
   * and then resets the connection: the router resends them, the server answers them as
   * duplicates, and each message is queued and delivered once.
   */
  @Test
  void aConnectionResetAfterTheServerStoredABatchStoresNothingTwice() throws Exception {
    try (CuttableProxy proxy = new CuttableProxy();
        QueueCluster cluster = QueueCluster.start(tmp, 1, Map.of(),
            Map.of("advertise", proxy.address()))) {
      proxy.target(cluster.queue(0).port());
      cluster.layOut(1);
      try (Router router = Router.start(cluster.plb().endpoints());
          RawQueueClient direct = new RawQueueClient("127.0.0.1:" + cluster.queue(0).port())) {
        assertTrue(router.awaitVersion(cluster.map().version(), WAIT));
        Producer producer = router.producer("orders-service",
            Producer.Config.defaults().withMaxRequestsPerLink(8));
        assertTrue(producer.epoch() > 1, "a named producer's epoch comes from PLB");
        producer.publish("warm-up", new byte[0]).get(30, TimeUnit.SECONDS);

        proxy.swallowReplies();
        List<CompletableFuture<PublishAck>> acks = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
          acks.add(producer.publish("key-" + (i % 7), ("m" + i).getBytes(StandardCharsets.UTF_8)));
        }
        // The first eight publishes went out one per request (up to maxRequestsPerLink
        // unanswered); the rest wait on the link. Once the eight are stored, their answers are
        // lost.
        long[] stored = new long[1];
        TestCluster.await(WAIT, "the messages sent stored", () -> {
          stored[0] = direct.status().getAcceptedTotal() - 1;
          return stored[0] == 8 && producer.stats().requests() == 9;
        });
        proxy.cut();
        assertTrue(producer.flush(WAIT), "every message acknowledged after the reset");

        int duplicates = 0;
        for (CompletableFuture<PublishAck> f : acks) {
          duplicates += f.get().duplicate() ? 1 : 0;
        }
        QueueStatus status = direct.status();
        System.out.println(stored[0] + " messages stored before the reset");
        assertEquals(stored[0], duplicates, "each resend was answered as one");
        assertEquals(51, status.getQueued(), "nothing stored twice");
        assertEquals(51, status.getAcceptedTotal());
        assertEquals(stored[0], status.getDuplicatesTotal());
        assertEquals(stored[0], producer.stats().duplicates());

        List<Delivery> got = new CopyOnWriteArrayList<>();
        direct.subscribe("checker", got);
        TestCluster.await(WAIT, "51 deliveries", () -> got.size() >= 51);
        TestCluster.await(WAIT, "every delivery acknowledged",
            () -> direct.status().getQueued() == 0);
        Set<Long> seqs = new HashSet<>();
        for (Delivery d : got) {
          assertTrue(seqs.add(d.getSeq()), "delivered twice: seq " + d.getSeq());
        }
        assertEquals(51, got.size());
      }
    }
  }

  /**
   * What recognises resends moves with the range: a batch stored by q1, whose answers were lost,
   * is resent after the range moved to q2, and q2 answers every message as a duplicate.
   */
  @Test
  void aResendAfterTheRangeMovedIsRecognisedByTheNewOwner() throws Exception {
    try (QueueCluster cluster = QueueCluster.start(tmp, 2, Map.of(), Map.of());
        RawQueueClient q1 = new RawQueueClient(cluster.queue(0).address());
        RawQueueClient q2 = new RawQueueClient(cluster.queue(1).address())) {
      cluster.layOut(1);
      PublishRequest batch = batch("payments", 3, cluster.map().version(), 12);
      for (PublishResult r : q1.publishBatch(batch)) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
      }
      q1.subscribe("drain", new CopyOnWriteArrayList<>()); // the source drains before the switch
      cluster.admin().move(0, "q2");
      TestCluster.await(WAIT, "the range moved to q2", () -> {
        var r = cluster.map().rangeFor(0);
        return r.owner().equals("q2") && r.handover() == null;
      });
      TestCluster.await(WAIT, "q2 at the map's version",
          () -> cluster.queue(1).agent().version() >= cluster.map().version());
      PublishRequest resend = batch("payments", 3, cluster.map().version(), 12);
      for (PublishResult r : q2.publishBatch(resend)) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
        assertTrue(r.getDuplicate(), "a resend to the range's new owner: " + r);
      }
      assertEquals(0, q2.status().getAcceptedTotal(), "q2 stored none of them");
    }
  }

  /**
   * A resend that reaches the target during the switch, before the source's transfer brought the
   * range's sequences: the target takes it into its held queue, and drops it there when the
   * transfer shows the source had stored it. Each message is delivered once.
   */
  @Test
  void aResendTheTargetHeldBeforeTheTransferIsDroppedWhenTheTransferArrives() throws Exception {
    try (QueueCluster cluster = QueueCluster.start(tmp, 2, Map.of(), Map.of());
        RawQueueClient q1 = new RawQueueClient(cluster.queue(0).address());
        RawQueueClient q2 = new RawQueueClient(cluster.queue(1).address())) {
      cluster.layOut(1);
      for (PublishResult r : q1.publishBatch(batch("ledger", 5, cluster.map().version(), 12))) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
      }
      // No consumer on q1 yet: the source cannot drain, so the handover stays in SWITCH and the
      // transfer (with the sequences) waits.
      cluster.admin().move(0, "q2");
      TestCluster.await(WAIT, "the switch", () -> {
        var r = cluster.map().rangeFor(0);
        return r.handover() != null && r.handover().phase() == HandoverPhase.SWITCH;
      });
      TestCluster.await(WAIT, "q2 at the map's version",
          () -> cluster.queue(1).agent().version() >= cluster.map().version());
      for (PublishResult r : q2.publishBatch(batch("ledger", 5, cluster.map().version(), 12))) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
      }
      assertEquals(12, q2.status().getHeld(), "the resends wait in q2's held queue");

      List<Delivery> got = new CopyOnWriteArrayList<>();
      q1.subscribe("c1", got);
      q2.subscribe("c2", got);
      TestCluster.await(WAIT, "the move complete and everything acknowledged", () -> {
        var r = cluster.map().rangeFor(0);
        return r.owner().equals("q2") && r.handover() == null
            && q1.status().getQueued() == 0 && q2.status().getQueued() == 0
            && q2.status().getHeld() == 0;
      });
      Set<Long> seqs = new HashSet<>();
      for (Delivery d : got) {
        assertTrue(seqs.add(d.getSeq()), "delivered twice: seq " + d.getSeq() + " " + got);
      }
      assertEquals(12, seqs.size());
    }
  }

  /**
   * A range forced away from q1 after q1 stored and delivered a batch whose answers were lost:
   * q1's sequences never reach q2, so q2 cannot recognise the resends. The producer names q1 in
   * each resend ({@code maybe_stored_at}), and q2 delivers them flagged redelivered: the second
   * copy a consumer sees is marked as one it may have had. A resend that names no other server
   * is delivered unflagged.
   */
  @Test
  void aResendToTheOwnerARangeWasForcedToIsDeliveredFlagged() throws Exception {
    try (QueueCluster cluster = QueueCluster.start(tmp, 2, Map.of(), Map.of());
        RawQueueClient q1 = new RawQueueClient(cluster.queue(0).address());
        RawQueueClient q2 = new RawQueueClient(cluster.queue(1).address())) {
      cluster.layOut(1);
      for (PublishResult r : q1.publishBatch(batch("audit", 3, cluster.map().version(), 8))) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
      }
      List<Delivery> first = new CopyOnWriteArrayList<>();
      q1.subscribe("c1", first);
      TestCluster.await(WAIT, "q1 delivered the batch", () -> first.size() == 8);
      cluster.admin().assign(0, "q2", true);
      TestCluster.await(WAIT, "q2 at the map's version",
          () -> cluster.queue(1).agent().version() >= cluster.map().version());
      PublishRequest.Builder resend = batch("audit", 3, cluster.map().version(), 8).toBuilder();
      for (int i = 0; i < 6; i++) {
        resend.setItems(i, resend.getItems(i).toBuilder().addMaybeStoredAt("q1"));
      }
      for (PublishResult r : q2.publishBatch(resend.build())) {
        assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
        assertTrue(!r.getDuplicate(), "q2 has nothing to tell it by: " + r);
      }
      List<Delivery> second = new CopyOnWriteArrayList<>();
      q2.subscribe("c2", second);
      TestCluster.await(WAIT, "q2 delivered the resends", () -> second.size() == 8);
      for (Delivery d : second) {
        assertEquals(d.getSeq() <= 6, d.getRedelivered(), "seq " + d.getSeq() + ": " + d);
      }
      assertEquals(6, q2.status().getMaybeDuplicatesTotal());
    }
  }

  /** Messages 1..n of producer instance (id, epoch) over four keys, routed under {@code tag}. */
  private static PublishRequest batch(String producer, long epoch, long tag, int n) {
    PublishRequest.Builder b = PublishRequest.newBuilder().setProducer(producer)
        .setProducerEpoch(epoch);
    for (int i = 1; i <= n; i++) {
      b.addItems(RawQueueClient.item(i, "k" + (i % 4), "p" + i, tag));
    }
    return b.build();
  }

  /**
   * A queue server process killed with SIGKILL after storing a batch and started again on its
   * data: the resend of the batch is answered as duplicates and stores nothing.
   */
  @Test
  void aResendAfterTheServerWasKilledIsRecognised() throws Exception {
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3,
            TestCluster.liveness("8s", "3s"));
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 1,
            Map.of("heartbeatInterval", "200ms"), false);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build()) {
      plb.awaitLeader(WAIT);
      queues.awaitServing(0, WAIT);
      admin.assign(0, "q1", false);
      long tag = admin.getMap(0).version();
      List<PublishItem> items = new ArrayList<>();
      for (int i = 1; i <= 20; i++) {
        items.add(RawQueueClient.item(i, "k" + (i % 3), "p" + i, tag));
      }
      PublishRequest batch = PublishRequest.newBuilder().setProducer("billing")
          .setProducerEpoch(7).addAllItems(items).build();
      try (RawQueueClient q = new RawQueueClient(queues.address(0))) {
        for (PublishResult r : q.publishBatch(batch)) {
          assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
          assertTrue(!r.getDuplicate());
        }
      }
      queues.kill(0);
      queues.start(0);
      queues.awaitServing(0, WAIT);
      try (RawQueueClient q = new RawQueueClient(queues.address(0))) {
        for (PublishResult r : q.publishBatch(batch)) {
          assertEquals(PublishStatus.ACCEPTED, r.getStatus(), r.toString());
          assertTrue(r.getDuplicate(), "a resend after the crash: " + r);
        }
        assertEquals(20, q.status().getQueued(), "nothing stored twice");
        // A later message of the same instance is new; one of an older instance is refused.
        List<PublishResult> more = q.publishBatch(batch.toBuilder().clearItems()
            .addItems(RawQueueClient.item(21, "k0", "p21", tag)).build());
        assertEquals(PublishStatus.ACCEPTED, more.get(0).getStatus());
        assertTrue(!more.get(0).getDuplicate());
        List<PublishResult> old = q.publishBatch(batch.toBuilder().setProducerEpoch(6)
            .clearItems().addItems(RawQueueClient.item(1, "k9", "old", tag)).build());
        assertEquals(PublishStatus.REJECTED, old.get(0).getStatus(), old.toString());
        assertTrue(old.get(0).getDetail().contains("newer instance"), old.toString());
        assertEquals(21, q.status().getQueued());
      }
    }
  }
}
