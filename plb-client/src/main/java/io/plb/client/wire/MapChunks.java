package io.plb.client.wire;

import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.QueueServer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How a full map travels: as {@code chunk_count} {@link MapSnapshot} chunks of one version, each
 * holding at most a fixed number of entries, servers first, then ranges (plb.proto,
 * docs/watch-contract.md "Full maps in chunks"). The watch stream's full maps and {@code GetMap}
 * both use it, so a map of any size reaches a client whose inbound message limit stays at
 * {@link #MAX_MESSAGE_BYTES}.
 *
 * <p>Sending: {@link #chunkCount} and {@link #chunk} cut an image lazily, one chunk at a time, so
 * a sender never holds the whole map in wire form. Receiving: an {@link Assembly} takes the
 * chunks in order and gives the image only with the last one.
 *
 * <p>The sizes: a range entry takes at most 172 bytes on the wire (two 64-character server ids,
 * for owner and handover target, and 10-byte numbers), a server 338 (a 255-character address);
 * a chunk of {@link #MAX_CHUNK_ENTRIES} of them takes 1.4 MB and 2.8 MB, under
 * {@link #MAX_MESSAGE_BYTES}, which {@code MapChunksTest} checks with the largest entries the map
 * allows.
 */
public final class MapChunks {
  /**
   * The largest map message — a chunk or a delta — a PLB node sends, and the inbound message
   * limit of a client's channels to PLB nodes (gRPC's default, stated here so the two agree).
   */
  public static final int MAX_MESSAGE_BYTES = 4 << 20;

  /** The most entries one chunk may hold: the upper bound of {@code watch.chunkEntries}. */
  public static final int MAX_CHUNK_ENTRIES = 8192;

  private MapChunks() {}

  /** The number of chunks {@code image} takes at {@code perChunk} entries each (at least 1). */
  public static int chunkCount(ClusterImage image, int perChunk) {
    checkPerChunk(perChunk);
    long entries = (long) image.servers().size() + image.rangeCount();
    return (int) Math.max(1, (entries + perChunk - 1) / perChunk);
  }

  /**
   * Chunk {@code index} of {@code image}: entries {@code [index * perChunk, (index + 1) *
   * perChunk)} of the servers (sorted by id) followed by the ranges (sorted by start).
   */
  public static MapSnapshot chunk(ClusterImage image, int perChunk, int index) {
    int count = chunkCount(image, perChunk);
    if (index < 0 || index >= count) {
      throw new IllegalArgumentException("chunk " + index + " of " + count);
    }
    int servers = image.servers().size();
    long from = (long) index * perChunk;
    long to = Math.min(from + perChunk, (long) servers + image.rangeCount());
    MapSnapshot.Builder b = MapSnapshot.newBuilder()
        .setVersion(image.version())
        .setChunkIndex(index)
        .setChunkCount(count)
        .setRangeCount(image.rangeCount())
        .setServerCount(servers);
    if (from < servers) {
      int i = 0;
      for (QueueServerInfo s : image.servers().values()) {
        if (i >= to) {
          break;
        }
        if (i >= from) {
          b.addServers(Wire.toProto(s));
        }
        i++;
      }
    }
    for (long e = Math.max(from, servers); e < to; e++) {
      b.addRanges(Wire.toProto(image.range((int) (e - servers))));
    }
    return b.build();
  }

  /** @throws IllegalArgumentException unless {@code 1 <= perChunk <= MAX_CHUNK_ENTRIES} */
  public static void checkPerChunk(int perChunk) {
    if (perChunk < 1 || perChunk > MAX_CHUNK_ENTRIES) {
      throw new IllegalArgumentException(
          "map entries per chunk must be 1.." + MAX_CHUNK_ENTRIES + ", got " + perChunk);
    }
  }

  /**
   * Gathers the chunks of one full map. Not thread-safe: one per stream, fed in arrival order.
   * After a complete map, or {@link #reset}, it waits for a first chunk again.
   */
  public static final class Assembly {
    private long version;
    private int count;
    private int next;
    private int rangeCount;
    private int serverCount;
    private List<RangeEntry> ranges = new ArrayList<>();
    private List<QueueServerInfo> servers = new ArrayList<>();
    /** Server ids as the servers carry them: every range's owner shares its server's string. */
    private final Map<String, String> ids = new HashMap<>();

    /** Whether some chunks of a map have arrived but not yet its last. */
    public boolean inProgress() {
      return next > 0;
    }

    /** Chunks of the map in progress taken so far. */
    public int received() {
      return next;
    }

    /** Drops the chunks gathered so far (the stream that carried them broke). */
    public void reset() {
      next = 0;
      count = 0;
      ranges = new ArrayList<>();
      servers = new ArrayList<>();
      ids.clear();
    }

    /**
     * Takes the next chunk.
     *
     * @return the whole map when {@code chunk} was its last chunk, else null
     * @throws IllegalStateException when the chunk does not continue the map in progress (another
     *     version, out of order, more entries than announced) or the map breaks an invariant;
     *     the assembly is reset
     */
    public ClusterImage add(MapSnapshot chunk) {
      try {
        return take(chunk);
      } catch (RuntimeException e) {
        reset();
        throw e instanceof IllegalStateException ? e : new IllegalStateException(e.getMessage(), e);
      }
    }

    private ClusterImage take(MapSnapshot chunk) {
      int chunkCount = chunk.getChunkCount() == 0 ? 1 : chunk.getChunkCount();
      if (next == 0) {
        if (chunk.getChunkIndex() != 0) {
          throw new IllegalStateException("a full map starts with chunk " + chunk.getChunkIndex()
              + " of " + chunkCount + " (version " + chunk.getVersion() + "), not chunk 0");
        }
        version = chunk.getVersion();
        count = chunkCount;
        boolean whole = chunk.getChunkCount() == 0;
        rangeCount = whole ? chunk.getRangesCount() : chunk.getRangeCount();
        serverCount = whole ? chunk.getServersCount() : chunk.getServerCount();
        ranges = new ArrayList<>(Math.min(rangeCount, 1 << 20));
      } else if (chunk.getVersion() != version || chunkCount != count
          || chunk.getChunkIndex() != next || chunk.getRangeCount() != rangeCount
          || chunk.getServerCount() != serverCount) {
        throw new IllegalStateException("expected chunk " + next + " of " + count + " of map "
            + version + " (" + rangeCount + " ranges, " + serverCount + " servers), got chunk "
            + chunk.getChunkIndex() + " of " + chunkCount + " of map " + chunk.getVersion() + " ("
            + chunk.getRangeCount() + " ranges, " + chunk.getServerCount() + " servers)");
      }
      for (QueueServer s : chunk.getServersList()) {
        QueueServerInfo info = Wire.fromProto(s);
        servers.add(info);
        ids.put(info.id(), info.id());
      }
      for (io.plb.proto.v1.RangeEntry p : chunk.getRangesList()) {
        RangeEntry r = Wire.fromProto(p);
        String owner = ids.get(r.owner());
        ranges.add(owner == null ? r : r.withOwner(owner, r.epoch()));
      }
      if (servers.size() > serverCount || ranges.size() > rangeCount) {
        throw new IllegalStateException("map " + version + " announced " + serverCount
            + " servers and " + rangeCount + " ranges; chunk " + next + " brings it to "
            + servers.size() + " and " + ranges.size());
      }
      next++;
      if (next < count) {
        return null;
      }
      if (servers.size() != serverCount || ranges.size() != rangeCount) {
        throw new IllegalStateException("map " + version + " announced " + serverCount
            + " servers and " + rangeCount + " ranges; its " + count + " chunks held "
            + servers.size() + " and " + ranges.size());
      }
      ClusterImage image = ClusterImage.of(version, ranges, servers);
      reset();
      return image;
    }
  }
}
