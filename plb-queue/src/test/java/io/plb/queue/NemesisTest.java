package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.queue.testing.MapChanges;
import io.plb.queue.testing.NetCut;
import io.plb.queue.testing.OwnUser;
import io.plb.queue.testing.PlbProcesses;
import io.plb.queue.testing.QueueProcesses;
import io.plb.queue.testing.WorkloadProcess;
import io.plb.server.testing.TestCluster;
import java.io.BufferedReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

/**
 * The nemesis across processes: three PLB nodes, three queue servers, the checked workload's
 * producers (with their router and random moves, splits and merges) and its consumers (which
 * check both halves of the history at the end), every one a JVM of its own under a user id of
 * its own, with the leader's balancer acting on small servers,
 * while a seeded schedule injects one fault at a time ({@link Fault}) and heals it. Links are cut,
 * slowed and broken beneath the processes (nftables on each user's packets, {@code ss -K}), so
 * no client can go around a cut by following an advertised address. Each queue server
 * advertises a relay in this JVM as its address, so every client and peer reaches it through
 * the relay, where latency is added (this kernel has no {@code netem}); cuts of its clients cut
 * the relay's port. It ends with the checker's
 * verdict (nothing lost, no key reordered, no phantom), no handover left open once the balancer
 * is paused, and a report: faults by kind, handovers by outcome, and how long publishes waited
 * during faults for keys whose range the faulted queue server owned and for the others. Without
 * root (no nftables, no other users) only kills, pauses and latency are injected. No duplicate may go
 * unexplained either: the resend of a message stored just before a kill or a reset, whose
 * acknowledgement never left, is recognised (idempotent publish).
 *
 * <p>{@code -Dplb.nemesis.seconds=N} injects faults for N seconds (default 30, about a minute in
 * all); {@code -Dplb.nemesis.seed=N} replays a schedule (the kinds and victims; how many fit in
 * the time depends on the machine); {@code -Dplb.nemesis.steps=N} stops after N faults;
 * {@code -Dplb.nemesis.faults=KIND,...} injects only those kinds. The report is also written to
 * {@code target/nemesis-SEED.txt}, and with {@code -Dplb.nemesis.keepLogs=true} every process's
 * log to {@code target/nemesis-SEED-logs/} (they are kept anyway when the run fails).
 *
 * <p>Thread model: the test thread drives every process and fault; the workload runs in two
 * processes of its own; {@link MapChanges} counts on its watcher's thread.
 */
class NemesisTest {
  private static final Duration WAIT = Duration.ofSeconds(90);
  private static final int KEYS = 1000;

  /** What the schedule injects; each is healed before the next. */
  enum Fault {
    /** SIGKILL of a queue server, started again at once on its data. */
    KILL_QUEUE(false, true),
    /** SIGSTOP until the server is committed DOWN and its ranges forced away, then SIGCONT. */
    PAUSE_QUEUE(false, true),
    /** A queue server cut from every PLB node (not from its clients) until the same. */
    CUT_QUEUE_FROM_PLB(true, true),
    /** A queue server cut from the other queue servers (handover transfers, late messages). */
    CUT_QUEUE_FROM_QUEUES(true, true),
    /** The workload's producers (their router) cut from one queue server. */
    CUT_PRODUCERS_FROM_QUEUE(true, true),
    /** The workload's consumers cut from one queue server. */
    CUT_CONSUMERS_FROM_QUEUE(true, true),
    /** 15 % of a queue server's packets, both ways, dropped: every link slow, none cut. */
    SLOW_QUEUE(true, true),
    /** 100 ms added each way on every link to a queue server (at its relay). */
    DELAY_QUEUE(false, true),
    /** Every established connection to a queue server reset, three times a second apart. */
    DROP_QUEUE_CONNECTIONS(true, true),
    /** SIGKILL of a PLB node, started again once a leader is among the others. */
    KILL_PLB_NODE(false, false),
    /** A PLB follower cut from the other two nodes (its clients still reach it). */
    PARTITION_PLB_MINORITY(true, false),
    /** The PLB leader cut from the other nodes and from every queue server and the workload. */
    ISOLATE_PLB_LEADER(true, false);

    final boolean needsRoot;
    final boolean ofQueueServer;

    Fault(boolean needsRoot, boolean ofQueueServer) {
      this.needsRoot = needsRoot;
      this.ofQueueServer = ofQueueServer;
    }
  }

