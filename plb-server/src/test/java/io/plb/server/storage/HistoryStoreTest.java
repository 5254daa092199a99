package io.plb.server.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HistoryUpdate;
import io.plb.core.load.HotKey;
import io.plb.core.load.HotKeys;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.LoadFigures;
import io.plb.core.load.LoadHistory;
import io.plb.core.load.MemoryLoadHistory;
import io.plb.core.load.Resolution;
import io.plb.core.load.ServerLoad;
import io.plb.core.load.SliceLoad;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The RocksDB history store holds exactly what the in-memory model of {@link LoadHistory} holds,
 * for the same entries — after each write, after a reopen, and in a checkpoint — and its rows stay
 * within the layout's bound.
 */
class HistoryStoreTest {
  /** 1 s buckets kept 8 s; 4 s coarse buckets kept 40 s. */
  static final HistoryLayout LAYOUT = new HistoryLayout(1000, 8000, 4000, 40_000, 8);

  @TempDir Path dir;

  static AppendLoadSamples randomEntry(SplittableRandom r, long start) {
    TreeMap<Integer, SliceLoad> slices = new TreeMap<>();
    int n = r.nextInt(200);
    for (int i = 0; i < n; i++) {
      int s = r.nextInt(Ring.SLICES);
      long in = 1 + r.nextInt(5000);
      slices.put(s, new SliceLoad(s, new LoadFigures(in, in * 300, in / 2, in * 150,
          r.nextInt(50), r.nextInt(10_000))));
    }
    List<HotKey> keys = new ArrayList<>();
    for (SliceLoad s : slices.values()) {
      if (keys.size() < LAYOUT.hotKeys() && r.nextInt(4) == 0) {
        long count = 1 + r.nextInt((int) s.load().messagesIn());
        keys.add(new HotKey(((long) s.slice() << 52) | r.nextInt(1 << 30), count,
            r.nextInt((int) count), count * 100));
      }
    }
    List<ServerLoad> servers = new ArrayList<>();
    for (String id : List.of("q1", "q2", "q3")) {
      if (servers.isEmpty() || r.nextBoolean()) {
        servers.add(new ServerLoad(id, new LoadFigures(r.nextInt(1000), 1, 2, 3, 4, 5),
            1 + r.nextInt(5), 7, start / 1000 + 1));
      }
    }
    return new AppendLoadSamples(LAYOUT, new LoadBucket(Resolution.FINE, start, 1000,
        1 + r.nextInt(1000), 1, new ArrayList<>(slices.values()),
        new HotKeys(keys, r.nextInt(3)), servers));
  }

  private static void assertSame(MemoryLoadHistory model, StateStore store) throws Exception {
    assertEquals(model.state(), store.loadHistoryState());
    for (Resolution res : Resolution.values()) {
      StateStore.HistoryPage page =
          store.readHistory(res, 0, 0, 0, Ring.SLICES - 1, "", Integer.MAX_VALUE);
      assertEquals(new ArrayList<>(model.buckets(res).values()), page.buckets(), res.name());
      assertEquals(0, page.nextFromMillis());
    }
    assertEquals(model.rows(), store.historyRows());
  }

  @Test
  void storeHoldsWhatTheModelHolds() throws Exception {
    SplittableRandom r = new SplittableRandom(17);
    MemoryLoadHistory model = new MemoryLoadHistory();
    long start = 1_700_000_000_000L;
    long index = 10;
    long maxRows = 0;
    try (StateStore store = StateStore.open(dir.resolve("db"))) {
      for (int i = 0; i < 150; i++) {
        start += 1000L * (1 + (r.nextInt(10) == 0 ? r.nextInt(20) : 0));
        AppendLoadSamples e = randomEntry(r, start);
        HistoryUpdate u = LoadHistory.apply(store.loadHistoryState(), e,
            s -> {
              try {
                return store.readBucket(Resolution.COARSE, s);
              } catch (java.io.IOException ex) {
                throw new java.io.UncheckedIOException(ex);
              }
            });
        store.writeApplied(1, index += 2, null, u);
        model.append(e);
        if (i % 10 == 0) {
          assertSame(model, store);
        }
        maxRows = Math.max(maxRows, store.historyRows());
      }
      assertSame(model, store);
      assertTrue(maxRows <= LAYOUT.maxRows());
      assertTrue(model.buckets(Resolution.FINE).size() <= LAYOUT.fineBucketsKept());
      store.checkpoint(dir.resolve("ckpt"));
    }
    try (StateStore reopened = StateStore.open(dir.resolve("db"))) {
      assertSame(model, reopened);
      assertEquals(index, reopened.appliedIndex());
    }
    try (StateStore copy = StateStore.open(dir.resolve("ckpt"))) {
      assertSame(model, copy);
    }
  }

  @Test
  void readsAPageOfSlicesAndServers() throws Exception {
    SplittableRandom r = new SplittableRandom(3);
    MemoryLoadHistory model = new MemoryLoadHistory();
    try (StateStore store = StateStore.open(dir.resolve("db"))) {
      long index = 1;
      for (long start = 0; start < 12_000; start += 1000) {
        AppendLoadSamples e = randomEntry(r, start);
        HistoryUpdate u = model.append(e);
        store.writeApplied(1, index++, null, u);
      }
      assertNull(store.readBucket(Resolution.FINE, 0), "deleted with its coarse bucket");
      // Slices 100..2000 of the fine buckets from 6 s, q2's totals only, at most 300 slice rows.
      StateStore.HistoryPage page =
          store.readHistory(Resolution.FINE, 6000, 0, 100, 2000, "q2", 300);
      assertTrue(!page.buckets().isEmpty());
      int rows = 0;
      for (LoadBucket b : page.buckets()) {
        LoadBucket full = model.buckets(Resolution.FINE).get(b.startMillis());
        List<SliceLoad> expected = full.slices().stream()
            .filter(s -> s.slice() >= 100 && s.slice() <= 2000).toList();
        assertEquals(expected, b.slices());
        assertEquals(full.servers().stream().filter(s -> s.serverId().equals("q2")).toList(),
            b.servers());
        assertEquals(full.hotKeys(), b.hotKeys());
        rows += b.slices().size();
      }
      assertTrue(rows <= 300 || page.buckets().size() == 1);
      if (page.nextFromMillis() != 0) {
        assertTrue(page.nextFromMillis() > page.buckets().get(page.buckets().size() - 1)
            .startMillis());
      }
      assertEquals(index - 1, page.appliedIndex());
      // No slices asked: buckets with their hot keys and servers only.
      StateStore.HistoryPage bare = store.readHistory(Resolution.COARSE, 0, 8000, -1, -1, "", 10);
      for (LoadBucket b : bare.buckets()) {
        assertTrue(b.slices().isEmpty());
        assertTrue(b.startMillis() < 8000);
      }
    }
  }
}
