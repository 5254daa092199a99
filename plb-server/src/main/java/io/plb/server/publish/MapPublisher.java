package io.plb.server.publish;

import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The node's applied map and its recent change history, as watchers and readers see them.
 *
 * <p>Thread model: {@link #publish} and {@link #advanceApplied} are called by the state machine's
 * apply thread only, in log order; every other method may be called from any thread. The image is
 * swapped through a volatile field; the history is guarded by {@code this}.
 *
 * <p>Invariants: {@code image.version()} equals the version of the newest delta in the history (or
 * the history is empty); consecutive deltas chain ({@code next.prevVersion == prev.version}); the
 * history holds at most {@code historyLimit} deltas and, but for the newest delta, at most
 * {@code historyRangeLimit} range entries (upserted and removed) in all — a split into thousands
 * of pieces makes one delta of thousands of ranges, so a count of deltas alone would not bound
 * its memory; the applied index never decreases.
 */
public final class MapPublisher {
  /** Listens for new versions; called on the apply thread, so it must only schedule work. */
  public interface Listener {
    void onNewVersion(long version);
  }

  private final int historyLimit;
  /** Deltas in version order; a ring buffer so a cursor is found by binary search. */
  private final DeltaRing history;
  private final Map<Listener, Boolean> listeners = new ConcurrentHashMap<>();
  private final PriorityQueue<Waiter> waiters =
      new PriorityQueue<>((a, b) -> Long.compare(a.index, b.index));
  private volatile ClusterImage image = ClusterImage.EMPTY;
  private volatile long appliedIndex;

  private record Waiter(long index, CompletableFuture<Long> future) {}

  /** The next thing a watcher at some cursor should receive. */
  public sealed interface Next {}

  /** A full map: the watcher's cursor was too old, unknown, or the watcher is new. */
  public record FullMap(ClusterImage image) implements Next {}

  /** The deltas that follow the watcher's cursor, in order. */
  public record Deltas(List<MapDelta> deltas) implements Next {}

  /** Nothing new after the cursor. */
  public record UpToDate(long version) implements Next {}

  public MapPublisher(int historyLimit, long historyRangeLimit) {
    if (historyLimit < 1) {
      throw new IllegalArgumentException("historyLimit must be >= 1");
    }
    if (historyRangeLimit < 1) {
      throw new IllegalArgumentException("historyRangeLimit must be >= 1");
    }
    this.historyLimit = historyLimit;
    this.history = new DeltaRing(historyLimit, historyRangeLimit);
  }

  /** Replaces everything: at start-up and after a snapshot install. */
  public synchronized void reset(ClusterImage newImage, Collection<MapDelta> recent, long applied) {
    history.clear();
    for (MapDelta d : recent) {
      if (d.version() <= newImage.version()) {
        history.add(d);
      }
    }
    image = newImage;
    advanceApplied(Math.max(applied, newImage.version()));
    notifyListeners(newImage.version());
  }

  /** Publishes the image produced by {@code delta}. Apply thread only. */
  public void publish(ClusterImage newImage, MapDelta delta, long applied) {
    synchronized (this) {
      history.add(delta);
      image = newImage;
    }
    advanceApplied(applied);
    notifyListeners(newImage.version());
  }

  /** The version below which the history has been trimmed: deltas at or after it are kept. */
  public synchronized long oldestRetainedVersion() {
    return history.size() == 0 ? image.version() : history.get(0).version();
  }

  /** The newest {@code max} retained changes, oldest first. */
  public synchronized List<MapDelta> recentChanges(int max) {
    List<MapDelta> out = new ArrayList<>();
    for (int i = Math.max(0, history.size() - max); i < history.size(); i++) {
      out.add(history.get(i));
    }
    return out;
  }

  public synchronized int historySize() {
    return history.size();
  }

  /** Records that the node has applied up to {@code index}, and wakes readers waiting for it. */
  public void advanceApplied(long index) {
    List<CompletableFuture<Long>> ready = new ArrayList<>();
    synchronized (waiters) {
      if (index > appliedIndex) {
        appliedIndex = index;
      }
      while (!waiters.isEmpty() && waiters.peek().index <= appliedIndex) {
        ready.add(waiters.poll().future);
      }
    }
    for (CompletableFuture<Long> f : ready) {
      f.complete(index);
    }
  }

  /** Completes once the node has applied at least {@code index}. */
  public CompletableFuture<Long> awaitApplied(long index) {
    synchronized (waiters) {
      if (appliedIndex >= index) {
        return CompletableFuture.completedFuture(appliedIndex);
      }
      CompletableFuture<Long> f = new CompletableFuture<>();
      waiters.add(new Waiter(index, f));
      f.whenComplete((v, e) -> {
        if (e != null) {
          synchronized (waiters) {
            waiters.removeIf(w -> w.future == f);
          }
        }
      });
      return f;
    }
  }

  public ClusterImage image() {
    return image;
  }

  public long appliedIndex() {
    return appliedIndex;
  }

  /**
   * What a watcher that has seen everything up to {@code cursor} gets next, at most
   * {@code maxDeltas} deltas at a time. A cursor that is not a version this node can continue
   * from — older than the history, or between two versions — gets a full map.
   */
  public Next next(long cursor, int maxDeltas) {
    return next(cursor, maxDeltas, false);
  }

  /**
   * As {@link #next(long, int)}; with {@code nearest}, a cursor between two versions of the
   * history continues with the first delta after it (the map at the cursor is the map at that
   * delta's {@code prevVersion}).
   */
  public Next next(long cursor, int maxDeltas, boolean nearest) {
    ClusterImage current;
    List<MapDelta> out = new ArrayList<>();
    synchronized (this) {
      current = image;
      if (cursor >= current.version()) {
        return new UpToDate(current.version());
      }
      int i = history.firstAfter(cursor);
      if (i < 0 || history.get(i).prevVersion() != cursor
          && !(nearest && history.get(i).prevVersion() < cursor)) {
        return new FullMap(current);
      }
      for (int n = history.size(); i < n && out.size() < maxDeltas; i++) {
        out.add(history.get(i));
      }
    }
    return new Deltas(out);
  }

  public void addListener(Listener l) {
    listeners.put(l, Boolean.TRUE);
  }

  public void removeListener(Listener l) {
    listeners.remove(l);
  }

  public int listenerCount() {
    return listeners.size();
  }

  private void notifyListeners(long version) {
    for (Listener l : listeners.keySet()) {
      l.onNewVersion(version);
    }
  }

  /** A bounded ring of deltas in version order. Guarded by the publisher. */
  private static final class DeltaRing {
    private final MapDelta[] items;
    private final long rangeLimit;
    private int head;
    private int size;
    /** Range entries (upserted and removed) of the deltas held. */
    private long ranges;

    DeltaRing(int capacity, long rangeLimit) {
      items = new MapDelta[capacity];
      this.rangeLimit = rangeLimit;
    }

    void add(MapDelta d) {
      if (size == items.length) {
        dropOldest();
      }
      items[(head + size) % items.length] = d;
      size++;
      ranges += rangesOf(d);
      while (size > 1 && ranges > rangeLimit) {
        dropOldest();
      }
    }

    private void dropOldest() {
      ranges -= rangesOf(items[head]);
      items[head] = null;
      head = (head + 1) % items.length;
      size--;
    }

    private static long rangesOf(MapDelta d) {
      return d.upsertedRanges().size() + d.removedRangeStarts().size();
    }

    MapDelta get(int i) {
      return items[(head + i) % items.length];
    }

    int size() {
      return size;
    }

    void clear() {
      java.util.Arrays.fill(items, null);
      head = 0;
      size = 0;
      ranges = 0;
    }

    /** The index of the first delta with a version above {@code version}, or -1. */
    int firstAfter(long version) {
      int lo = 0;
      int hi = size;
      while (lo < hi) {
        int mid = (lo + hi) >>> 1;
        if (get(mid).version() <= version) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo < size ? lo : -1;
    }
  }
}
