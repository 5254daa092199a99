package io.plb.core.load;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.error.PlbException;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The leader's per-bucket sums of load reports, and the entries they become. */
class LoadAggregatorTest {
  static final HistoryLayout LAYOUT = LoadHistoryTest.LAYOUT;

  static LoadReport report(String server, long session, long seq, SliceLoad... slices) {
    return new LoadReport(server, session, seq, 200, List.of(slices), HotKeys.EMPTY);
  }

  static SliceLoad slice(int s, long in, long depth, long age) {
    return new SliceLoad(s, new LoadFigures(in, in * 10, in, in * 10, depth, age));
  }

  @Test
  void sumsTheReportsOfABucketAcrossServers() {
    LoadAggregator agg = new LoadAggregator(LAYOUT, HistoryState.EMPTY, 10_000);
    agg.offer(report("q1", 1, 1, slice(5, 3, 10, 100), slice(6, 1, 0, 0)), 10_100);
    agg.offer(report("q1", 1, 2, slice(5, 4, 7, 300)), 10_500);
    agg.offer(report("q2", 9, 1, slice(5, 2, 5, 50)), 10_900);
    assertEquals(List.of(), agg.due(10_999), "the bucket is still open");
    List<AppendLoadSamples> due = agg.due(11_000);
    assertEquals(1, due.size());
    LoadBucket b = due.get(0).bucket();
    assertEquals(10_000, b.startMillis());
    assertEquals(1000, b.coveredMillis());
    // Counters add; q1's depth peaks at 10 and q2's at 5: 15; the oldest age is the largest.
    assertEquals(new LoadFigures(9, 90, 9, 90, 15, 300), b.slice(5));
    assertEquals(new LoadFigures(1, 10, 1, 10, 0, 0), b.slice(6));
    ServerLoad q1 = b.server("q1");
    assertEquals(2, q1.reports());
    assertEquals(2, q1.lastSeq());
    assertEquals(new LoadFigures(8, 80, 8, 80, 10, 300), q1.load());
    assertEquals(List.of(), agg.due(20_000), "nothing more: no reports since");
  }

  @Test
  void aResentReportIsCountedOnce() {
    LoadAggregator agg = new LoadAggregator(LAYOUT, HistoryState.EMPTY, 0);
    LoadReport r = report("q1", 1, 1, slice(5, 3, 0, 0));
    assertEquals(LoadAggregator.Verdict.COUNTED, agg.offer(r, 100).verdict());
    assertEquals(LoadAggregator.Verdict.DUPLICATE, agg.offer(r, 200).verdict());
    // Later bucket, same report again: still a duplicate.
    agg.due(1000);
    assertEquals(LoadAggregator.Verdict.DUPLICATE, agg.offer(r, 1100).verdict());
    // A restarted agent (new session) starts its numbers again and is counted.
    assertEquals(LoadAggregator.Verdict.COUNTED,
        agg.offer(report("q1", 2, 1, slice(5, 1, 0, 0)), 1200).verdict());
    assertEquals(1, agg.due(2000).get(0).bucket().slice(5).messagesIn());
  }

  @Test
  void aNewLeaderKnowsWhatTheCommittedHistoryCounted() {
    TreeMap<String, HistoryState.Watermark> marks = new TreeMap<>();
    marks.put("q1", new HistoryState.Watermark(4, 17, 5000));
    HistoryState committed = new HistoryState(LAYOUT, 5000, 0, 0, marks);
    LoadAggregator agg = new LoadAggregator(LAYOUT, committed, 5300);
    assertEquals(LoadAggregator.Verdict.DUPLICATE,
        agg.offer(report("q1", 4, 17, slice(1, 1, 0, 0)), 5400).verdict());
    assertEquals(LoadAggregator.Verdict.COUNTED,
        agg.offer(report("q1", 4, 18, slice(1, 1, 0, 0)), 5400).verdict());
    assertEquals(List.of(), agg.due(6000));
    AppendLoadSamples e = agg.due(7000).get(0);
    // The committed bucket at 5000 is taken: the first bucket of this leader follows it.
    assertEquals(6000, e.bucket().startMillis());
  }

  @Test
  void theFirstBucketAfterATakeoverIsPartial() {
    LoadAggregator agg = new LoadAggregator(LAYOUT, HistoryState.EMPTY, 7300);
    agg.offer(report("q1", 1, 1, slice(1, 1, 0, 0)), 7400);
    LoadBucket b = agg.due(8000).get(0).bucket();
    assertEquals(7000, b.startMillis());
    assertEquals(700, b.coveredMillis());
    agg.offer(report("q1", 1, 2, slice(1, 1, 0, 0)), 8100);
    assertEquals(1000, agg.due(9000).get(0).bucket().coveredMillis());
  }

  @Test
  void aLeaderWhoseClockIsBehindStillAppendsInOrder() {
    HistoryState committed = new HistoryState(LAYOUT, 50_000, 0, 0, new TreeMap<>());
    LoadAggregator agg = new LoadAggregator(LAYOUT, committed, 20_000);
    assertEquals(51_000, agg.offer(report("q1", 1, 1, slice(1, 1, 0, 0)), 20_100)
        .bucketStartMillis());
    assertEquals(List.of(), agg.due(21_000), "open until its own end, by this clock");
    assertEquals(51_000, agg.due(52_000).get(0).bucket().startMillis());
  }

  @Test
  void entriesAreAcceptedByTheHistory() {
    MemoryLoadHistory history = new MemoryLoadHistory();
    LoadAggregator agg = new LoadAggregator(LAYOUT, history.state(), 0);
    long now = 0;
    long seq = 0;
    for (int i = 0; i < 50; i++) {
      now += 250;
      seq++;
      SpaceSaving sketch = new SpaceSaving(8);
      for (int k = 0; k < 20; k++) {
        sketch.offer(((long) (k % 5) << 52) | k, 10);
      }
      List<SliceLoad> slices = List.of(slice(0, 4, 1, 1), slice(1, 4, 0, 0), slice(2, 4, 0, 0),
          slice(3, 4, 0, 0), slice(4, 4, 0, 0));
      agg.offer(new LoadReport("q" + (i % 3), 1, seq, 250, slices, sketch.summary()), now);
      for (AppendLoadSamples e : agg.due(now)) {
        history.append(e);
      }
    }
    assertTrue(history.buckets(Resolution.FINE).size() >= 10);
    long total = 0;
    for (LoadBucket b : history.buckets(Resolution.FINE).values()) {
      total += b.total().messagesIn();
      assertTrue(b.hotKeys().size() <= LAYOUT.hotKeys());
    }
    assertEquals(20 * history.buckets(Resolution.FINE).values().stream()
        .mapToInt(b -> b.servers().stream().mapToInt(ServerLoad::reports).sum()).sum(), total);
  }

  @Test
  void rejectsAMalformedReport() {
    LoadAggregator agg = new LoadAggregator(LAYOUT, HistoryState.EMPTY, 0);
    PlbException e = assertThrows(PlbException.class,
        () -> agg.offer(report("q1", 1, 1, slice(4096, 1, 0, 0)), 10));
    assertTrue(e.getMessage().contains("slice 4096"), e.getMessage());
    assertThrows(PlbException.class, () -> agg.offer(report("q1", 0, 1), 10));
    assertThrows(PlbException.class, () -> agg.offer(report("", 1, 1), 10));
    assertEquals(List.of(), agg.due(100_000), "nothing was counted");
  }
}