  /**
   * One injected fault: when (wall clock, from injection until the victim serves again) and, for
   * a queue server's, every range it owned or received meanwhile.
   */
  record Window(Fault fault, String victim, long fromMillis, long toMillis,
      List<RangeEntry> owned) {}

  @TempDir(cleanup = CleanupMode.ON_SUCCESS) Path tmp; // the processes' logs stay when it fails

  static Map<String, String> plbSettings() {
    Map<String, String> s = new LinkedHashMap<>(TestCluster.liveness("6s", "3s"));
    // The balancer acts: servers of 300 cost units/s each carry ~100 at 300 msg/s, and the
    // workload's random moves, splits and merges keep unbalancing them.
    s.putAll(BalancerTrafficTest.settings());
    return s;
  }

  @Test
  void checkedTrafficSurvivesASeededScheduleOfCrashesPausesAndPartitions() throws Exception {
    long seed = Long.getLong("plb.nemesis.seed", System.nanoTime());
    int seconds = Integer.getInteger("plb.nemesis.seconds", 30);
    int steps = Integer.getInteger("plb.nemesis.steps", Integer.MAX_VALUE);
    boolean root = NetCut.available();
    System.out.println("nemesis seed " + seed + " (-Dplb.nemesis.seed=" + seed + " replays it)"
        + (root ? "" : "; kills and pauses only: cutting links needs root and nft"));
    List<Fault> kinds = new ArrayList<>();
    String only = System.getProperty("plb.nemesis.faults", "");
    for (Fault f : Fault.values()) {
      boolean chosen = only.isEmpty() || List.of(only.split(",")).contains(f.name());
      if (chosen && (root || !f.needsRoot)) {
        kinds.add(f);
      }
    }
    Random random = new Random(seed);
    Map<Fault, Integer> injected = new EnumMap<>(Fault.class);
    List<Window> windows = new ArrayList<>();
    long t0 = System.nanoTime();
    int traffic = seconds + 15; // a calm tail after the last fault
    try (PlbProcesses plb = PlbProcesses.start(tmp.resolve("plb"), 3, plbSettings(), root);
        PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(plb.endpoints())
            .deadline(Duration.ofSeconds(5)).build();
        MapChanges changes = MapChanges.watch(plb.endpoints());
        QueueProcesses queues = QueueProcesses.relayed(tmp.resolve("queues"), plb.endpoints(),
            3, Map.of("heartbeatInterval", "250ms", "resendInterval", "100ms"), root)) {
      for (int i = 0; i < 3; i++) {
        queues.awaitServing(i, WAIT);
      }
      QueueCrashTest.layOut(admin, 6, 3);
      Path half = tmp.resolve("producers").resolve("producers.history");
      List<String> options = List.of("--endpoints=" + String.join(",", plb.endpoints()),
          "--keys=" + KEYS, "--rate=300", "--producers=2", "--consumers=3",
          "--duration=" + traffic, "--moves=" + traffic / 3, "--reshapes=" + traffic / 6,
          "--settle=120", "--seed=" + seed, "--history=" + half);
      try (WorkloadProcess workload = WorkloadProcess.start(tmp.resolve("consumers"),
              root ? OwnUser.CONSUMERS : 0, with(options, "--role=consumers"));
          WorkloadProcess producers = WorkloadProcess.start(tmp.resolve("producers"),
              root ? OwnUser.PRODUCERS : 0, with(options, "--role=producers"))) {
        workload.awaitMoreDeliveries(300, WAIT, "traffic flowing");
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        for (int step = 0; step < steps && System.nanoTime() < end; step++) {
          Fault f = kinds.get(random.nextInt(kinds.size()));
          int victim = random.nextInt(3);
          int hold = 5 + random.nextInt(11); // seconds, for the faults that last a while
          System.out.printf("%s nemesis step %d: %s of #%d%n", Instant.now(), step, f,
              victim + 1);
          Window w = inject(f, victim, hold, plb, admin, queues, changes);
          windows.add(w);
          System.out.printf("  %s of %s: %.1f s until it served again%n", f, w.victim(),
              (w.toMillis() - w.fromMillis()) / 1000.0);
          injected.merge(f, 1, Integer::sum);
          if (!workload.awaitMoreDeliveriesUnlessEnded(300, WAIT, "traffic flowing after " + f)) {
            break; // the last fault outlasted the traffic
          }
        }
        Map<String, Object> produced = producers.awaitVerdict(
            Duration.ofSeconds(traffic + 300));
        Map<String, Object> verdict = new LinkedHashMap<>(produced);
        verdict.putAll(workload.awaitVerdict(Duration.ofSeconds(300)));
        for (String k : List.of("moves_started", "moves_refused", "splits", "merges",
            "reshapes_refused", "redirected", "overloaded", "resent", "publish_ms_p50",
            "publish_ms_p99", "publish_ms_max")) {
          verdict.put(k, produced.get(k)); // the producers' own figures
        }
        Map<String, long[]> waits = waits(producers.publishLog(), windows);
        String report = report(seed, seconds, (System.nanoTime() - t0) / 1e9, injected,
            windows, changes.counts(), verdict, waits);
        System.out.print(report);
        Path target = Path.of("target");
        if (Files.isDirectory(target)) {
          Files.writeString(target.resolve("nemesis-" + seed + ".txt"), report);
          if (Boolean.getBoolean("plb.nemesis.keepLogs")) {
            copyLogs(tmp, target.resolve("nemesis-" + seed + "-logs"));
          }
        }
        // With the balancer paused, every open handover must end: none is stuck.
        admin.setBalancerPaused(true, "nemesis: end of run");
        try {
          TestCluster.await(Duration.ofSeconds(120), "no handover open",
              () -> admin.handovers().getHandoversCount() == 0);
        } catch (AssertionError e) {
          throw new AssertionError("seed " + seed + ": a handover is stuck: " + admin.handovers(),
              e);
        }
        assertTrue(windows.size() > 0, "no fault was injected");
        assertEquals(0.0, verdict.get("lost"), "seed " + seed + ": " + verdict);
        assertEquals(0.0, verdict.get("reordered_keys"), "seed " + seed + ": " + verdict);
        assertEquals(0.0, verdict.get("phantom"), "seed " + seed + ": " + verdict);
        assertEquals(0.0, verdict.get("unexplained_duplicates"), "seed " + seed + ": " + verdict);
        assertTrue((Double) verdict.get("acknowledged") > 0, "seed " + seed + ": " + verdict);
        assertTrue((Double) verdict.get("splits") + (Double) verdict.get("merges") > 0,
            "the workload split or merged nothing: " + verdict);
        assertEquals(((Double) verdict.get("acknowledged")).longValue(),
            waits.values().stream().mapToLong(v -> v.length).sum(),
            "every acknowledged publish is in the publish log");
      }
    }
  }

