package io.plb.server.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code plb server} refuses invalid balancer settings at start, before it opens anything: exit
 * status 2 and one line naming the key. A real process, as an operator starts it.
 */
class BadBalancerConfigProcessTest {
  @TempDir Path dir;

  static String[] run(Path dir, String... extra) throws Exception {
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
        "-cp", System.getProperty("surefire.test.class.path",
            System.getProperty("java.class.path")),
        "io.plb.server.PlbMain", "server", "--node.id=n1",
        "--node.dataDir=" + dir.resolve("n1"), "--peer.n1.raft=127.0.0.1:1",
        "--peer.n1.api=127.0.0.1:2"));
    cmd.addAll(List.of(extra));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS), "plb server exits: " + out);
    return new String[] {Integer.toString(p.exitValue()), out};
  }

  @Test
  void invalidBalancerSettingsAreRefusedAtStartNamingTheKey() throws Exception {
    String[] r = run(dir, "--balancer.quantile=1.5");
    assertEquals("2", r[0], r[1]);
    assertTrue(r[1].contains("plb server: bad configuration: balancer.quantile"), r[1]);
    r = run(dir, "--history.coarseBucket=5m", "--balancer.season=7m");
    assertEquals("2", r[0], r[1]);
    assertTrue(r[1].contains("balancer.season"), r[1]);
    assertTrue(!dir.resolve("n1").toFile().exists(), "nothing was created");
  }
}
