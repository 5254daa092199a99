package io.plb.core.load;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Merged hot-key summaries (several servers, several periods) keep the bounds a single sketch
 * gives, and the merge does not depend on the order of its parts.
 */
class HotKeysMergeTest {

  /** One stream part: its sketch, its exact counts, its slice counts. */
  private record Part(HotKeys summary, Map<Long, Long> truth, List<SliceLoad> slices) {}

  private static Part part(SplittableRandom random, int keys, int n, int k, int keyOffset) {
    SpaceSaving sketch = new SpaceSaving(k);
    Map<Long, Long> truth = new HashMap<>();
    long[] in = new long[Ring.SLICES];
    SpaceSavingTest.Zipf zipf = new SpaceSavingTest.Zipf(keys, 1.0, random.nextLong());
    for (int i = 0; i < n; i++) {
      long h = SpaceSavingTest.hashOf(keyOffset + zipf.next());
      sketch.offer(h, 1);
      truth.merge(h, 1L, Long::sum);
      in[Ring.sliceOf(h)]++;
    }
    List<SliceLoad> slices = new ArrayList<>();
    for (int s = 0; s < Ring.SLICES; s++) {
      if (in[s] > 0) {
        slices.add(new SliceLoad(s, new LoadFigures(in[s], in[s], 0, 0, 0, 0)));
      }
    }
    return new Part(sketch.summary(), truth, slices);
  }

  private static void assertBounds(HotKeys merged, Map<Long, Long> truth) {
    for (HotKey key : merged.keys()) {
      long t = truth.getOrDefault(key.hash(), 0L);
      assertTrue(key.lowerBound() <= t && t <= key.count(),
          key + " does not bound the true count " + t);
    }
    for (Map.Entry<Long, Long> e : truth.entrySet()) {
      if (merged.find(e.getKey()) == null) {
        assertTrue(e.getValue() <= merged.threshold(), "unlisted key with " + e.getValue()
            + " above threshold " + merged.threshold());
      }
    }
  }

  @Test
  void mergedSummariesKeepTheirBounds() {
    SplittableRandom random = new SplittableRandom(11);
    for (int trial = 0; trial < 40; trial++) {
      int partsCount = 1 + random.nextInt(6);
      int k = 4 + random.nextInt(40);
      // Parts overlap in keys when offsets coincide (periods of one server), or not (servers).
      List<Part> parts = new ArrayList<>();
      Map<Long, Long> truth = new HashMap<>();
      for (int i = 0; i < partsCount; i++) {
        Part p = part(random, 50 + random.nextInt(2000), 1 + random.nextInt(20_000), k,
            random.nextBoolean() ? 0 : i * 100_000);
        parts.add(p);
        p.truth().forEach((h, c) -> truth.merge(h, c, Long::sum));
      }
      List<HotKeys.Part> plain = new ArrayList<>();
      List<HotKeys.Part> sliceAware = new ArrayList<>();
      for (Part p : parts) {
        plain.add(p.summary().part());
        sliceAware.add(p.summary().part(p.slices()));
      }
      HotKeys a = HotKeys.merge(plain, k);
      HotKeys b = HotKeys.merge(sliceAware, k);
      assertBounds(a, truth);
      assertBounds(b, truth);
      for (HotKey key : b.keys()) {
        HotKey same = a.find(key.hash());
        if (same != null) {
          assertTrue(key.count() <= same.count(), "slice-aware bounds are never looser");
        }
      }
      // Order of the parts does not matter.
      List<HotKeys.Part> shuffled = new ArrayList<>(sliceAware);
      Collections.shuffle(shuffled, new java.util.Random(trial));
      assertEquals(b, HotKeys.merge(shuffled, k));
    }
  }

  @Test
  void aKeyHotOnOneServerKeepsATightCountWhenMergedWithOtherServers() {
    // Server A sees one key 5000 times; B and C, with full sketches, serve other keys. A's count
    // stays exact, and its upper bound grows only by what B and C had in the key's slice.
    long hot = SpaceSavingTest.hashOf(1);
    SplittableRandom random = new SplittableRandom(5);
    SpaceSaving a = new SpaceSaving(8);
    for (int i = 0; i < 5000; i++) {
      a.offer(hot, 1);
    }
    List<SliceLoad> aSlices =
        List.of(new SliceLoad(Ring.sliceOf(hot), new LoadFigures(5000, 5000, 0, 0, 0, 0)));
    List<HotKeys.Part> parts = new ArrayList<>(List.of(a.summary().part(aSlices)));
    long othersInSlice = 0;
    for (int server = 0; server < 2; server++) {
      Part other = part(random, 500, 10_000, 8, 1_000_000 * (server + 1));
      othersInSlice += SliceLoad.find(other.slices(), Ring.sliceOf(hot)) == null ? 0
          : SliceLoad.find(other.slices(), Ring.sliceOf(hot)).messagesIn();
      assertTrue(other.summary().threshold() > 0, "the other sketches are full");
      parts.add(other.summary().part(other.slices()));
    }
    HotKey merged = HotKeys.merge(parts, 8).find(hot);
    assertNotNull(merged);
    assertEquals(5000, merged.lowerBound());
    assertTrue(merged.count() <= 5000 + othersInSlice, merged.toString());
  }

  @Test
  void mergeOfNothingIsEmpty() {
    assertEquals(HotKeys.EMPTY, HotKeys.merge(List.of(), 4));
    assertEquals(HotKeys.EMPTY, HotKeys.merge(List.of(HotKeys.EMPTY.part()), 4));
  }
}
