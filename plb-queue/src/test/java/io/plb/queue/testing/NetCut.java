package io.plb.queue.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Cuts TCP links on loopback beneath the processes, with nftables: every packet that a process of
 * user {@code uid} sends to one of the given ports is dropped, and so is every packet that comes
 * back on a connection that was open when the cut was made (matched by its ports, found with
 * {@code ss}), so such a connection goes silent both ways, as behind a failed switch, and a new
 * one cannot be made. Other links of the same process are untouched — a queue server can be cut from
 * the PLB nodes while its producers and consumers still reach it.
 *
 * <p>{@link #lossy} slows links instead: it drops a share of a process's packets at random, and
 * TCP's retransmissions turn that into delay (this kernel has no {@code netem} queueing
 * discipline to add latency directly). {@link #dropConnections} breaks established connections
 * ({@code ss -K}), which their ends see as reset.
 *
 * <p>Each cut is a table of its own, removed by {@link #heal} or {@link #close} (and by a shutdown
 * hook should the test JVM end first). Needs root and the {@code nft} command.
 */
public final class NetCut implements AutoCloseable {
  private static final java.util.concurrent.atomic.AtomicInteger TABLES =
      new java.util.concurrent.atomic.AtomicInteger();
  private final String table;
  private final Thread reaper;
  private boolean active;

  private NetCut(String table) {
    this.table = table;
    this.reaper = new Thread(this::removeQuietly, "plb-netcut-reaper");
    Runtime.getRuntime().addShutdownHook(reaper);
  }

  /** Whether this machine can cut links: nft is installed and this user may use it. */
  public static boolean available() {
    try {
      return run("nft", "list", "tables") != null;
    } catch (IOException | InterruptedException e) {
      return false;
    }
  }

  /** Cuts every link from processes of {@code uid} to {@code ports} (both ways), now. */
  public static NetCut cut(int uid, List<Integer> ports) throws IOException, InterruptedException {
    NetCut c = newTable(uid);
    String set = ports.stream().map(String::valueOf).collect(Collectors.joining(", "));
    String script = "table inet " + c.table + " {\n"
        + "  chain out {\n"
        + "    type filter hook output priority 0; policy accept;\n"
        + "    meta skuid " + uid + " tcp dport { " + set + " } drop\n"
        + "  }\n"
        + "  chain in {\n"
        + "    type filter hook input priority 0; policy accept;\n"
        + "  }\n"
        + "}\n";
    runWithInput(script, "nft", "-f", "-");
    c.active = true;
    // New connections are refused from here on; silence the ones already open, inbound too.
    List<String> local = new ArrayList<>();
    for (String line : run("ss", "-Htne", "state", "established").split("\n")) {
      String[] f = line.trim().split("\\s+");
      if (f.length < 5 || !line.contains(" uid:" + uid + " ")) {
        continue;
      }
      String peer = f[3];
      int peerPort = Integer.parseInt(peer.substring(peer.lastIndexOf(':') + 1));
      if (ports.contains(peerPort)) {
        local.add(f[2].substring(f[2].lastIndexOf(':') + 1));
      }
    }
    if (!local.isEmpty()) {
      run("nft", "add", "rule", "inet", c.table, "in", "tcp", "sport", "{ " + set + " }",
          "tcp", "dport", "{ " + String.join(", ", local) + " }", "drop");
    }
    return c;
  }

  private static NetCut newTable(int uid) {
    return new NetCut("plb_cut_" + ProcessHandle.current().pid() + "_" + uid + "_"
        + TABLES.incrementAndGet());
  }

  /**
   * Drops {@code percent} % of the packets, chosen at random, that processes of {@code uid} send
   * and that anyone sends to {@code port} (the process's listening port): every link of that
   * process becomes slow and lossy, none is cut.
   */
  public static NetCut lossy(int uid, int port, int percent)
      throws IOException, InterruptedException {
    if (percent < 1 || percent > 99) {
      throw new IllegalArgumentException("percent must be 1..99");
    }
    NetCut c = newTable(uid);
    String script = "table inet " + c.table + " {\n"
        + "  chain out {\n"
        + "    type filter hook output priority 0; policy accept;\n"
        + "    meta skuid " + uid + " numgen random mod 100 < " + percent + " drop\n"
        + "    tcp dport " + port + " numgen random mod 100 < " + percent + " drop\n"
        + "  }\n"
        + "}\n";
    runWithInput(script, "nft", "-f", "-");
    c.active = true;
    return c;
  }

  /**
   * Breaks every established TCP connection on loopback with {@code port} at either end (the
   * kernel resets them, {@code ss -K}); returns how many there were. New connections are not
   * hindered.
   */
  public static int dropConnections(int port) throws IOException, InterruptedException {
    String out = run("ss", "-K", "-Htn", "state", "established",
        "( sport = :" + port + " or dport = :" + port + " )");
    return (int) out.lines().filter(l -> !l.isBlank()).count();
  }

  /** How many established TCP connections on loopback have {@code port} at either end. */
  public static int connections(int port) {
    try {
      String out = run("ss", "-Htn", "state", "established",
          "( sport = :" + port + " or dport = :" + port + " )");
      return (int) out.lines().filter(l -> !l.isBlank()).count();
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Restores the links. */
  public void heal() throws IOException, InterruptedException {
    if (active) {
      run("nft", "delete", "table", "inet", table);
      active = false;
    }
  }

  private void removeQuietly() {
    try {
      heal();
    } catch (IOException | InterruptedException e) {
      // nothing more to do
    }
  }

  @Override
  public void close() {
    removeQuietly();
    try {
      Runtime.getRuntime().removeShutdownHook(reaper);
    } catch (IllegalStateException e) {
      // shutting down: the hook runs anyway
    }
  }

  private static String run(String... cmd) throws IOException, InterruptedException {
    return runWithInput(null, cmd);
  }

  private static String runWithInput(String input, String... cmd)
      throws IOException, InterruptedException {
    Process p = new ProcessBuilder(new ArrayList<>(List.of(cmd))).redirectErrorStream(true)
        .start();
    if (input != null) {
      p.getOutputStream().write(input.getBytes(StandardCharsets.UTF_8));
    }
    p.getOutputStream().close();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed: " + out);
    }
    return out;
  }
}