  private static Window inject(Fault f, int i, int hold, PlbProcesses plb, PlbAdminClient admin,
      QueueProcesses queues, MapChanges changes) throws Exception {
    changes.track(queues.id(i));
    String victim = f.ofQueueServer ? queues.id(i) : "n" + (i + 1);
    long from = System.currentTimeMillis();
    List<NetCut> cuts = new ArrayList<>();
    try {
      switch (f) {
        case KILL_QUEUE -> {
          queues.kill(i);
          queues.start(i);
        }
        case PAUSE_QUEUE -> {
          queues.pause(i);
          try {
            awaitDown(admin, queues.id(i));
          } finally {
            queues.resume(i);
          }
        }
        case CUT_QUEUE_FROM_PLB -> {
          List<Integer> api = new ArrayList<>();
          for (int n = 0; n < plb.size(); n++) {
            api.add(plb.apiPort(n));
          }
          cuts.add(NetCut.cut(queues.uid(i), api));
          awaitDown(admin, queues.id(i));
        }
        case CUT_QUEUE_FROM_QUEUES -> {
          List<Integer> others = new ArrayList<>();
          for (int q = 0; q < 3; q++) {
            if (q != i) {
              others.add(queues.clientPort(q));
              cuts.add(NetCut.cut(queues.uid(q), List.of(queues.clientPort(i))));
            }
          }
          cuts.add(NetCut.cut(queues.uid(i), others));
          hold(hold, plb, queues);
        }
        case CUT_PRODUCERS_FROM_QUEUE -> {
          cuts.add(NetCut.cut(OwnUser.PRODUCERS, List.of(queues.clientPort(i))));
          hold(hold, plb, queues);
        }
        case CUT_CONSUMERS_FROM_QUEUE -> {
          cuts.add(NetCut.cut(OwnUser.CONSUMERS, List.of(queues.clientPort(i))));
          hold(hold, plb, queues);
        }
        case DELAY_QUEUE -> {
          queues.relay(i).delay(Duration.ofMillis(100));
          try {
            hold(hold, plb, queues);
          } finally {
            queues.relay(i).delay(Duration.ZERO);
          }
        }
        case SLOW_QUEUE -> {
          cuts.add(NetCut.lossy(queues.uid(i), queues.port(i), 15));
          hold(hold, plb, queues);
        }
        case DROP_QUEUE_CONNECTIONS -> {
          for (int k = 0; k < 3; k++) {
            int port = queues.port(i);
            // Once its clients are back (after the first round, they reconnect), reset again.
            TestCluster.await(WAIT, queues.id(i) + "'s clients connected",
                () -> NetCut.connections(port) > 0);
            System.out.println("  reset " + NetCut.dropConnections(port) + " connections of "
                + queues.id(i));
          }
        }
        case KILL_PLB_NODE -> {
          plb.kill(i);
          plb.awaitLeader(WAIT);
          plb.startNode(i);
        }
        case PARTITION_PLB_MINORITY -> {
          int leader = plb.awaitLeader(WAIT);
          int follower = i == leader ? (i + 1) % plb.size() : i;
          victim = "n" + (follower + 1);
          cuts.addAll(plb.cutFromPeers(follower));
          hold(hold, plb, queues);
        }
        case ISOLATE_PLB_LEADER -> {
          int leader = plb.awaitLeader(WAIT);
          victim = "n" + (leader + 1);
          cuts.addAll(plb.cutFromPeers(leader));
          for (int q = 0; q < 3; q++) {
            cuts.add(NetCut.cut(queues.uid(q), List.of(plb.apiPort(leader))));
          }
          cuts.add(NetCut.cut(OwnUser.PRODUCERS, List.of(plb.apiPort(leader))));
          cuts.add(NetCut.cut(OwnUser.CONSUMERS, List.of(plb.apiPort(leader))));
          // Held until the others have a leader, and at least the drawn time.
          long until = System.nanoTime() + hold * 1_000_000_000L;
          TestCluster.await(WAIT, "a new PLB leader", () -> {
            int l = plb.leader();
            return l >= 0 && l != leader && System.nanoTime() > until;
          });
        }
        default -> throw new IllegalStateException(f.name());
      }
    } finally {
      for (NetCut c : cuts) {
        c.close();
      }
    }
    // One fault at a time: the next starts once this one's victim is back.
    if (f.ofQueueServer) {
      queues.awaitServing(i, WAIT);
    } else {
      for (int n = 0; n < plb.size(); n++) {
        plb.awaitCaughtUp(n, WAIT); // the next fault must not take a majority
      }
    }
    List<RangeEntry> touched = changes.untrack();
    return new Window(f, victim, from, System.currentTimeMillis(),
        f.ofQueueServer ? touched : List.of());
  }

