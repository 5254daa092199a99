package io.plb.client.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command;
import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HotKey;
import io.plb.core.load.HotKeys;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.LoadFigures;
import io.plb.core.load.Resolution;
import io.plb.core.load.ServerLoad;
import io.plb.core.load.SliceLoad;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The size of one {@code AppendLoadSamples} log entry when every one of the 4096 slices is busy,
 * and that the entry survives the trip through its wire form unchanged.
 */
class LoadEntrySizeTest {

  /** A 10 s bucket of a busy cluster: every slice with load, 32 hot keys, 20 servers. */
  static AppendLoadSamples busyBucket(long scale) {
    SplittableRandom r = new SplittableRandom(1);
    List<SliceLoad> slices = new ArrayList<>();
    for (int s = 0; s < Ring.SLICES; s++) {
      long in = scale + r.nextLong(scale);
      slices.add(new SliceLoad(s, new LoadFigures(in, in * (200 + r.nextInt(2000)),
          in - r.nextLong(in / 10 + 1), in * 1000, r.nextLong(scale), r.nextLong(60_000))));
    }
    List<HotKey> keys = new ArrayList<>();
    for (int i = 0; i < 32; i++) {
      long count = 50 * scale - i;
      keys.add(new HotKey(r.nextLong(), count, r.nextLong(count / 20 + 1), count * 1000));
    }
    List<ServerLoad> servers = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      servers.add(new ServerLoad("queue-server-" + i, new LoadFigures(200 * scale,
          200_000 * scale, 200 * scale, 200_000 * scale, 20 * scale, 60_000), 10,
          1_700_000_000_000L, 86_400 + i));
    }
    return new AppendLoadSamples(HistoryLayout.DEFAULT, new LoadBucket(Resolution.FINE,
        1_700_000_000_000L, 10_000, 10_000, 1, slices, new HotKeys(keys, 40 * scale), servers));
  }

  @Test
  void aBucketOfFourThousandBusySlicesIsAboutOneHundredKilobytes() {
    // About 2,000 messages per slice per 10 s (3.3 million messages a second in all).
    AppendLoadSamples e = busyBucket(1000);
    int size = Wire.toLogEntry(e, 7).getSerializedSize();
    System.out.printf("AppendLoadSamples, 4096 busy slices, 32 hot keys, 20 servers: %d bytes"
        + " (%.1f bytes per slice)%n", size, size / 4096.0);
    assertTrue(size < 140_000, size + " bytes");
    // Ten times the traffic adds about a byte per figure.
    int bigger = Wire.toLogEntry(busyBucket(10_000), 7).getSerializedSize();
    System.out.printf("the same at ten times the traffic: %d bytes%n", bigger);
    assertTrue(bigger < 170_000, bigger + " bytes");
  }

  @Test
  void theEntryRoundTrips() {
    AppendLoadSamples e = busyBucket(1000);
    Command back = Wire.fromLogEntry(Wire.toLogEntry(e, 7));
    assertEquals(e, back);
  }
}
