package io.plb.client.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.command.Limits;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.WatchMapResponse;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class MapChunksTest {
  private static final String LONG_ID = "s".repeat(Limits.MAX_SERVER_ID_CHARS - 2);

  /** {@code servers} servers and {@code ranges} even ranges, owned in turn, at {@code version}. */
  private static ClusterImage image(long version, int servers, int ranges) {
    List<QueueServerInfo> list = new ArrayList<>();
    for (int i = 0; i < servers; i++) {
      list.add(new QueueServerInfo(String.format("q%03d", i), "127.0.0.1:" + (9000 + i), 1.0,
          ServerState.ACTIVE));
    }
    List<RangeEntry> rs = new ArrayList<>();
    long step = Long.divideUnsigned(-1L, ranges);
    for (int i = 0; i < ranges; i++) {
      long end = i + 1 == ranges ? 0L : (i + 1) * step;
      String owner = servers == 0 ? "" : list.get(i % servers).id();
      rs.add(new RangeEntry(i * step, end, owner, i, null, false));
    }
    return ClusterImage.of(version, rs, list);
  }

  private static List<MapSnapshot> chunks(ClusterImage image, int perChunk) {
    List<MapSnapshot> out = new ArrayList<>();
    for (int i = 0; i < MapChunks.chunkCount(image, perChunk); i++) {
      out.add(MapChunks.chunk(image, perChunk, i));
    }
    return out;
  }

  @ParameterizedTest
  @CsvSource({"0,1,1", "3,1,1", "3,10,1", "3,10,4", "5,12,5", "2,1000,64", "40,7,8"})
  void chunksGatherIntoTheSameImage(int servers, int ranges, int perChunk) {
    ClusterImage image = image(17, servers, ranges);
    List<MapSnapshot> chunks = chunks(image, perChunk);
    assertEquals((servers + ranges + perChunk - 1) / perChunk, chunks.size());
    MapChunks.Assembly a = new MapChunks.Assembly();
    for (int i = 0; i < chunks.size(); i++) {
      MapSnapshot c = chunks.get(i);
      assertEquals(i, c.getChunkIndex());
      assertEquals(chunks.size(), c.getChunkCount());
      assertEquals(17, c.getVersion());
      assertTrue(c.getServersCount() + c.getRangesCount() <= perChunk);
      ClusterImage got = a.add(c);
      if (i + 1 < chunks.size()) {
        assertNull(got, "no map before the last chunk");
        assertTrue(a.inProgress());
      } else {
        assertEquals(image, got);
        assertFalse(a.inProgress());
      }
    }
  }

  @Test
  void rangesShareTheirServersIds() {
    ClusterImage image = image(3, 2, 100);
    MapChunks.Assembly a = new MapChunks.Assembly();
    ClusterImage got = null;
    for (MapSnapshot c : chunks(image, 7)) {
      got = a.add(c);
    }
    assertSame(got.server("q000").id(), got.range(0).owner());
    assertSame(got.server("q001").id(), got.range(99).owner());
  }

  @Test
  void aWholeMapInOneMessageIsOneChunk() {
    ClusterImage image = image(5, 3, 20);
    assertEquals(image, new MapChunks.Assembly().add(Wire.toProto(image)));
    // As a sender that does not chunk writes it: no chunk fields at all.
    MapSnapshot bare = Wire.toProto(image).toBuilder().clearChunkCount().clearRangeCount()
        .clearServerCount().build();
    assertEquals(image, new MapChunks.Assembly().add(bare));
    assertEquals(image, Wire.fromProto(bare));
    assertThrows(IllegalStateException.class,
        () -> Wire.fromProto(MapChunks.chunk(image, 4, 0)), "a chunk is not a whole map");
  }

  @Test
  void aChunkThatDoesNotContinueTheMapIsRefused() {
    List<MapSnapshot> a = chunks(image(10, 2, 10), 3);
    List<MapSnapshot> b = chunks(image(11, 2, 10), 3);
    MapChunks.Assembly asm = new MapChunks.Assembly();
    expectRefused(asm, a.get(1), "not chunk 0");
    asm.add(a.get(0));
    expectRefused(asm, a.get(2), "expected chunk 1 of 4 of map 10");
    assertFalse(asm.inProgress(), "a refused chunk drops the map");
    asm.add(a.get(0));
    expectRefused(asm, b.get(1), "of map 11");
    asm.add(a.get(0));
    expectRefused(asm, a.get(1).toBuilder().setChunkCount(5).build(), "of 5");
    asm.add(a.get(0));
    expectRefused(asm, a.get(1).toBuilder().setRangeCount(1).build(), "(1 ranges");
    // More entries than announced, and fewer.
    expectRefused(asm, a.get(0).toBuilder().setRangeCount(0).build(), "announced");
    MapSnapshot whole = Wire.toProto(image(10, 2, 10));
    expectRefused(asm, whole.toBuilder().setRangeCount(11).build(), "held");
    // A map that breaks an invariant is refused whole.
    MapSnapshot gap = whole.toBuilder().removeRanges(3).setRangeCount(9).build();
    expectRefused(asm, gap, "gap or overlap");
    // Then a good map goes through.
    for (MapSnapshot c : a) {
      asm.add(c);
    }
    assertFalse(asm.inProgress());
  }

  private static void expectRefused(MapChunks.Assembly asm, MapSnapshot chunk, String part) {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> asm.add(chunk));
    assertTrue(e.getMessage().contains(part), e.getMessage());
    assertFalse(asm.inProgress());
  }

  @Test
  void theLargestChunkFitsInOneMessage() {
    // MAX_CHUNK_ENTRIES of the largest range the map allows: two ids of 64 characters (owner
    // and handover target), the largest numbers, pinned.
    List<QueueServerInfo> servers = List.of(
        new QueueServerInfo(LONG_ID + "-a", "h:1", 1.0, ServerState.ACTIVE),
        new QueueServerInfo(LONG_ID + "-b", "h:2", 1.0, ServerState.ACTIVE));
    List<RangeEntry> ranges = new ArrayList<>();
    int n = MapChunks.MAX_CHUNK_ENTRIES;
    long step = Long.divideUnsigned(-1L, n);
    for (int i = 0; i < n; i++) {
      ranges.add(new RangeEntry(i * step, i + 1 == n ? 0L : (i + 1) * step, LONG_ID + "-a",
          Long.MAX_VALUE, new Handover(LONG_ID + "-b", HandoverPhase.ABORT_SWITCH), true));
    }
    ClusterImage image = ClusterImage.of(Long.MAX_VALUE, ranges, servers);
    MapSnapshot chunk = MapChunks.chunk(image, n, 0);
    assertEquals(n, chunk.getRangesCount() + chunk.getServersCount());
    int size = WatchMapResponse.newBuilder().setFullMap(chunk).build().getSerializedSize();
    assertTrue(size < MapChunks.MAX_MESSAGE_BYTES, "a chunk of the largest ranges: " + size);

    // MAX_CHUNK_ENTRIES of the largest server: a 64-character id and a 255-character address.
    List<QueueServerInfo> big = new ArrayList<>();
    String host = "h".repeat(Limits.MAX_ADDRESS_CHARS - 6);
    for (int i = 0; i < n; i++) {
      big.add(new QueueServerInfo(String.format("%s%05d", LONG_ID.substring(3), i),
          host + ":65535", Double.MAX_VALUE, ServerState.DRAINING));
    }
    ClusterImage servers8k = ClusterImage.of(Long.MAX_VALUE, ClusterImage.EMPTY.ranges(), big);
    MapSnapshot first = MapChunks.chunk(servers8k, n, 0);
    assertEquals(n, first.getServersCount());
    size = WatchMapResponse.newBuilder().setFullMap(first).build().getSerializedSize();
    assertTrue(size < MapChunks.MAX_MESSAGE_BYTES, "a chunk of the largest servers: " + size);
  }

  @Test
  void theLargestDeltaFitsInOneMessage() {
    // No command changes more ranges than a split into the most pieces; take the largest ids
    // and numbers the map allows.
    ClusterImage base = ClusterImage.of(Long.MAX_VALUE - 1,
        List.of(new RangeEntry(0L, 0L, LONG_ID + "-a", Long.MAX_VALUE, null, true)),
        List.of(new QueueServerInfo(LONG_ID + "-a", "h:1", 1.0, ServerState.ACTIVE)));
    MapDelta d = CommandProcessor.process(base,
        new Command.SplitEvenly(0L, Limits.MAX_SPLIT_PIECES, Limits.MAX_SPLIT_PIECES),
        Long.MAX_VALUE);
    assertEquals(Limits.MAX_SPLIT_PIECES, d.upsertedRanges().size());
    int size = WatchMapResponse.newBuilder().setDelta(Wire.toProto(d)).build()
        .getSerializedSize();
    assertTrue(size < MapChunks.MAX_MESSAGE_BYTES / 4, "the largest delta: " + size);
  }

  @Test
  void entriesPerChunkAreBounded() {
    ClusterImage image = image(1, 1, 1);
    assertThrows(IllegalArgumentException.class, () -> MapChunks.chunkCount(image, 0));
    assertThrows(IllegalArgumentException.class,
        () -> MapChunks.chunkCount(image, MapChunks.MAX_CHUNK_ENTRIES + 1));
    assertThrows(IllegalArgumentException.class, () -> MapChunks.chunk(image, 1, 2));
    assertEquals(1, MapChunks.chunkCount(image, MapChunks.MAX_CHUNK_ENTRIES));
  }
}
