package io.plb.queue.testing;

import io.plb.client.Endpoints;
import io.plb.client.watch.MapWatcher;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Counts the committed map changes of a run by what they did, from a watch of the map: handovers
 * started (by an operator or the balancer) and how they ended — completed, aborted (and aborts
 * from SWITCH reversed), forced off a DOWN owner (and of those, forced in the middle of a
 * handover) — splits and merges by who made them, and servers committed DOWN. Each change is
 * read from the delta's cause, the text of the command that produced it; a change the state
 * machine ignored says so and is not counted. A full map in place of deltas (the watcher fell
 * behind the node's history) is counted as a gap: changes in it are missed.
 *
 * <p>It also {@link #track tracks} one server at a time: every range it owned, or was the target
 * of a handover of, in any map seen while tracked — the keys a fault of that server can touch.
 *
 * <p>Thread model: the watcher's thread updates the counts under this object's monitor;
 * {@link #counts} may be read from any thread.
 */
public final class MapChanges implements MapWatcher.Listener, AutoCloseable {
  private final Endpoints endpoints;
  private final MapWatcher watcher;
  private final Map<String, Long> counts = new TreeMap<>();
  private ClusterImage previous;
  private String tracked;
  private final List<RangeEntry> touched = new ArrayList<>();

  private MapChanges(List<String> plb) {
    this.endpoints = new Endpoints(plb);
    this.watcher = new MapWatcher(endpoints, this);
  }

  /** Starts watching; counts every change from the map it gets first on. */
  public static MapChanges watch(List<String> plb) {
    MapChanges c = new MapChanges(plb);
    c.watcher.start();
    return c;
  }

  /**
   * Starts tracking {@code server} from the current map on (and stops tracking any other).
   */
  public synchronized void track(String server) {
    tracked = server;
    touched.clear();
    if (previous != null) {
      touch(previous);
    }
  }

  /** Stops tracking; returns the ranges the tracked server owned or received meanwhile. */
  public synchronized List<RangeEntry> untrack() {
    tracked = null;
    List<RangeEntry> out = List.copyOf(touched);
    touched.clear();
    return out;
  }

  private void touch(ClusterImage image) {
    for (RangeEntry r : image.ranges()) {
      if (r.owner().equals(tracked)
          || r.handover() != null && r.handover().target().equals(tracked)) {
        touched.add(r);
      }
    }
  }

  @Override
  public synchronized void onMap(ClusterImage image, MapDelta delta) {
    if (tracked != null) {
      touch(image);
    }
    if (delta == null) {
      if (previous != null) {
        add("full maps (changes missed)");
      }
      previous = image;
      return;
    }
    String cause = delta.cause() == null ? "" : delta.cause();
    boolean balancer = delta.actionCause() != null;
    if (cause.startsWith("start handover")) {
      add(balancer ? "handovers started by the balancer" : "handovers started by the workload");
    } else if (cause.startsWith("handover of range at") && cause.contains(" complete ")) {
      add("handovers completed");
    } else if (cause.startsWith("abort handover")) {
      add("handovers aborted");
    } else if (cause.startsWith("aborted handover")) {
      add("aborted handovers reversed (from SWITCH)");
    } else if (cause.startsWith("forced handover")) {
      add("ranges forced off a DOWN owner");
      delta.upsertedRanges().forEach(r -> forcedInHandover(r.start()));
    } else if (cause.startsWith("split range")) {
      add(balancer ? "splits by the balancer" : "splits by an operator");
    } else if (cause.startsWith("merge ranges")) {
      add(balancer ? "merges by the balancer" : "merges by an operator");
    }
    for (QueueServerInfo s : delta.upsertedServers()) {
      QueueServerInfo before = previous == null ? null : previous.servers().get(s.id());
      if (s.state() == ServerState.DOWN && (before == null || before.state() != ServerState.DOWN)) {
        add("servers committed DOWN");
      }
    }
    previous = image;
  }

  private void forcedInHandover(long start) {
    if (previous == null) {
      return;
    }
    int i = previous.indexOfStart(start);
    if (i >= 0 && previous.range(i).handover() != null) {
      add("  of them in a handover");
    }
  }

  private void add(String what) {
    counts.merge(what, 1L, Long::sum);
  }

  /** The counts so far, by what happened. */
  public synchronized Map<String, Long> counts() {
    return new TreeMap<>(counts);
  }

  public synchronized long count(String what) {
    return counts.getOrDefault(what, 0L);
  }

  @Override
  public void close() {
    watcher.close();
    endpoints.close();
  }
}
