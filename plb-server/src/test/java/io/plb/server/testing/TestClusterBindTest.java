package io.plb.server.testing;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Raft port that is taken when a node starts fails the start with an exception — Ratis would
 * otherwise end the whole test JVM — and the cluster is retried on new ports; a port taken on
 * every attempt (here: forced by a setting) fails the start after three attempts.
 */
class TestClusterBindTest {
  @TempDir Path tmp;

  @Test
  void aTakenRaftPortFailsTheStartInsteadOfEndingTheJvm() throws Exception {
    try (ServerSocket taken = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      String port = "127.0.0.1:" + taken.getLocalPort();
      Exception e = assertThrows(Exception.class,
          () -> TestCluster.start(tmp, 3, Map.of("peer.n2.raft", port)).close());
      assertTrue(String.valueOf(e.getMessage()).contains("Grpc server")
          || String.valueOf(e.getMessage()).contains("bind"), e.toString());
    }
    // The JVM is still here, and a cluster starts normally afterwards.
    try (TestCluster c = TestCluster.start(tmp.resolve("again"))) {
      c.awaitLeader(java.time.Duration.ofSeconds(20));
    }
  }
}
