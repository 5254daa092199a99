package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.client.admin.PlbAdminClient;
import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.ServerState;
import io.plb.queue.testing.NetCut;
import io.plb.queue.testing.PlbProcesses;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.Traffic;
import io.plb.server.testing.TestCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * A short nemesis run across processes: three PLB nodes and three queue servers, each a JVM of
 * its own, under checked traffic with random moves, while a seeded schedule injects the faults
 * production brings — a queue server killed (SIGKILL) and started again at once; a queue server
 * paused (SIGSTOP) until it is declared DOWN and its ranges forced away, then resumed; a queue
 * server cut off from every PLB node (nftables, beneath the process; skipped without root) while
 * producers and consumers still reach it, then healed; a PLB node killed and started again. It
 * ends with the checker's verdict: nothing lost, no key reordered, no phantom delivery.
 * Duplicates of messages stored just before a kill are counted, not yet refused.
 *
 * <p>{@code -Dplb.nemesis.seed=N} replays a schedule; {@code -Dplb.nemesis.steps=N} runs more
 * faults (default 5).
 */
class NemesisTest {
  private static final Duration WAIT = Duration.ofSeconds(90);
  private static final Map<String, String> PLB = TestCluster.liveness("6s", "3s");
  private static final Map<String, String> QUEUE = Map.of("heartbeatInterval", "250ms",
      "resendInterval", "100ms");

  private enum Fault { KILL_QUEUE, PAUSE_QUEUE, CUT_QUEUE, KILL_PLB_NODE }

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp; // the processes' logs stay when it fails

  @Test
  void checkedTrafficSurvivesASeededScheduleOfCrashesPausesAndPartitions() throws Exception {
    long seed = Long.getLong("plb.nemesis.seed", System.nanoTime());
    int steps = Integer.getInteger("plb.nemesis.steps", 5);
    boolean cuts = NetCut.available();
    System.out.println("nemesis seed " + seed + " (-Dplb.nemesis.seed=" + seed + " replays it)"
        + (cuts ? "" : "; no partitions: cutting links needs root and nft"));
    Random random = new Random(seed);
    Map<Fault, Integer> injected = new EnumMap<>(Fault.class);
    try (PlbProcesses plb = PlbProcesses.start(tmp.resolve("plb"), 3, PLB);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints()).build();
        QueueProcesses queues = QueueProcesses.start(tmp.resolve("queues"), plb.endpoints(), 3,
            QUEUE, cuts)) {
      for (int i = 0; i < 3; i++) {
        queues.awaitServing(i, WAIT);
      }
      QueueCrashTest.layOut(admin, 6, 3);
      // Traffic outlasts the schedule (a step takes 5-15 s); moves come every few seconds.
      Duration traffic = Duration.ofSeconds(60 + 30L * steps);
      try (Traffic t = Traffic.start(Workload.Options.defaults(plb.endpoints()).withKeys(1000)
          .withRate(300).withClients(2, 3).withMoves((int) (traffic.toSeconds() / 2))
          .withDuration(traffic))) {
        t.awaitMoreDeliveries(300, WAIT, "traffic flowing");
        for (int step = 0; step < steps; step++) {
          List<Fault> kinds = new ArrayList<>(List.of(Fault.values()));
          if (!cuts) {
            kinds.remove(Fault.CUT_QUEUE);
          }
          Fault f = kinds.get(random.nextInt(kinds.size()));
          int victim = random.nextInt(3);
          System.out.println("nemesis step " + step + ": " + f + " of #" + (victim + 1));
          inject(f, victim, plb, admin, queues);
          injected.merge(f, 1, Integer::sum);
          t.awaitMoreDeliveries(300, WAIT, "traffic flowing after " + f);
        }
        Workload.Result result = t.stopAndCheck();
        HistoryChecker.Verdict v = result.verdict();
        System.out.println("nemesis run, seed " + seed + ": faults " + injected + ", "
            + result.movesStarted() + " moves started; " + v);
        assertEquals(0, v.lost(), "seed " + seed + ": " + v);
        assertEquals(0, v.reorderedKeys(), "seed " + seed + ": " + v);
        assertEquals(0, v.phantom(), "seed " + seed + ": " + v);
      }
    }
  }

  private static void inject(Fault f, int i, PlbProcesses plb, PlbAdminClient admin,
      QueueProcesses queues) throws Exception {
    switch (f) {
      case KILL_QUEUE -> {
        queues.kill(i);
        queues.start(i);
        queues.awaitServing(i, WAIT);
      }
      case PAUSE_QUEUE -> {
        queues.pause(i);
        try {
          awaitDown(admin, queues.id(i));
        } finally {
          queues.resume(i);
        }
        queues.awaitServing(i, WAIT);
      }
      case CUT_QUEUE -> {
        try (NetCut cut = NetCut.cut(queues.uid(i), apiPorts(plb))) {
          awaitDown(admin, queues.id(i));
        }
        queues.awaitServing(i, WAIT);
      }
      case KILL_PLB_NODE -> {
        plb.kill(i);
        plb.awaitLeader(WAIT);
        plb.startNode(i);
        plb.awaitCaughtUp(i, WAIT); // one fault at a time: the next must not take a majority
      }
      default -> throw new IllegalStateException(f.name());
    }
  }

  private static void awaitDown(PlbAdminClient admin, String id) {
    TestCluster.await(WAIT, id + " DOWN and its ranges forced away", () -> {
      var m = admin.getMap(0);
      if (m.server(id).state() != ServerState.DOWN) {
        return false;
      }
      for (var r : m.ranges()) {
        if (r.owner().equals(id)) {
          return false;
        }
      }
      return true;
    });
  }

  private static List<Integer> apiPorts(PlbProcesses plb) {
    List<Integer> ports = new ArrayList<>();
    for (String e : plb.endpoints()) {
      ports.add(Integer.parseInt(e.substring(e.lastIndexOf(':') + 1)));
    }
    return ports;
  }
}
