package io.plb.core.load;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * The load history's rules: validation of {@code AppendLoadSamples} (a bad entry is an error and
 * changes nothing), deterministic compaction into coarse buckets driven by the entries' bucket
 * times, and a footprint bounded by the layout however many entries arrive.
 */
class LoadHistoryTest {
  /** 1 s buckets kept 10 s; 5 s coarse buckets kept 60 s; 4 hot keys. */
  static final HistoryLayout LAYOUT = new HistoryLayout(1000, 10_000, 5000, 60_000, 4);

  static LoadFigures figures(long in) {
    return new LoadFigures(in, in * 100, in / 2, in * 50, in % 7, in % 11);
  }

  static ServerLoad server(String id, long seq) {
    return new ServerLoad(id, figures(10), 1, 1, seq);
  }

  static AppendLoadSamples entry(long start, List<SliceLoad> slices, HotKeys hot,
      List<ServerLoad> servers) {
    return new AppendLoadSamples(LAYOUT,
        new LoadBucket(Resolution.FINE, start, LAYOUT.bucketMillis(), LAYOUT.bucketMillis(), 1,
            slices, hot, servers));
  }

  static AppendLoadSamples entry(long start, int... slices) {
    List<SliceLoad> list = new ArrayList<>();
    for (int s : slices) {
      list.add(new SliceLoad(s, figures(s + 1)));
    }
    return entry(start, list, HotKeys.EMPTY, List.of(server("q1", start / 1000 + 1)));
  }

  /** A random but valid entry for the bucket at {@code start}. */
  static AppendLoadSamples randomEntry(SplittableRandom r, long start) {
    TreeMap<Integer, SliceLoad> slices = new TreeMap<>();
    int n = r.nextInt(40);
    for (int i = 0; i < n; i++) {
      int s = r.nextInt(Ring.SLICES);
      slices.put(s, new SliceLoad(s, figures(1 + r.nextInt(1000))));
    }
    List<HotKey> keys = new ArrayList<>();
    for (SliceLoad s : slices.values()) {
      if (keys.size() < LAYOUT.hotKeys() && r.nextBoolean()) {
        long hash = ((long) s.slice() << 52) | r.nextInt(1 << 20);
        long count = 1 + r.nextInt((int) s.load().messagesIn());
        keys.add(new HotKey(hash, count, r.nextInt((int) count), count * 10));
      }
    }
    List<ServerLoad> servers = new ArrayList<>();
    for (String id : List.of("q1", "q2", "q3")) {
      if (servers.isEmpty() || r.nextBoolean()) {
        servers.add(new ServerLoad(id, figures(r.nextInt(100)), 1 + r.nextInt(10), 1,
            start / 1000 + 1));
      }
    }
    return entry(start, new ArrayList<>(slices.values()),
        new HotKeys(keys, r.nextInt(3)), servers);
  }

  // ------------------------------------------------------------------ validation

  private static void assertRejected(MemoryLoadHistory h, AppendLoadSamples e, ErrorCode code,
      String text) {
    MemoryLoadHistory before = copy(h);
    PlbException ex = assertThrows(PlbException.class, () -> h.append(e));
    assertEquals(code, ex.code(), ex.getMessage());
    assertTrue(ex.getMessage().contains(text), ex.getMessage());
    assertEquals(before, h, "a rejected entry changes nothing");
  }

  private static MemoryLoadHistory copy(MemoryLoadHistory h) {
    // Replaying is the only way in: rebuild from the buckets it holds is not needed; the state
    // and buckets are immutable values, so an equal history is one with equal parts.
    MemoryLoadHistory c = new MemoryLoadHistory();
    c.restore(h);
    return c;
  }

