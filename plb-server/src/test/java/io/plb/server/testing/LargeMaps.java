package io.plb.server.testing;

import io.plb.client.admin.PlbAdminClient;
import io.plb.core.map.ClusterImage;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Builds a large map through the state machine, for tests of maps of a million ranges: the ring
 * split into {@code top} equal ranges, owned in turn by {@code owners}, each split again into
 * {@code pieces} (at most the cluster's {@code map.maxSplitPieces}); {@code 2 * top + 1} entries.
 */
public final class LargeMaps {
  private LargeMaps() {}

  /** Builds the map on a new cluster's single whole-ring range; returns the last version. */
  public static long build(PlbAdminClient admin, List<String> owners, int top, int pieces)
      throws InterruptedException, ExecutionException {
    admin.splitEvenly(0L, top);
    ClusterImage first = admin.getMap(0);
    long version = 0;
    // Writes of different ranges are independent: several in flight fill each Raft round.
    ExecutorService writers = Executors.newFixedThreadPool(8);
    try {
      List<Future<Long>> writes = new ArrayList<>();
      for (int i = 0; i < top; i++) {
        long start = first.range(i).start();
        String owner = owners.get(i % owners.size());
        writes.add(writers.submit(() -> admin.assign(start, owner, false)));
      }
      for (Future<Long> w : writes) {
        w.get();
      }
      writes.clear();
      for (int i = 0; i < top; i++) {
        long start = first.range(i).start();
        writes.add(writers.submit(() -> admin.splitEvenly(start, pieces)));
      }
      for (Future<Long> w : writes) {
        version = Math.max(version, w.get());
      }
    } finally {
      writers.shutdownNow();
    }
    return version;
  }
}
