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
 * <p>Each cut is a table of its own, removed by {@link #heal} or {@link #close} (and by a shutdown
 * hook should the test JVM end first). Needs root and the {@code nft} command.
 */
public final class NetCut implements AutoCloseable {
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
    NetCut c = new NetCut("plb_cut_" + ProcessHandle.current().pid() + "_" + uid);
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