  @Test
  void rejectsBadEntriesAndChangesNothing() {
    MemoryLoadHistory h = new MemoryLoadHistory();
    h.append(entry(5000, 1, 2, 3));
    LoadFigures ok = figures(5);

    assertRejected(h, entry(6000, List.of(new SliceLoad(4096, ok)), HotKeys.EMPTY,
        List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "slice 4096 is outside 0..4095");
    assertRejected(h, entry(6000, List.of(new SliceLoad(-1, ok)), HotKeys.EMPTY,
        List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "slice -1 is outside");
    assertRejected(h, entry(6000,
        List.of(new SliceLoad(7, new LoadFigures(-3, 0, 0, 0, 0, 0))), HotKeys.EMPTY,
        List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "messages_in is negative");
    assertRejected(h, entry(6000,
        List.of(new SliceLoad(7, new LoadFigures(1, 0, 0, 0, -2, 0))), HotKeys.EMPTY,
        List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "queue_depth is negative");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, ok), new SliceLoad(7, ok)),
        HotKeys.EMPTY, List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "once each");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, LoadFigures.ZERO)), HotKeys.EMPTY,
        List.of(server("q1", 9))), ErrorCode.INVALID_ARGUMENT, "has no load");
    // Out of order: the same bucket again, and an older one.
    assertRejected(h, entry(5000, 9), ErrorCode.FAILED_PRECONDITION, "out of order");
    assertRejected(h, entry(2000, 9), ErrorCode.FAILED_PRECONDITION, "out of order");
    assertRejected(h, entry(6500, 9), ErrorCode.INVALID_ARGUMENT, "multiple of history.bucket");
    assertRejected(h, entry(-1000, 9), ErrorCode.INVALID_ARGUMENT, "multiple of history.bucket");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, ok)),
        new HotKeys(List.of(new HotKey(1, 2, 3, 0)), 0), List.of(server("q1", 9))),
        ErrorCode.INVALID_ARGUMENT, "error 3 outside 0..2");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, ok)), new HotKeys(List.of(
        new HotKey(1, 9, 0, 0), new HotKey(2, 8, 0, 0), new HotKey(3, 7, 0, 0),
        new HotKey(4, 6, 0, 0), new HotKey(5, 5, 0, 0)), 0), List.of(server("q1", 9))),
        ErrorCode.INVALID_ARGUMENT, "at most 4");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, ok)), HotKeys.EMPTY, List.of()),
        ErrorCode.INVALID_ARGUMENT, "no server reported");
    assertRejected(h, entry(6000, List.of(new SliceLoad(7, ok)), HotKeys.EMPTY,
        List.of(server("bad id!", 9))), ErrorCode.INVALID_ARGUMENT, "may only hold");
    // Other bucket widths than the history's.
    HistoryLayout other = new HistoryLayout(2000, 10_000, 10_000, 60_000, 4);
    assertRejected(h, new AppendLoadSamples(other, new LoadBucket(Resolution.FINE, 6000, 2000,
        2000, 1, List.of(), HotKeys.EMPTY, List.of(server("q1", 9)))),
        ErrorCode.FAILED_PRECONDITION, "laid out in 1000 ms");
    // A layout that is itself invalid.
    HistoryLayout bad = new HistoryLayout(1000, 10_000, 1500, 60_000, 4);
    assertRejected(h, new AppendLoadSamples(bad, new LoadBucket(Resolution.FINE, 6000, 1000,
        1000, 1, List.of(), HotKeys.EMPTY, List.of(server("q1", 9)))),
        ErrorCode.INVALID_ARGUMENT, "whole multiple of history.bucket");
    assertRejected(h, new AppendLoadSamples(LAYOUT, new LoadBucket(Resolution.FINE, 6000, 1000,
        0, 1, List.of(), HotKeys.EMPTY, List.of(server("q1", 9)))),
        ErrorCode.INVALID_ARGUMENT, "covers 0 ms");
    assertRejected(h, new AppendLoadSamples(null, null), ErrorCode.INVALID_ARGUMENT, "layout");

    // The history still takes the next good entry.
    h.append(entry(6000, 9));
    assertEquals(6000, h.state().lastBucketMillis());
  }

  @Test
  void theMapProcessorRefusesLoadSamples() {
    PlbException e = assertThrows(PlbException.class, () -> io.plb.core.command.CommandProcessor
        .validate(io.plb.core.map.ClusterImage.EMPTY, entry(0, 1)));
    assertEquals(ErrorCode.INVALID_ARGUMENT, e.code());
    assertTrue(e.getMessage().contains("load history"), e.getMessage());
  }

  @Test
  void layoutChecksNameTheirKeys() {
    assertNull(bad(HistoryLayout.DEFAULT));
    assertTrue(bad(new HistoryLayout(10, 1000, 100, 1000, 4)).contains("history.bucket"));
    assertTrue(bad(new HistoryLayout(1000, 500, 2000, 5000, 4)).contains("history.fineRetention"));
    assertTrue(bad(new HistoryLayout(1000, 5000, 2000, 4000, 4))
        .contains("history.coarseRetention"));
    assertTrue(bad(new HistoryLayout(1000, 5000, 2000, 5000, 0)).contains("telemetry.hotKeys"));
    assertTrue(bad(new HistoryLayout(1000, 1_000_000_000L, 2000, 1_000_000_000L, 4))
        .contains("at most 100000"));
    assertEquals(17_280 + 30, HistoryLayout.DEFAULT.fineBucketsKept());
    assertEquals(16_128, HistoryLayout.DEFAULT.coarseBucketsKept());
  }

  private static String bad(HistoryLayout l) {
    try {
      l.check();
      return null;
    } catch (PlbException e) {
      return e.getMessage();
    }
  }

  // ------------------------------------------------------------------ compaction

  @Test
  void fineBucketsRollUpIntoTheirCoarseBucket() {
    MemoryLoadHistory h = new MemoryLoadHistory();
    // Buckets 0..4 s fall in coarse bucket 0; 5 s starts the next.
    h.append(entry(0, List.of(new SliceLoad(1, new LoadFigures(10, 100, 5, 50, 3, 40))),
        new HotKeys(List.of(new HotKey(1L << 52, 6, 0, 60)), 0), List.of(server("q1", 1))));
    h.append(entry(2000, List.of(new SliceLoad(1, new LoadFigures(20, 200, 7, 70, 1, 90)),
        new SliceLoad(2, new LoadFigures(1, 1, 0, 0, 0, 0))),
        new HotKeys(List.of(new HotKey(1L << 52, 4, 1, 40)), 0),
        List.of(server("q1", 2), server("q2", 1))));
    LoadBucket c = h.buckets(Resolution.COARSE).get(0L);
    assertEquals(2, c.fineBuckets());
    assertEquals(2000, c.coveredMillis());
    assertEquals(new LoadFigures(30, 300, 12, 120, 3, 90), c.slice(1));
    assertEquals(new LoadFigures(1, 1, 0, 0, 0, 0), c.slice(2));
    assertEquals(new HotKey(1L << 52, 10, 1, 100), c.hotKeys().find(1L << 52));
    assertEquals(2, c.server("q1").reports());
    assertEquals(2, c.server("q1").lastSeq());
    assertEquals(1, c.server("q2").reports());

    h.append(entry(5000, 1));
    assertEquals(2, h.buckets(Resolution.COARSE).size());
    assertEquals(1, h.buckets(Resolution.COARSE).get(5000L).fineBuckets());
  }

  @Test
  void compactionFollowsTheBucketTimesNotAClock() {
    MemoryLoadHistory h = new MemoryLoadHistory();
    h.append(entry(0, 1));
    h.append(entry(9000, 1));
    h.append(entry(10_000, 1));
    // The bucket at 0 is outside the 10 s window, but its coarse bucket [0, 5 s) is not wholly
    // outside yet: fine buckets leave a coarse bucket at a time.
    assertEquals(List.of(0L, 9000L, 10_000L),
        new ArrayList<>(h.buckets(Resolution.FINE).keySet()));
    h.append(entry(15_000, 1));
    assertEquals(List.of(9000L, 10_000L, 15_000L),
        new ArrayList<>(h.buckets(Resolution.FINE).keySet()));
    assertEquals(5000, h.state().fineFromMillis());
    assertEquals(List.of(0L, 5000L, 10_000L, 15_000L),
        new ArrayList<>(h.buckets(Resolution.COARSE).keySet()));
    // A gap of an hour: one entry empties the fine window and the coarse one past 60 s.
    HistoryUpdate u = h.append(entry(3_600_000, 1));
    assertEquals(List.of(3_600_000L), new ArrayList<>(h.buckets(Resolution.FINE).keySet()));
    assertEquals(List.of(3_600_000L), new ArrayList<>(h.buckets(Resolution.COARSE).keySet()));
    assertEquals(3_590_000L, u.deleteFineBelow(), "the coarse bucket the window starts in");
    // The next entry moves neither window: no deletion is written.
    u = h.append(entry(3_601_000, 1));
    assertEquals(-1, u.deleteFineBelow());
    assertEquals(-1, u.deleteCoarseBelow());
  }

  @Test
  void sameEntriesGiveTheSameHistory() {
    for (long seed = 0; seed < 20; seed++) {
      List<AppendLoadSamples> entries = randomEntries(seed, 300);
      MemoryLoadHistory a = new MemoryLoadHistory();
      MemoryLoadHistory b = new MemoryLoadHistory();
      for (AppendLoadSamples e : entries) {
        a.append(e);
      }
      for (AppendLoadSamples e : entries) {
        b.append(e);
      }
      assertEquals(a, b, "seed " + seed);
      // A replica that restarted from a copy (a snapshot) mid-way ends equal too.
      MemoryLoadHistory c = new MemoryLoadHistory();
      for (int i = 0; i < entries.size(); i++) {
        if (i == entries.size() / 2) {
          c = copy(c);
        }
        c.append(entries.get(i));
      }
      assertEquals(a, c, "seed " + seed + " after a restore");
      assertNotEquals(new MemoryLoadHistory(), a);
    }
  }

  @Test
  void footprintStaysBoundedAfterManyBuckets() {
    SplittableRandom r = new SplittableRandom(3);
    MemoryLoadHistory h = new MemoryLoadHistory();
    long start = 1_000_000;
    long maxRows = 0;
    for (int i = 0; i < 6_000; i++) {
      start += LAYOUT.bucketMillis() * (1 + (r.nextInt(20) == 0 ? r.nextInt(30) : 0));
      h.append(randomEntry(r, start));
      assertTrue(h.buckets(Resolution.FINE).size() <= LAYOUT.fineBucketsKept());
      assertTrue(h.buckets(Resolution.COARSE).size() <= LAYOUT.coarseBucketsKept());
      maxRows = Math.max(maxRows, h.rows());
    }
    assertTrue(maxRows <= LAYOUT.maxRows(), maxRows + " rows");
    assertTrue(h.state().watermarks().size() <= 3);
    // Every kept coarse bucket whose fine buckets are all still kept is exactly their roll-up.
    Map<Long, LoadBucket> fine = h.buckets(Resolution.FINE);
    for (LoadBucket c : h.buckets(Resolution.COARSE).values()) {
      List<LoadBucket> parts = new ArrayList<>();
      for (LoadBucket f : fine.values()) {
        if (LAYOUT.coarseStartOf(f.startMillis()) == c.startMillis()) {
          parts.add(f);
        }
      }
      if (parts.size() != c.fineBuckets()) {
        continue;
      }
      for (int s = 0; s < Ring.SLICES; s++) {
        LoadFigures sum = LoadFigures.ZERO;
        for (LoadBucket f : parts) {
          sum = sum.then(f.slice(s));
        }
        assertEquals(sum, c.slice(s), "slice " + s + " of coarse bucket " + c.startMillis());
      }
    }
  }

  @Test
  void watermarksOfSilentServersAreDropped() {
    MemoryLoadHistory h = new MemoryLoadHistory();
    h.append(entry(0, List.of(), HotKeys.EMPTY, List.of(server("q1", 4), server("q2", 7))));
    assertEquals(new HistoryState.Watermark(1, 7, 0), h.state().watermarks().get("q2"));
    h.append(entry(9000, List.of(), HotKeys.EMPTY, List.of(server("q1", 5))));
    assertNotNull(h.state().watermarks().get("q2"));
    h.append(entry(10_000, List.of(), HotKeys.EMPTY, List.of(server("q1", 6))));
    assertNull(h.state().watermarks().get("q2"), "silent for the whole fine window");
    assertEquals(6, h.state().watermarks().get("q1").seq());
  }

  static List<AppendLoadSamples> randomEntries(long seed, int n) {
    SplittableRandom r = new SplittableRandom(seed);
    List<AppendLoadSamples> out = new ArrayList<>();
    long start = r.nextInt(1000) * 1000L;
    for (int i = 0; i < n; i++) {
      start += 1000L * (1 + r.nextInt(3));
      out.add(randomEntry(r, start));
    }
    return out;
  }
}
