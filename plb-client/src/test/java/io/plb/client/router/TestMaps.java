package io.plb.client.router;

import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BooleanSupplier;

/** Map builders, keys with known positions, and condition waits for the client tests. */
public final class TestMaps {
  /** The middle of the ring: 2^63. */
  public static final long MID = Long.MIN_VALUE;

  private TestMaps() {}

  public static QueueServerInfo info(FakeQueueServer s) {
    return new QueueServerInfo(s.id(), s.address(), 1.0, ServerState.ACTIVE);
  }

  public static RangeEntry owned(long start, long end, String owner, long epoch) {
    return new RangeEntry(start, end, owner, epoch, null, false);
  }

  public static RangeEntry moving(long start, long end, String owner, long epoch, String target,
      HandoverPhase phase) {
    return new RangeEntry(start, end, owner, epoch, new Handover(target, phase), false);
  }

  public static ClusterImage map(long version, List<FakeQueueServer> servers,
      RangeEntry... ranges) {
    List<QueueServerInfo> infos = new ArrayList<>();
    for (FakeQueueServer s : servers) {
      infos.add(info(s));
    }
    return ClusterImage.of(version, Arrays.asList(ranges), infos);
  }

  /** {@code n} distinct keys, named {@code prefix-i}, whose hashes lie in {@code [start, end)}. */
  public static List<String> keysIn(String prefix, long start, long end, int n) {
    List<String> out = new ArrayList<>();
    for (int i = 0; out.size() < n; i++) {
      String k = prefix + "-" + i;
      if (Ring.contains(start, end, KeyHash.hash(k))) {
        out.add(k);
      }
    }
    return out;
  }

  /**
   * Waits until {@code condition} holds, checking it every few milliseconds, or fails after
   * {@code timeout}. For state that has no signal to wait on (a producer's counters).
   */
  public static void until(BooleanSupplier condition, Duration timeout, String what)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    Object monitor = new Object();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() - deadline > 0) {
        throw new AssertionError("timed out waiting for " + what);
      }
      synchronized (monitor) {
        monitor.wait(2);
      }
    }
  }
}