  private static List<String> with(List<String> options, String more) {
    List<String> all = new ArrayList<>(options);
    all.add(more);
    return all;
  }

  /**
   * Keeps a fault in place for {@code seconds}: its length is what is drawn, not a wait for
   * something to happen. Fails at once if a process died meanwhile.
   */
  private static void hold(int seconds, PlbProcesses plb, QueueProcesses queues) {
    long until = System.nanoTime() + seconds * 1_000_000_000L;
    TestCluster.await(Duration.ofSeconds(seconds + 10), "the fault's " + seconds + " s", () -> {
      for (int q = 0; q < 3; q++) {
        assertTrue(queues.isAlive(q), queues.id(q) + " died; see " + queues.log(q));
      }
      for (int n = 0; n < plb.size(); n++) {
        assertTrue(plb.isAlive(n), "PLB node n" + (n + 1) + " died; see " + plb.log(n));
      }
      return System.nanoTime() > until;
    });
  }

  /** Cuts PLB node {@code n} from the other nodes' Raft ports and them from its, both ways. */
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

  /**
   * Publish waits (due to acknowledged, milliseconds) by when the publish was due: between
   * faults (which includes the tail of the fault before: a link healed after a long cut resumes
   * only at TCP's next retransmission); during a fault of a queue server (from injection until
   * the server serves again), for keys of a range it owned or received during the fault ("its
   * keys") and for the others; during a PLB node's fault.
   */
  static Map<String, long[]> waits(Path publishLog, List<Window> windows) throws Exception {
    long[] hashes = new long[KEYS];
    for (int k = 0; k < KEYS; k++) {
      hashes[k] = KeyHash.hash(("k" + k).getBytes(StandardCharsets.UTF_8));
    }
    Map<String, List<Long>> by = new LinkedHashMap<>();
    try (BufferedReader r = Files.newBufferedReader(publishLog)) {
      for (String line = r.readLine(); line != null; line = r.readLine()) {
        if (line.startsWith("#")) {
          continue;
        }
        String[] f = line.split(" ");
        long due = Long.parseLong(f[0]);
        int key = Integer.parseInt(f[1]);
        long micros = Long.parseLong(f[2]);
        String group = "between faults";
        for (Window w : windows) {
          if (due >= w.fromMillis() && due < w.toMillis()) {
            if (!w.fault().ofQueueServer) {
              group = w.fault() + "";
            } else {
              boolean faulted = w.owned().stream().anyMatch(e -> e.contains(hashes[key]));
              group = w.fault() + (faulted ? ", its keys" : ", other keys");
            }
            break;
          }
        }
        by.computeIfAbsent(group, g -> new ArrayList<>()).add(micros);
      }
    }
    Map<String, long[]> out = new LinkedHashMap<>();
    by.forEach((g, v) -> out.put(g, v.stream().mapToLong(Long::longValue).sorted().toArray()));
    return out;
  }

