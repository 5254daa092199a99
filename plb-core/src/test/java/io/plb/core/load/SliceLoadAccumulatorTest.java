package io.plb.core.load;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A queue server's per-slice counters between two load reports. */
class SliceLoadAccumulatorTest {

  @Test
  void countsPerSliceAndStartsAfreshAfterADrain() {
    SliceLoadAccumulator acc = new SliceLoadAccumulator(4);
    long a = 5L << 52;
    long b = (7L << 52) | 1;
    acc.recordIn(a, 100);
    acc.recordIn(a, 50);
    acc.recordIn(b, 1);
    acc.recordOut(a, 100);
    SliceLoadAccumulator.Drained d = acc.drain(1000, (now, sink) -> {
      sink.slice(7, 3, now - 400);
      sink.slice(9, 1, 10);
    });
    assertEquals(List.of(
        new SliceLoad(5, new LoadFigures(2, 150, 1, 100, 0, 0)),
        new SliceLoad(7, new LoadFigures(1, 1, 0, 0, 3, 600)),
        new SliceLoad(9, new LoadFigures(0, 0, 0, 0, 1, 10))), d.slices());
    assertEquals(new HotKey(a, 2, 0, 150), d.hotKeys().keys().get(0));
    SliceLoadAccumulator.Drained next = acc.drain(2000, SliceLoadAccumulator.NO_GAUGES);
    assertEquals(List.of(), next.slices());
    assertEquals(HotKeys.EMPTY, next.hotKeys());
  }

  @Test
  void concurrentRecordingLosesNothing() throws Exception {
    SliceLoadAccumulator acc = new SliceLoadAccumulator(32);
    int threads = 4;
    int perThread = 50_000;
    List<Thread> workers = new ArrayList<>();
    for (int t = 0; t < threads; t++) {
      int id = t;
      workers.add(new Thread(() -> {
        for (int i = 0; i < perThread; i++) {
          long hash = SpaceSavingTest.hashOf(i % 1000 + id);
          if (id % 2 == 0) {
            acc.recordIn(hash, 3);
          } else {
            acc.recordOut(hash, 3);
          }
        }
      }));
    }
    workers.forEach(Thread::start);
    long in = 0;
    long out = 0;
    long bytes = 0;
    boolean running = true;
    while (running) {
      running = workers.stream().anyMatch(Thread::isAlive);
      for (SliceLoad s : acc.drain(0, SliceLoadAccumulator.NO_GAUGES).slices()) {
        in += s.load().messagesIn();
        out += s.load().messagesOut();
        bytes += s.load().bytesIn() + s.load().bytesOut();
        assertTrue(s.slice() >= 0 && s.slice() < Ring.SLICES);
      }
    }
    for (Thread w : workers) {
      w.join();
    }
    for (SliceLoad s : acc.drain(0, SliceLoadAccumulator.NO_GAUGES).slices()) {
      in += s.load().messagesIn();
      out += s.load().messagesOut();
      bytes += s.load().bytesIn() + s.load().bytesOut();
    }
    assertEquals(2L * perThread, in);
    assertEquals(2L * perThread, out);
    assertEquals(3L * threads * perThread, bytes);
  }
}
