package io.plb.queue.testing;

import io.plb.server.testing.TestCluster;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checked workload ({@code io.plb.client.workload.Workload}, as {@code bin/plb workload}
 * runs it) as a JVM of its own — all of it, or only its producers or only its consumers
 * ({@code --role}, {@code --history}: the consumers' process checks the producers' half with
 * its own deliveries) — optionally under a user id of its own ({@link OwnUser#PRODUCERS},
 * {@link OwnUser#CONSUMERS}) so that its links to one queue server can be cut beneath it. The
 * harness reads the summary from the {@code --json} line the process prints when it ends, and
 * its progress from the lines it prints every second. Killed on {@link #close} (and by a
 * shutdown hook should the test JVM end first).
 *
 * <p>Not thread-safe: drive it from the test thread.
 */
public final class WorkloadProcess implements AutoCloseable {
  private static final Pattern DELIVERED = Pattern.compile("\\bdelivered (\\d+)");
  private static final Pattern FIELD = Pattern.compile("\"([a-z_0-9]+)\":(-?[0-9.eE+-]+|true|false)");

  private final Path dir;
  private final Process process;
  private final Thread reaper;

  private WorkloadProcess(Path dir, Process process) {
    this.dir = dir;
    this.process = process;
    this.reaper = new Thread(process::destroyForcibly, "plb-workload-reaper");
    Runtime.getRuntime().addShutdownHook(reaper);
  }

  /**
   * Starts the workload with these {@code --key=value} options (and {@code --json}), as user
   * {@code uid} (0: this process's user); its output goes under {@code dir}, where its publish
   * log ({@link #publishLog}) is written too.
   */
  public static WorkloadProcess start(Path dir, int uid, List<String> options)
      throws IOException, InterruptedException {
    Files.createDirectories(dir);
    List<String> cmd = new ArrayList<>();
    if (uid != 0) {
      cmd.addAll(OwnUser.prepare(uid, dir));
    }
    cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx768m", "-XX:+UseSerialGC", "-XX:-UsePerfData",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        "-cp", System.getProperty("surefire.test.class.path",
            System.getProperty("java.class.path")),
        "io.plb.client.workload.Workload"));
    cmd.addAll(options);
    cmd.add("--publish-log=" + dir.resolve("publishes.txt"));
    cmd.add("--json");
    Process p = new ProcessBuilder(cmd)
        .redirectOutput(dir.resolve("verdict.json").toFile())
        .redirectError(dir.resolve("workload.log").toFile()).start();
    return new WorkloadProcess(dir, p);
  }

  public Path log() {
    return dir.resolve("workload.log");
  }

  /** Every acknowledged publish, written when the workload ends: due millis, key, wait micros. */
  public Path publishLog() {
    return dir.resolve("publishes.txt");
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  /** Deliveries so far, from the workload's latest progress line (0 before the first). */
  public long delivered() throws IOException {
    try (RandomAccessFile f = new RandomAccessFile(log().toFile(), "r")) {
      long from = Math.max(0, f.length() - 8192);
      byte[] tail = new byte[(int) (f.length() - from)];
      f.seek(from);
      f.readFully(tail);
      Matcher m = DELIVERED.matcher(new String(tail, StandardCharsets.UTF_8));
      long last = 0;
      while (m.find()) {
        last = Long.parseLong(m.group(1));
      }
      return last;
    }
  }

  /**
   * Waits until {@code more} deliveries beyond those seen now; false, at once, if the workload
   * ends first (its traffic ran out: the verdict tells the rest).
   */
  public boolean awaitMoreDeliveriesUnlessEnded(long more, Duration timeout, String what)
      throws IOException {
    long seen = delivered();
    boolean[] ended = {false};
    TestCluster.await(timeout, what + " (" + more + " more deliveries)", () -> {
      if (!process.isAlive()) {
        ended[0] = true;
        return true;
      }
      try {
        return delivered() >= seen + more;
      } catch (IOException e) {
        return false;
      }
    });
    return !ended[0];
  }

  /** Waits until {@code more} deliveries beyond those seen now; fails if the workload ended. */
  public void awaitMoreDeliveries(long more, Duration timeout, String what) throws IOException {
    long seen = delivered();
    TestCluster.await(timeout, what + " (" + more + " more deliveries)", () -> {
      if (!process.isAlive()) {
        throw new AssertionError("the workload ended while waiting for " + what + "; see "
            + log());
      }
      try {
        return delivered() >= seen + more;
      } catch (IOException e) {
        return false;
      }
    });
  }

  /**
   * Waits for the workload to end (its duration, then its settle) and returns its summary's
   * fields: numbers as {@code Double}, flags as {@code Boolean}.
   */
  public Map<String, Object> awaitVerdict(Duration timeout) throws Exception {
    if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      throw new AssertionError("the workload did not end within " + timeout + "; see " + log());
    }
    List<String> lines = Files.readAllLines(dir.resolve("verdict.json"));
    String json = lines.isEmpty() ? "" : lines.get(lines.size() - 1);
    if (!json.startsWith("{")) {
      throw new AssertionError("the workload exited with " + process.exitValue()
          + " and no verdict; see " + log());
    }
    Map<String, Object> fields = new LinkedHashMap<>();
    Matcher m = FIELD.matcher(json);
    while (m.find()) {
      String v = m.group(2);
      fields.put(m.group(1), v.equals("true") || v.equals("false") ? Boolean.valueOf(v)
          : Double.valueOf(v));
    }
    int examples = json.indexOf("\"examples\":");
    if (examples >= 0) {
      fields.put("examples", json.substring(examples + 11, json.indexOf(']', examples) + 1));
    }
    return fields;
  }

  @Override
  public void close() {
    process.destroyForcibly();
    try {
      process.waitFor(30, TimeUnit.SECONDS);
      Runtime.getRuntime().removeShutdownHook(reaper);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IllegalStateException e) {
      // the JVM is shutting down: the hook runs anyway
    }
  }
}