  private static String report(long seed, int seconds, double wall, Map<Fault, Integer> injected,
      List<Window> windows, Map<String, Long> changes, Map<String, Object> verdict,
      Map<String, long[]> waits) {
    StringBuilder b = new StringBuilder();
    b.append(String.format("%nnemesis report, seed %d, %d s of faults, %.0f s in all%n", seed,
        seconds, wall));
    b.append("faults injected: ").append(injected.values().stream().mapToInt(x -> x).sum())
        .append(' ').append(injected).append('\n');
    b.append("schedule (UTC, fault, victim, seconds until it served again):\n");
    for (Window w : windows) {
      b.append(String.format("  %s %-24s %-3s %5.1f%n",
          Instant.ofEpochMilli(w.fromMillis()).toString().substring(11, 21), w.fault(),
          w.victim(), (w.toMillis() - w.fromMillis()) / 1000.0));
    }
    b.append("map changes:\n");
    changes.forEach((k, v) -> b.append(String.format("  %-45s %d%n", k, v)));
    b.append("checker: ");
    for (String k : List.of("ok", "published", "acknowledged", "failed", "delivered", "lost",
        "duplicates", "unexplained_duplicates", "reordered_keys", "late", "phantom",
        "moves_started", "moves_refused", "splits", "merges", "reshapes_refused", "redirected",
        "overloaded", "resent", "publish_ms_p50", "publish_ms_p99", "publish_ms_max")) {
      Object v = verdict.get(k);
      b.append(k).append('=').append(v instanceof Double d && d == Math.rint(d)
          ? Long.toString(d.longValue()) : String.valueOf(v)).append(' ');
    }
    b.append("\n  examples: ").append(verdict.get("examples")).append('\n');
    b.append("publish waits (due to acknowledged, ms), by when due:\n");
    b.append(String.format("  %-45s %8s %8s %8s %8s %8s%n", "", "count", "p50", "p99",
        "p99.9", "max"));
    waits.forEach((g, v) -> b.append(String.format("  %-45s %8d %8.1f %8.1f %8.1f %8.1f%n", g,
        v.length, pct(v, 0.5), pct(v, 0.99), pct(v, 0.999),
        v.length == 0 ? 0 : v[v.length - 1] / 1000.0)));
    return b.toString();
  }

  private static void copyLogs(Path from, Path to) throws java.io.IOException {
    try (var files = Files.walk(from)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        String name = p.getFileName().toString();
        if (Files.isRegularFile(p) && (name.endsWith(".log") || name.equals("publishes.txt"))) {
          Path dest = to.resolve(from.relativize(p));
          Files.createDirectories(dest.getParent());
          Files.copy(p, dest, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
  }

  private static double pct(long[] sorted, double q) {
    return sorted.length == 0 ? 0
        : sorted[Math.min(sorted.length - 1, (int) (sorted.length * q))] / 1000.0;
  }
}
