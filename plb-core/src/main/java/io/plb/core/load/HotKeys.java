package io.plb.core.load;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A top-K summary of hot keys over a period: the tracked keys, highest count first, and the
 * {@code threshold} — the most messages any key <em>not</em> listed can have had.
 *
 * <p>Summaries merge ({@link #merge}) with their bounds intact, so the summaries of several
 * servers, or of several periods, combine into one with the same kind of guarantee: for a listed
 * key the true count lies in {@code [count - error, count]}, and an unlisted key had at most
 * {@code threshold}. A merge can tighten the bound of a key a part does not list with what the
 * part knows of the key's slice (a part that saw no message in the slice saw none of the key).
 *
 * <p>Immutable; the key list is kept in {@link HotKey#BY_COUNT} order.
 */
public record HotKeys(List<HotKey> keys, long threshold) {
  public static final HotKeys EMPTY = new HotKeys(List.of(), 0);

  /** At most this many keys in any summary PLB accepts. */
  public static final int MAX_KEYS = 1024;

  public HotKeys {
    List<HotKey> sorted = new ArrayList<>(keys);
    sorted.sort(HotKey.BY_COUNT);
    keys = List.copyOf(sorted);
  }

  public int size() {
    return keys.size();
  }

  /** The listed key with this hash, or null. */
  public HotKey find(long hash) {
    for (HotKey k : keys) {
      if (k.hash() == hash) {
        return k;
      }
    }
    return null;
  }

  /**
   * What is wrong with this summary (for input from the wire), or null: more than
   * {@code maxKeys} keys, a hash listed twice, a count below 1, an error outside {@code 0..count},
   * negative bytes or threshold.
   */
  public String problem(int maxKeys) {
    if (threshold < 0) {
      return "hot-key threshold is negative (" + threshold + ")";
    }
    if (keys.size() > maxKeys) {
      return keys.size() + " hot keys listed; at most " + maxKeys;
    }
    Set<Long> seen = new HashSet<>();
    for (HotKey k : keys) {
      String key = "hot key " + Ring.hex(k.hash());
      if (!seen.add(k.hash())) {
        return key + " is listed twice";
      }
      if (k.count() < 1) {
        return key + " has count " + k.count() + "; a listed key has at least 1 message";
      }
      if (k.error() < 0 || k.error() > k.count()) {
        return key + " has error " + k.error() + " outside 0.." + k.count();
      }
      if (k.bytes() < 0) {
        return key + " has negative bytes (" + k.bytes() + ")";
      }
    }
    return null;
  }

  // ------------------------------------------------------------------ merging

  /** The most messages of a key a part saw, if the part does not list it. */
  @FunctionalInterface
  public interface AbsentBound {
    long of(long hash);
  }

  /** One summary to merge, with its bound for keys it does not list. */
  public record Part(HotKeys keys, AbsentBound absent) {}

  /** A part whose unlisted keys are bounded by its threshold alone. */
  public Part part() {
    return new Part(this, h -> threshold);
  }

  /**
   * A part whose unlisted keys are bounded by its threshold and by the messages its period had in
   * the key's slice ({@code slices}: the same period's slice figures, sorted by slice).
   */
  public Part part(List<SliceLoad> slices) {
    return new Part(this, h -> {
      LoadFigures f = SliceLoad.find(slices, Ring.sliceOf(h));
      return f == null ? 0 : Math.min(threshold, f.messagesIn());
    });
  }

  /** As {@link #part(List)}, with the slice's messages in given by a function. */
  public Part part(SliceMessages messagesIn) {
    return new Part(this, h -> Math.min(threshold, messagesIn.of(Ring.sliceOf(h))));
  }

  /** Messages in per slice, for {@link #part(SliceMessages)}. */
  @FunctionalInterface
  public interface SliceMessages {
    long of(int slice);
  }

  /**
   * Merges summaries of disjoint streams (other servers, or other periods) into one of at most
   * {@code k} keys. A key's count is the sum over the parts of its count where listed and the
   * part's absent bound where not; its lower bound is the sum of the lower bounds where listed.
   * The merged threshold is the larger of the sum of the parts' thresholds (a key no part lists)
   * and the highest count left out by the cut to {@code k}. Deterministic: the result depends
   * only on the parts, not on their order.
   */
  public static HotKeys merge(List<Part> parts, int k) {
    if (k < 1) {
      throw new IllegalArgumentException("k must be at least 1, got " + k);
    }
    List<Map<Long, HotKey>> byHash = new ArrayList<>(parts.size());
    Set<Long> all = new HashSet<>();
    long thresholds = 0;
    for (Part p : parts) {
      Map<Long, HotKey> m = new HashMap<>();
      for (HotKey key : p.keys().keys()) {
        m.put(key.hash(), key);
        all.add(key.hash());
      }
      byHash.add(m);
      thresholds = LoadFigures.add(thresholds, p.keys().threshold());
    }
    List<HotKey> candidates = new ArrayList<>(all.size());
    for (long h : all) {
      long upper = 0;
      long lower = 0;
      long bytes = 0;
      for (int i = 0; i < parts.size(); i++) {
        HotKey listed = byHash.get(i).get(h);
        if (listed != null) {
          upper = LoadFigures.add(upper, listed.count());
          lower = LoadFigures.add(lower, listed.lowerBound());
          bytes = LoadFigures.add(bytes, listed.bytes());
        } else {
          upper = LoadFigures.add(upper, Math.max(0, parts.get(i).absent().of(h)));
        }
      }
      candidates.add(new HotKey(h, upper, upper - Math.min(lower, upper), bytes));
    }
    candidates.sort(HotKey.BY_COUNT);
    long threshold = thresholds;
    if (candidates.size() > k) {
      threshold = Math.max(threshold, candidates.get(k).count());
      candidates = candidates.subList(0, k);
    }
    return new HotKeys(candidates, threshold);
  }
}
