package io.plb.queue.testing;

import io.plb.server.testing.CuttableProxy;
import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Reference queue servers q1..qN as separate JVM processes ({@code io.plb.queue.QueueMain}, as
 * {@code bin/plb queue} runs it), each on a fixed free loopback port with its data and log under
 * one folder, so a test can do to them what production does: {@link #kill} (SIGKILL, no
 * shutdown hook), {@link #pause} and {@link #resume} (SIGSTOP / SIGCONT), and restart on the
 * same data and port. With {@code ownUsers}, server i runs under a user id of its own
 * ({@link #uid}), so that {@link NetCut} can cut its links beneath the process; that needs root.
 * Every process is killed on {@link #close}, and by a shutdown hook should the test
 * JVM end first.
 *
 * <p>Not thread-safe: drive it from the test thread.
 */
public final class QueueProcesses implements AutoCloseable {
  private final Path root;
  private final List<String> plb;
  private final Map<String, String> settings;
  private final boolean ownUsers;
  private final List<String> jvmArgs;
  private final int[] ports;
  private final Process[] processes;
  /** With {@link #relayed}: a relay in front of each server, advertised as its address. */
  private CuttableProxy[] relays;
  private final Thread reaper;

  private QueueProcesses(Path root, List<String> plb, int count, Map<String, String> settings,
      boolean ownUsers, List<String> jvmArgs) throws IOException {
    this.root = root;
    this.jvmArgs = List.copyOf(jvmArgs);
    this.plb = List.copyOf(plb);
    this.settings = new LinkedHashMap<>(settings);
    this.ownUsers = ownUsers;
    this.ports = new int[count];
    this.processes = new Process[count];
    for (int i = 0; i < count; i++) {
      ports[i] = TestCluster.freePort();
    }
    this.reaper = new Thread(this::killAll, "plb-queue-processes-reaper");
    Runtime.getRuntime().addShutdownHook(reaper);
  }

  /**
   * Starts {@code count} queue server processes registering with the PLB cluster at {@code plb}.
   * Does not wait for them: see {@link #awaitServing}.
   */
  public static QueueProcesses start(Path root, List<String> plb, int count,
      Map<String, String> settings, boolean ownUsers) throws IOException, InterruptedException {
    return start(root, plb, count, settings, ownUsers, List.of());
  }

  /**
   * {@link #start(Path, List, int, Map, boolean)} with more JVM options for every server, after
   * the defaults (so {@code -Xmx512m} replaces the default heap of 256 MiB).
   */
  public static QueueProcesses start(Path root, List<String> plb, int count,
      Map<String, String> settings, boolean ownUsers, List<String> jvmArgs)
      throws IOException, InterruptedException {
    return new QueueProcesses(root, plb, count, settings, ownUsers, jvmArgs).startAll(false);
  }

  /** Starts every server (behind a relay each if {@code relayed}); closes all on a failure. */
  private QueueProcesses startAll(boolean relayed) throws IOException, InterruptedException {
    try {
      if (relayed) {
        relays = new CuttableProxy[ports.length];
        for (int i = 0; i < ports.length; i++) {
          relays[i] = new CuttableProxy("127.0.0.1:" + ports[i]);
        }
      }
      for (int i = 0; i < ports.length; i++) {
        start(i);
      }
      return this;
    } catch (IOException | InterruptedException | RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * {@link #start(Path, List, int, Map, boolean)}, each server behind a relay in this JVM that it
   * advertises as its address ({@link CuttableProxy}), so every client and peer reaches it
   * through the relay and a test can add latency to all its links ({@link #relay}).
   */
  public static QueueProcesses relayed(Path root, List<String> plb, int count,
      Map<String, String> settings, boolean ownUsers) throws IOException, InterruptedException {
    return new QueueProcesses(root, plb, count, settings, ownUsers, List.of()).startAll(true);
  }

  /** Server i's relay ({@link #relayed} only). */
  public CuttableProxy relay(int i) {
    return relays[i];
  }

  /**
   * The port clients and peers reach server i at: its relay's, or its own. Cut this one to cut
   * them off from it.
   */
  public int clientPort(int i) {
    return relays == null ? ports[i] : Integer.parseInt(
        relays[i].address().substring(relays[i].address().lastIndexOf(':') + 1));
  }

  /** Starts server i's process on its data and port (after a kill, or the first time). */
  public void start(int i) throws IOException, InterruptedException {
    if (processes[i] != null && processes[i].isAlive()) {
      throw new IllegalStateException(id(i) + " is running");
    }
    Path data = root.resolve(id(i));
    Files.createDirectories(data);
    List<String> cmd = new ArrayList<>();
    if (ownUsers) {
      cmd.addAll(OwnUser.prepare(uid(i), data));
    }
    cmd.addAll(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx256m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData", "-Djava.io.tmpdir=" + data,
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"));
    cmd.addAll(jvmArgs);
    cmd.addAll(List.of(
        "-cp", System.getProperty("surefire.test.class.path",
            System.getProperty("java.class.path")),
        "io.plb.queue.QueueMain", "queue",
        "--id=" + id(i), "--data=" + data.resolve("store"), "--plb=" + String.join(",", plb),
        "--listen=" + address(i)));
    for (Map.Entry<String, String> e : settings.entrySet()) {
      cmd.add("--" + e.getKey() + "=" + e.getValue());
    }
    if (relays != null) {
      cmd.add("--advertise=" + relays[i].address());
    }
    processes[i] = new ProcessBuilder(cmd).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log(i).toFile())).start();
  }

  /** SIGKILL: the process ends at once, no shutdown hook, nothing flushed that was not synced. */
  public void kill(int i) throws InterruptedException {
    Process p = processes[i];
    if (p != null) {
      p.destroyForcibly();
      p.waitFor();
    }
  }

  /** SIGSTOP: every thread of the process stops where it is; its sockets stay open. */
  public void pause(int i) throws IOException, InterruptedException {
    signal(i, "STOP");
  }

  /** SIGCONT after {@link #pause}. */
  public void resume(int i) throws IOException, InterruptedException {
    signal(i, "CONT");
  }

  private void signal(int i, String signal) throws IOException, InterruptedException {
    OwnUser.run("kill", "-" + signal, Long.toString(processes[i].pid()));
  }

  public String id(int i) {
    return "q" + (i + 1);
  }

  public String address(int i) {
    return "127.0.0.1:" + ports[i];
  }

  public int port(int i) {
    return ports[i];
  }

  /** The user id server i runs under (with {@code ownUsers}). */
  public int uid(int i) {
    return OwnUser.QUEUES + i;
  }

  public Path log(int i) {
    return root.resolve(id(i) + ".log");
  }

  public boolean isAlive(int i) {
    return processes[i] != null && processes[i].isAlive();
  }

  /**
   * Waits until server i answers and holds its ownership lease (it is registered, ACTIVE and
   * heard by the leader). Fails at once if the process died.
   */
  public void awaitServing(int i, java.time.Duration timeout) {
    try (RawQueueClient q = new RawQueueClient(address(i))) {
      TestCluster.await(timeout, id(i) + " serving", () -> {
        if (!isAlive(i)) {
          throw new AssertionError(id(i) + " exited with " + processes[i].exitValue()
              + "; see " + log(i));
        }
        try {
          return q.status().getLeaseHeld();
        } catch (RuntimeException e) {
          return false; // starting
        }
      });
    }
  }

  private void killAll() {
    for (Process p : processes) {
      if (p != null && p.isAlive()) {
        p.destroyForcibly(); // SIGKILL ends a stopped process too
      }
    }
    for (Process p : processes) {
      if (p != null) {
        try {
          p.waitFor(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  @Override
  public void close() {
    killAll();
    if (relays != null) {
      for (CuttableProxy r : relays) {
        if (r != null) {
          r.close();
        }
      }
    }
    try {
      Runtime.getRuntime().removeShutdownHook(reaper);
    } catch (IllegalStateException e) {
      // the JVM is shutting down: the hook runs anyway
    }
  }
}
