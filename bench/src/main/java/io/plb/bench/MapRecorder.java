package io.plb.bench;

import io.plb.client.Endpoints;
import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RangeEntry;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * Every map version one watcher sees, with the {@code System.nanoTime()} at which its listener was
 * called. Pointed at the leader, it sees a commit within a few milliseconds (RESULTS.md §2), so
 * its times stand for commit times.
 *
 * <p>Thread model: the watcher's thread appends; any thread may wait for and read entries. One
 * monitor guards the list.
 */
final class MapRecorder implements AutoCloseable {
  /** One version and when it was seen. */
  record Seen(long nanos, ClusterImage image) {}

  private final Endpoints endpoints;
  private final MapWatcher watcher;
  private final List<Seen> seen = new ArrayList<>();

  MapRecorder(List<String> endpointsLeaderFirst) {
    this.endpoints = new Endpoints(endpointsLeaderFirst);
    this.watcher = new MapWatcher(endpoints, this::onMap);
  }

  MapRecorder start(long timeoutSeconds) throws InterruptedException {
    watcher.start();
    if (!watcher.awaitFirstMap(timeoutSeconds, TimeUnit.SECONDS)) {
      throw new IllegalStateException("no map within " + timeoutSeconds + " s");
    }
    return this;
  }

  private void onMap(ClusterImage image, MapDelta delta) {
    long now = System.nanoTime();
    synchronized (seen) {
      seen.add(new Seen(now, image));
      seen.notifyAll();
    }
  }

  ClusterImage image() {
    synchronized (seen) {
      return seen.get(seen.size() - 1).image();
    }
  }

  String connectedTo() {
    return watcher.connectedTo();
  }

  /**
   * The first version at or above {@code minVersion} whose range starting at {@code start}
   * satisfies {@code test}; waits for it up to {@code timeoutNanos}. Null on timeout.
   */
  Seen await(long minVersion, long start, Predicate<RangeEntry> test, long timeoutNanos)
      throws InterruptedException {
    long deadline = System.nanoTime() + timeoutNanos;
    int from = 0;
    synchronized (seen) {
      while (true) {
        for (int i = from; i < seen.size(); i++) {
          Seen s = seen.get(i);
          if (s.image().version() < minVersion) {
            continue;
          }
          int at = s.image().indexOfStart(start);
          if (at >= 0 && test.test(s.image().range(at))) {
            return s;
          }
        }
        from = seen.size();
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          return null;
        }
        TimeUnit.NANOSECONDS.timedWait(seen, left);
      }
    }
  }

  long contractViolations() {
    return watcher.contractViolations();
  }

  @Override
  public void close() {
    watcher.close();
    endpoints.close();
  }
}
