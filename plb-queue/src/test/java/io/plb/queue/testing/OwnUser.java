package io.plb.queue.testing;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a test's process under a user id of its own, so that {@link NetCut} can match its packets
 * ({@code meta skuid}) and cut or slow its links beneath the process. The process keeps the right
 * to read any file (the build's classpath may be in root's home); its data folder is handed to
 * it, and the folders above made passable. Needs root. Stateless.
 */
public final class OwnUser {
  /** Queue server i runs as {@code QUEUES + i}. */
  public static final int QUEUES = 61_000;
  /** PLB node i runs as {@code PLB_NODES + i}. */
  public static final int PLB_NODES = 62_000;
  /** The workload's producers (and its range changes) run as this. */
  public static final int PRODUCERS = 63_000;
  /** The workload's consumers run as this. */
  public static final int CONSUMERS = 63_001;

  private OwnUser() {}

  /**
   * Gives {@code dir} (created already) to {@code uid} and lets it pass through the folders
   * above; returns the command prefix that runs what follows as {@code uid}.
   */
  public static List<String> prepare(int uid, Path dir) throws IOException, InterruptedException {
    run("chown", "-R", uid + ":" + uid, dir.toString());
    for (Path p = dir.getParent(); p != null && p.getParent() != null; p = p.getParent()) {
      run("chmod", "o+x", p.toString()); // a test's temporary folder is its owner's alone
    }
    return List.of("setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--");
  }

  static void run(String... cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed: " + out);
    }
  }
}
