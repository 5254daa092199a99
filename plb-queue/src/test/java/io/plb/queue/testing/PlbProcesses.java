package io.plb.queue.testing;

import io.plb.client.admin.PlbAdminClient;
import io.plb.proto.v1.NodeRole;
import io.plb.proto.v1.NodeStatus;
import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A PLB cluster whose nodes are separate JVM processes ({@code io.plb.server.PlbMain server}, as
 * {@code bin/plb server} runs it) on free loopback ports, with data and a log per node under one
 * folder. A node can be killed with SIGKILL ({@link #kill}) and started again on its data.
 * With {@code ownUsers}, node i runs under a user id of its own ({@link #uid}), so that
 * {@link NetCut} can cut its links beneath the process; that needs root.
 * Every process is killed on {@link #close}, and by a shutdown hook should the test JVM end first.
 *
 * <p>Not thread-safe: drive it from the test thread.
 */
public final class PlbProcesses implements AutoCloseable {
  private final Path root;
  private final boolean ownUsers;
  private final List<String> ids = new ArrayList<>();
  private final Map<String, String> settings = new LinkedHashMap<>();
  private final Process[] processes;
  /** Whether node i should be running: started and not killed since. */
  private final boolean[] running;
  private final Thread reaper;
  private final PlbAdminClient status;

  private PlbProcesses(Path root, int size, Map<String, String> extra, boolean ownUsers)
      throws IOException {
    this.root = root;
    this.ownUsers = ownUsers;
    this.processes = new Process[size];
    this.running = new boolean[size];
    settings.put("raft.electionTimeoutMin", "500ms");
    settings.put("raft.electionTimeoutMax", "1000ms");
    settings.put("watch.progressInterval", "1s");
    // These tests drive the map by hand.
    settings.put("balancer.enabled", "false");
    for (int i = 1; i <= size; i++) {
      String id = "n" + i;
      ids.add(id);
      settings.put("peer." + id + ".raft", "127.0.0.1:" + TestCluster.freePort());
      settings.put("peer." + id + ".api", "127.0.0.1:" + TestCluster.freePort());
    }
    settings.putAll(extra);
    this.status = PlbAdminClient.newBuilder().endpoints(endpoints())
        .deadline(Duration.ofSeconds(2)).build();
    this.reaper = new Thread(this::killAll, "plb-processes-reaper");
    Runtime.getRuntime().addShutdownHook(reaper);
  }

  /**
   * Starts {@code size} node processes under {@code root} and waits for a leader. A node that
   * exits while starting (a port picked free was taken meanwhile) makes it start the cluster
   * again on new ports, up to three times.
   */
  public static PlbProcesses start(Path root, int size, Map<String, String> extra)
      throws IOException {
    return start(root, size, extra, false);
  }

  /** As {@link #start(Path, int, Map)}, each node under a user id of its own with ownUsers. */
  public static PlbProcesses start(Path root, int size, Map<String, String> extra,
      boolean ownUsers) throws IOException {
    for (int attempt = 1; ; attempt++) {
      Path dir = root.resolve("attempt-" + attempt);
      PlbProcesses p = new PlbProcesses(dir, size, extra, ownUsers);
      try {
        for (int i = 0; i < size; i++) {
          p.startNode(i);
        }
        p.awaitLeader(Duration.ofSeconds(90));
        return p;
      } catch (IOException | RuntimeException | Error e) {
        p.close();
        if (attempt == 3 || !p.anyExited()) {
          throw e;
        }
        System.out.println("a PLB node exited while starting; starting again on new ports");
      }
    }
  }

  private boolean anyExited() {
    for (Process p : processes) {
      if (p != null && !p.isAlive() && p.exitValue() != 137) {
        return true;
      }
    }
    return false;
  }

  /** Starts node i's process on its data, with the test JVM's classpath. */
  public void startNode(int i) throws IOException {
    if (processes[i] != null && processes[i].isAlive()) {
      throw new IllegalStateException("node " + ids.get(i) + " is running");
    }
    String id = ids.get(i);
    Path data = root.resolve(id);
    Files.createDirectories(data);
    List<String> cmd = new ArrayList<>();
    if (ownUsers) {
      try {
        cmd.addAll(OwnUser.prepare(uid(i), data));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while preparing " + id, e);
      }
      cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
      cmd.add("-Djava.io.tmpdir=" + data); // RocksDB unpacks its library there
    } else {
      cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }
    cmd.addAll(List.of(
        // Small and quick to start: three of these share two cores with the test.
        "-Xmx256m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        "-Dorg.slf4j.simpleLogger.log.org.apache.ratis=warn",
        "-cp", System.getProperty("surefire.test.class.path",
            System.getProperty("java.class.path")),
        "io.plb.server.PlbMain", "server",
        "--node.id=" + id, "--node.dataDir=" + data));
    for (Map.Entry<String, String> e : settings.entrySet()) {
      cmd.add("--" + e.getKey() + "=" + e.getValue());
    }
    processes[i] = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log(i).toFile())).start();
    running[i] = true;
  }

  /** Kills node i's process with SIGKILL (no shutdown hook runs) and waits for it to end. */
  public void kill(int i) throws InterruptedException {
    Process p = processes[i];
    running[i] = false;
    if (p != null) {
      p.destroyForcibly();
      p.waitFor();
    }
  }

  /** The user id node i runs under (with {@code ownUsers}). */
  public int uid(int i) {
    return OwnUser.PLB_NODES + i;
  }

  /** Node i's API port (clients, queue servers). */
  public int apiPort(int i) {
    return port(settings.get("peer." + ids.get(i) + ".api"));
  }

  /** Node i's Raft port (the other nodes). */
  public int raftPort(int i) {
    return port(settings.get("peer." + ids.get(i) + ".raft"));
  }

  /**
   * Cuts node n from the other nodes, both ways, beneath the processes (nodes under their own
   * users; needs {@link NetCut#available()}): it keeps its clients. Heal by closing the cuts.
   */
  public List<NetCut> cutFromPeers(int n) throws IOException, InterruptedException {
    List<NetCut> cuts = new ArrayList<>();
    List<Integer> others = new ArrayList<>();
    for (int o = 0; o < size(); o++) {
      if (o != n) {
        others.add(raftPort(o));
        cuts.add(NetCut.cut(uid(o), List.of(raftPort(n))));
      }
    }
    cuts.add(NetCut.cut(uid(n), others));
    return cuts;
  }

  private static int port(String address) {
    return Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
  }

  public long pid(int i) {
    return processes[i].pid();
  }

  public boolean isAlive(int i) {
    return processes[i] != null && processes[i].isAlive();
  }

  public Path log(int i) {
    return root.resolve(ids.get(i) + ".log");
  }

  public int size() {
    return processes.length;
  }

  /** API endpoints of all nodes, running or not. */
  public List<String> endpoints() {
    List<String> out = new ArrayList<>();
    for (String id : ids) {
      out.add(settings.get("peer." + id + ".api"));
    }
    return out;
  }

  /** The index of the node that says it leads, or -1. */
  public int leader() {
    for (int i = 0; i < processes.length; i++) {
      if (!isAlive(i)) {
        continue;
      }
      try {
        NodeStatus s = status.nodeStatus(endpoints().get(i));
        if (s.getRole() == NodeRole.LEADER) {
          return i;
        }
      } catch (RuntimeException e) {
        // starting, or just killed
      }
    }
    return -1;
  }

  /** Waits for a running node that leads; returns its index. Asks the nodes every 200 ms. */
  public int awaitLeader(Duration timeout) {
    int[] found = {-1};
    long[] lastAsked = {System.nanoTime() - 1_000_000_000L};
    TestCluster.await(timeout, "a PLB leader among the processes", () -> {
      for (int i = 0; i < processes.length; i++) {
        if (running[i] && !processes[i].isAlive()) {
          throw new AssertionError("node " + ids.get(i) + " exited with "
              + processes[i].exitValue() + "; see " + log(i));
        }
      }
      if (System.nanoTime() - lastAsked[0] < 200_000_000L) {
        return false; // nodes starting on a busy machine need the CPU more than the question
      }
      lastAsked[0] = System.nanoTime();
      found[0] = leader();
      return found[0] >= 0;
    });
    return found[0];
  }

  /**
   * Waits until node i answers as a member with a leader and has applied at least the map
   * version the leader had when the wait began: back in the group, not just started.
   */
  public void awaitCaughtUp(int i, Duration timeout) {
    long[] target = {-1};
    TestCluster.await(timeout, "node " + ids.get(i) + " caught up", () -> {
      if (running[i] && !processes[i].isAlive()) {
        throw new AssertionError("node " + ids.get(i) + " exited with "
            + processes[i].exitValue() + "; see " + log(i));
      }
      try {
        if (target[0] < 0) {
          int l = leader();
          if (l < 0) {
            return false;
          }
          target[0] = status.nodeStatus(endpoints().get(l)).getMapVersion();
        }
        NodeStatus s = status.nodeStatus(endpoints().get(i));
        return (s.getRole() == NodeRole.FOLLOWER || s.getRole() == NodeRole.LEADER)
            && s.getMapVersion() >= target[0];
      } catch (RuntimeException e) {
        return false; // starting
      }
    });
  }

  private void killAll() {
    for (Process p : processes) {
      if (p != null) {
        p.destroyForcibly();
      }
    }
    for (Process p : processes) {
      if (p != null) {
        try {
          p.waitFor();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  @Override
  public void close() {
    killAll();
    status.close();
    try {
      Runtime.getRuntime().removeShutdownHook(reaper);
    } catch (IllegalStateException e) {
      // the JVM is shutting down: the hook is running
    }
  }
}
