package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishStatus;
import io.plb.queue.testing.NetCut;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * A queue server that is not dead but paused (SIGSTOP) or cut off from every PLB node while its
 * consumers still reach it, for longer than {@code server.downAfter}, while it owns a range with
 * messages queued (docs/design.md §5 "Owner leases"). The leader declares it DOWN and forces the
 * range to q2, which takes new messages of the same key and delivers them. Then q1's consumer
 * acknowledges the message it held — which, were q1 still serving, would let it hand out the
 * key's next queued message under its stale map, after q2 had delivered later ones. With its
 * lease run out, q1 delivers nothing; once it is back it hands its queued messages to q2 as late
 * messages. The queue servers are separate processes; the cut is made beneath them (nftables).
 */
class LeaseFencingTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private static final Map<String, String> PLB = TestCluster.liveness("4s", "2s");
  private static final Map<String, String> QUEUE = Map.of("heartbeatInterval", "200ms",
      "resendInterval", "100ms");

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp; // the servers' logs stay when it fails

  private enum Fault { PAUSE, CUT }

  @Test
  void pausedOwnerDeliversNothingAfterItsLeaseAndItsQueueArrivesLate() throws Exception {
    run(Fault.PAUSE);
  }

  @Test
  void ownerCutOffFromPlbDeliversNothingAfterItsLeaseAndItsQueueArrivesLate() throws Exception {
    assumeTrue(NetCut.available(), "cutting links needs root and nft");
    run(Fault.CUT);
  }

  private void run(Fault fault) throws Exception {
    History history = new History();
    try (TestCluster plb = TestCluster.start(tmp.resolve("plb"), 3, PLB);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 2,
            QUEUE, fault == Fault.CUT)) {
      plb.awaitLeader(WAIT);
      queues.awaitServing(0, WAIT);
      queues.awaitServing(1, WAIT);
      TestCluster.await(WAIT, "q1 and q2 registered",
          () -> admin.getMap(0).servers().keySet().containsAll(List.of("q1", "q2")));
      admin.assign(0, "q1", false); // the whole ring
      long v1 = admin.getMap(0).version();
      try (RawQueueClient q1 = new RawQueueClient(queues.address(0));
          RawQueueClient q2 = new RawQueueClient(queues.address(1))) {
        TestCluster.await(WAIT, "q1 at the layout", () -> q1.status().getMapVersion() >= v1);
        List<Delivery> held = new CopyOnWriteArrayList<>();
        RawQueueClient.Holding holder = q1.hold("c1", 1, d -> record(history, "c1", d, held));
        for (int seq = 1; seq <= 5; seq++) {
          publish(history, q1, seq, v1);
        }
        TestCluster.await(WAIT, "q1's consumer holds k#1", () -> held.size() == 1);

        NetCut cut = null;
        if (fault == Fault.PAUSE) {
          queues.pause(0);
        } else {
          cut = NetCut.cut(queues.uid(0), apiPorts(plb));
        }
        try {
          TestCluster.await(WAIT, "q1 DOWN and the ring forced to q2", () -> {
            var m = admin.getMap(0);
            return m.server("q1").state() == ServerState.DOWN
                && m.rangeFor(0).owner().equals("q2");
          });
          long v2 = admin.getMap(0).version();
          List<Delivery> got = new CopyOnWriteArrayList<>();
          q2.subscribe("c2", d -> record(history, "c2", d, got));
          TestCluster.await(WAIT, "q2 at the forced map", () -> q2.status().getMapVersion() >= v2);
          for (int seq = 6; seq <= 8; seq++) {
            publish(history, q2, seq, v2);
          }
          TestCluster.await(WAIT, "q2 delivers k#6..k#8", () -> got.size() >= 3);
          // Were q1 still serving under its old map, this would let it deliver k#2 now.
          holder.ack(held.get(0).getDeliveryId());
          if (fault == Fault.PAUSE) {
            queues.resume(0);
          } else {
            cut.heal();
          }
          TestCluster.await(WAIT, "q1 ACTIVE again and k#2..k#5 at q2 (or handed out by q1)",
              () -> held.size() > 1 || (got.size() >= 7
                  && admin.getMap(0).server("q1").state() == ServerState.ACTIVE));
          assertEquals(1, held.size(), "q1 delivered after its range was forced away: " + held);
        } finally {
          if (cut != null) {
            cut.close();
          }
        }
      }
      HistoryChecker.Verdict verdict = HistoryChecker.check(history);
      System.out.println(fault + ": " + verdict);
      assertTrue(verdict.ok(), verdict.toString());
      assertEquals(0, verdict.lost(), verdict.toString());
      assertEquals(4, verdict.late(), "k#2..k#5 arrive late: " + verdict);
    }
  }

  private static void publish(History history, RawQueueClient q, long seq, long tag)
      throws Exception {
    history.publishSent("p", seq, "k");
    assertEquals(PublishStatus.ACCEPTED, q.publish("p", seq, "k", "k#" + seq, tag).getStatus());
    history.publishAcked("p", seq);
  }

  private static void record(History history, String consumer, Delivery d, List<Delivery> to) {
    history.delivered(consumer, d.getProducer(), d.getSeq(), d.getKey().toByteArray(),
        d.getRedelivered(), d.getLate());
    to.add(d);
  }

  private static List<Integer> apiPorts(TestCluster plb) {
    List<Integer> ports = new ArrayList<>();
    for (String e : plb.endpoints()) {
      ports.add(Integer.parseInt(e.substring(e.lastIndexOf(':') + 1)));
    }
    return ports;
  }
}
