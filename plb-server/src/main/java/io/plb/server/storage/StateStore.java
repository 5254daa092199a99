package io.plb.server.storage;

import com.google.protobuf.InvalidProtocolBufferException;
import io.plb.client.wire.Wire;
import io.plb.core.balancer.BalancerState;
import io.plb.core.keyspace.Ring;
import io.plb.core.load.HistoryState;
import io.plb.core.load.HistoryUpdate;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.Resolution;
import io.plb.core.load.SliceLoad;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.HistoryMeta;
import io.plb.proto.v1.QueueServer;
import io.plb.proto.v1.ReportWatermark;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import org.rocksdb.Checkpoint;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.FlushOptions;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.Snapshot;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * The RocksDB database of one PLB node (DESIGN §9): one column family per kind of state, and every
 * applied entry written — its changes and the applied index together — in one {@link WriteBatch},
 * so the database is always at exactly one applied entry.
 *
 * <p>Column families: {@code ranges} (8-byte big-endian start → RangeEntry), {@code servers} (id →
 * QueueServer), {@code changes} (8-byte big-endian version → MapDelta, the recent history watchers
 * resume from), {@code meta} (applied term and index, map version, the load history's state),
 * {@code history} (the load history's buckets, DESIGN §6).
 *
 * <p>History keys sort by resolution, bucket start, then slice: {@code resolution(1) start(8)
 * 0x00} → the bucket (LoadBucket without its slices: hot keys, server totals, coverage), and
 * {@code resolution(1) start(8) 0x01 slice(2)} → that slice's figures. Starts are big-endian, so a
 * time range is a key range and dropping old buckets is one range deletion.
 *
 * <p>Thread model: written only by the state machine's apply thread; {@link #checkpoint} runs on
 * the same thread. {@link #readHistory} may run on any thread at the same time (RocksDB reads are
 * thread-safe; it reads one consistent RocksDB snapshot), but never concurrently with
 * {@link #close} — the caller guards that.
 */
public final class StateStore implements AutoCloseable {
  private static final byte[] APPLIED_INDEX = bytes("applied.index");
  private static final byte[] APPLIED_TERM = bytes("applied.term");
  private static final byte[] MAP_VERSION = bytes("map.version");
  private static final byte[] HISTORY_META = bytes("history.meta");
  private static final byte[] BALANCER_STATE = bytes("balancer.state");
  private static final byte[] BALANCER_INDEX = bytes("balancer.index");
  private static final byte BUCKET_ROW = 0;
  private static final byte SLICE_ROW = 1;

  static {
    RocksDB.loadLibrary();
  }

  private final Path dir;
  private final DBOptions dbOptions;
  private final ColumnFamilyOptions cfOptions;
  private final WriteOptions writeOptions;
  private final RocksDB db;
  private final ColumnFamilyHandle ranges;
  private final ColumnFamilyHandle servers;
  private final ColumnFamilyHandle changes;
  private final ColumnFamilyHandle meta;
  private final ColumnFamilyHandle history;
  private long appliedIndex;
  private long appliedTerm;

  private StateStore(Path dir) throws IOException {
    this.dir = dir;
    Files.createDirectories(dir);
    dbOptions = new DBOptions().setCreateIfMissing(true).setCreateMissingColumnFamilies(true);
    cfOptions = new ColumnFamilyOptions().optimizeForSmallDb();
    // The Raft log is the source of truth: an unsynced write lost in a machine crash is re-applied.
    writeOptions = new WriteOptions().setSync(false);
    List<ColumnFamilyDescriptor> descriptors =
        List.of(
            new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, cfOptions),
            new ColumnFamilyDescriptor(bytes("ranges"), cfOptions),
            new ColumnFamilyDescriptor(bytes("servers"), cfOptions),
            new ColumnFamilyDescriptor(bytes("changes"), cfOptions),
            new ColumnFamilyDescriptor(bytes("meta"), cfOptions),
            new ColumnFamilyDescriptor(bytes("history"), cfOptions));
    List<ColumnFamilyHandle> handles = new ArrayList<>();
    try {
      db = RocksDB.open(dbOptions, dir.toString(), descriptors, handles);
    } catch (RocksDBException e) {
      writeOptions.close();
      cfOptions.close();
      dbOptions.close();
      throw new IOException("cannot open RocksDB at " + dir + ": " + e.getMessage(), e);
    }
    ranges = handles.get(1);
    servers = handles.get(2);
    changes = handles.get(3);
    meta = handles.get(4);
    history = handles.get(5);
    appliedIndex = readLong(APPLIED_INDEX);
    appliedTerm = readLong(APPLIED_TERM);
  }

  /** Opens (or creates) the database in {@code dir}. */
  public static StateStore open(Path dir) throws IOException {
    return new StateStore(dir);
  }

  /** The Raft index of the last entry written, 0 for a new database. */
  public long appliedIndex() {
    return appliedIndex;
  }

  public long appliedTerm() {
    return appliedTerm;
  }

  /** Reads the whole image. Used at start-up and after a snapshot install. */
  public ClusterImage loadImage() throws IOException {
    long version = readLong(MAP_VERSION);
    List<RangeEntry> rangeList = new ArrayList<>();
    List<QueueServerInfo> serverList = new ArrayList<>();
    try (RocksIterator it = db.newIterator(ranges)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        rangeList.add(Wire.fromProto(io.plb.proto.v1.RangeEntry.parseFrom(it.value())));
      }
      try (RocksIterator st = db.newIterator(servers)) {
        for (st.seekToFirst(); st.isValid(); st.next()) {
          serverList.add(Wire.fromProto(QueueServer.parseFrom(st.value())));
        }
      }
    } catch (InvalidProtocolBufferException e) {
      throw new IOException("corrupt state in " + dir + ": " + e.getMessage(), e);
    }
    if (rangeList.isEmpty()) {
      // No range was ever changed: the map is still the initial one, which is never written.
      rangeList.addAll(ClusterImage.EMPTY.ranges());
    }
    return ClusterImage.of(version, rangeList, serverList);
  }

  /** The retained change history, oldest first. */
  public List<MapDelta> loadChanges() throws IOException {
    List<MapDelta> out = new ArrayList<>();
    try (RocksIterator it = db.newIterator(changes)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        out.add(Wire.fromProto(io.plb.proto.v1.MapDelta.parseFrom(it.value())));
      }
    } catch (InvalidProtocolBufferException e) {
      throw new IOException("corrupt change history in " + dir + ": " + e.getMessage(), e);
    }
    return out;
  }

  /**
   * Writes one applied entry: the delta's changes (when it has one), the delta itself into the
   * history, and the applied index — atomically.
   *
   * @param delta the change, or null when the entry changed nothing (a rejected command)
   */
  public void writeApplied(long term, long index, MapDelta delta)
      throws IOException {
    writeApplied(term, index, delta, null);
  }

  /**
   * Writes one applied entry as {@link #writeApplied(long, long, MapDelta)} does, with the load
   * history's update (may be null) in the same batch.
   */
  public void writeApplied(long term, long index, MapDelta delta, HistoryUpdate historyUpdate)
      throws IOException {
    writeApplied(term, index, delta, historyUpdate, null);
  }

  /**
   * Writes one applied entry as {@link #writeApplied(long, long, MapDelta, HistoryUpdate)} does,
   * with the balancer's new state (may be null: unchanged) in the same batch.
   */
  public void writeApplied(long term, long index, MapDelta delta, HistoryUpdate historyUpdate,
      BalancerState balancer) throws IOException {
    try (WriteBatch batch = new WriteBatch()) {
      if (balancer != null) {
        batch.put(meta, BALANCER_STATE, io.plb.proto.v1.SetBalancerPausedEntry.newBuilder()
            .setPaused(balancer.paused())
            .setBy(balancer.by())
            .build().toByteArray());
        batch.put(meta, BALANCER_INDEX, longValue(balancer.changedAtIndex()));
      }
      if (historyUpdate != null) {
        writeHistory(batch, historyUpdate);
      }
      if (delta != null) {
        for (long start : delta.removedRangeStarts()) {
          batch.delete(ranges, longKey(start));
        }
        for (RangeEntry r : delta.upsertedRanges()) {
          batch.put(ranges, longKey(r.start()), Wire.toProto(r).toByteArray());
        }
        for (String id : delta.removedServers()) {
          batch.delete(servers, bytes(id));
        }
        for (QueueServerInfo s : delta.upsertedServers()) {
          batch.put(servers, bytes(s.id()), Wire.toProto(s).toByteArray());
        }
        batch.put(changes, longKey(delta.version()), Wire.toProto(delta).toByteArray());
        batch.put(meta, MAP_VERSION, longValue(delta.version()));
      }
      batch.put(meta, APPLIED_INDEX, longValue(index));
      batch.put(meta, APPLIED_TERM, longValue(term));
      db.write(writeOptions, batch);
    } catch (RocksDBException e) {
      throw new IOException("RocksDB write of entry " + index + " failed: " + e.getMessage(), e);
    }
    appliedIndex = index;
    appliedTerm = term;
  }

  // ------------------------------------------------------------------ load history

  private void writeHistory(WriteBatch batch, HistoryUpdate u) throws RocksDBException {
    // A merged coarse bucket never loses a slice, so its rows are overwritten, never left stale.
    putBucket(batch, u.fine());
    putBucket(batch, u.coarse());
    if (u.deleteFineBelow() >= 0) {
      batch.deleteRange(history, prefix(Resolution.FINE, 0), prefix(Resolution.FINE,
          u.deleteFineBelow()));
    }
    if (u.deleteCoarseBelow() >= 0) {
      batch.deleteRange(history, prefix(Resolution.COARSE, 0), prefix(Resolution.COARSE,
          u.deleteCoarseBelow()));
    }
    batch.put(meta, HISTORY_META, toProto(u.next()).toByteArray());
  }

  private void putBucket(WriteBatch batch, LoadBucket b) throws RocksDBException {
    io.plb.proto.v1.LoadBucket header = Wire.toProto(b).toBuilder().clearSlices().build();
    batch.put(history, bucketKey(b.resolution(), b.startMillis()), header.toByteArray());
    for (SliceLoad s : b.slices()) {
      // The slice is in the key; the value holds only the figures.
      batch.put(history, sliceKey(b.resolution(), b.startMillis(), s.slice()),
          Wire.toProto(s).toBuilder().clearSlice().build().toByteArray());
    }
  }

  /** The balancer's committed state (paused or not). */
  public BalancerState loadBalancerState() throws IOException {
    try {
      byte[] v = db.get(meta, BALANCER_STATE);
      if (v == null) {
        return BalancerState.INITIAL;
      }
      io.plb.proto.v1.SetBalancerPausedEntry p = io.plb.proto.v1.SetBalancerPausedEntry.parseFrom(v);
      return new BalancerState(p.getPaused(), p.getBy(), readLong(BALANCER_INDEX));
    } catch (RocksDBException e) {
      throw new IOException("RocksDB read failed: " + e.getMessage(), e);
    }
  }

  /** The load history's state (layout, newest bucket, report watermarks). */
  public HistoryState loadHistoryState() throws IOException {
    try {
      return fromProto(db.get(meta, HISTORY_META));
    } catch (RocksDBException e) {
      throw new IOException("RocksDB read failed: " + e.getMessage(), e);
    }
  }

  /** One whole bucket (every slice), or null when there is none at that start. */
  public LoadBucket readBucket(Resolution r, long start) throws IOException {
    try (RocksIterator it = db.newIterator(history)) {
      it.seek(bucketKey(r, start));
      if (!it.isValid() || !Arrays.equals(it.key(), bucketKey(r, start))) {
        return null;
      }
      return readBucketAt(it, r, start, 0, Ring.SLICES - 1, null);
    } catch (InvalidProtocolBufferException e) {
      throw new IOException("corrupt load history in " + dir + ": " + e.getMessage(), e);
    }
  }

  /** A page of the history, read from one consistent view of the database. */
  public record HistoryPage(HistoryState state, long appliedIndex, List<LoadBucket> buckets,
      long nextFromMillis) {}

  /**
   * The buckets of one resolution starting in {@code [fromMillis, toMillis)} ({@code toMillis} 0:
   * no end), oldest first. Slices {@code firstSlice..lastSlice} are included ({@code firstSlice}
   * -1: none); server totals only of {@code serverId} when it is not empty. The page ends before
   * the bucket that would take it past {@code maxRows} slice rows (but holds at least one bucket);
   * {@code nextFromMillis} is then where the next page starts, else 0.
   */
  public HistoryPage readHistory(Resolution r, long fromMillis, long toMillis, int firstSlice,
      int lastSlice, String serverId, int maxRows) throws IOException {
    Snapshot snapshot = db.getSnapshot();
    try (ReadOptions ro = new ReadOptions().setSnapshot(snapshot);
        RocksIterator it = db.newIterator(history, ro)) {
      HistoryState state = fromProto(db.get(meta, ro, HISTORY_META));
      byte[] applied = db.get(meta, ro, APPLIED_INDEX);
      long index = applied == null ? 0 : ByteBuffer.wrap(applied).getLong();
      List<LoadBucket> out = new ArrayList<>();
      long rows = 0;
      long next = 0;
      it.seek(prefix(r, Math.max(0, fromMillis)));
      while (it.isValid()) {
        byte[] k = it.key();
        if (k[0] != code(r)) {
          break;
        }
        long start = ByteBuffer.wrap(k, 1, 8).getLong();
        if (toMillis > 0 && start >= toMillis) {
          break;
        }
        LoadBucket b = readBucketAt(it, r, start, firstSlice, lastSlice, serverId);
        if (!out.isEmpty() && rows + b.slices().size() > maxRows) {
          next = start;
          break;
        }
        rows += b.slices().size();
        out.add(b);
        it.seek(prefix(r, start + 1));
      }
      return new HistoryPage(state, index, out, next);
    } catch (RocksDBException e) {
      throw new IOException("RocksDB read failed: " + e.getMessage(), e);
    } catch (InvalidProtocolBufferException e) {
      throw new IOException("corrupt load history in " + dir + ": " + e.getMessage(), e);
    } finally {
      db.releaseSnapshot(snapshot);
    }
  }

  /**
   * Reads the bucket whose row the iterator is on (or, if it is not on one, a bucket with no
   * figures), with slices {@code first..last} ({@code first} -1: none). Leaves the iterator
   * anywhere.
   */
  private LoadBucket readBucketAt(RocksIterator it, Resolution r, long start, int first, int last,
      String serverId) throws InvalidProtocolBufferException {
    byte[] k = it.key();
    io.plb.proto.v1.LoadBucket header;
    if (k.length == 10 && k[9] == BUCKET_ROW) {
      header = io.plb.proto.v1.LoadBucket.parseFrom(it.value());
    } else {
      throw new InvalidProtocolBufferException("history row " + Arrays.toString(k)
          + " is not a bucket row");
    }
    if (serverId != null && !serverId.isEmpty()) {
      io.plb.proto.v1.LoadBucket.Builder b = header.toBuilder().clearServers();
      for (io.plb.proto.v1.ServerLoad s : header.getServersList()) {
        if (s.getServerId().equals(serverId)) {
          b.addServers(s);
        }
      }
      header = b.build();
    }
    List<SliceLoad> slices = new ArrayList<>();
    if (first >= 0) {
      byte[] rowPrefix = Arrays.copyOf(bucketKey(r, start), 10);
      rowPrefix[9] = SLICE_ROW;
      for (it.seek(sliceKey(r, start, first)); it.isValid(); it.next()) {
        byte[] sk = it.key();
        if (sk.length != 12 || !Arrays.equals(sk, 0, 10, rowPrefix, 0, 10)) {
          break;
        }
        int slice = ((sk[10] & 0xff) << 8) | (sk[11] & 0xff);
        if (slice > last) {
          break;
        }
        slices.add(Wire.fromProto(io.plb.proto.v1.SliceLoad.parseFrom(it.value()).toBuilder()
            .setSlice(slice).build()));
      }
    }
    LoadBucket b = Wire.fromProto(header);
    return new LoadBucket(b.resolution(), b.startMillis(), b.widthMillis(), b.coveredMillis(),
        b.fineBuckets(), slices, b.hotKeys(), b.servers());
  }

  private static HistoryMeta toProto(HistoryState s) {
    HistoryMeta.Builder b = HistoryMeta.newBuilder()
        .setLastBucketMillis(s.lastBucketMillis())
        .setFineFromMillis(s.fineFromMillis())
        .setCoarseFromMillis(s.coarseFromMillis());
    if (s.layout() != null) {
      b.setLayout(Wire.toProto(s.layout()));
    }
    for (var e : s.watermarks().entrySet()) {
      b.addWatermarks(ReportWatermark.newBuilder().setServerId(e.getKey())
          .setSession(e.getValue().session()).setSeq(e.getValue().seq())
          .setBucketMillis(e.getValue().bucketMillis()));
    }
    return b.build();
  }

  private HistoryState fromProto(byte[] value) throws IOException {
    if (value == null) {
      return HistoryState.EMPTY;
    }
    try {
      HistoryMeta m = HistoryMeta.parseFrom(value);
      TreeMap<String, HistoryState.Watermark> marks = new TreeMap<>();
      for (ReportWatermark w : m.getWatermarksList()) {
        marks.put(w.getServerId(),
            new HistoryState.Watermark(w.getSession(), w.getSeq(), w.getBucketMillis()));
      }
      return new HistoryState(m.hasLayout() ? Wire.fromProto(m.getLayout()) : null,
          m.hasLayout() ? m.getLastBucketMillis() : -1, m.getFineFromMillis(),
          m.getCoarseFromMillis(), marks);
    } catch (InvalidProtocolBufferException e) {
      throw new IOException("corrupt load history state in " + dir + ": " + e.getMessage(), e);
    }
  }

  private static byte code(Resolution r) {
    return r == Resolution.FINE ? (byte) 1 : (byte) 2;
  }

  /** {@code resolution(1) start(8)}: every row of the bucket starts with it. */
  static byte[] prefix(Resolution r, long start) {
    return ByteBuffer.allocate(9).put(code(r)).putLong(start).array();
  }

  static byte[] bucketKey(Resolution r, long start) {
    return ByteBuffer.allocate(10).put(code(r)).putLong(start).put(BUCKET_ROW).array();
  }

  static byte[] sliceKey(Resolution r, long start, int slice) {
    return ByteBuffer.allocate(12).put(code(r)).putLong(start).put(SLICE_ROW)
        .putShort((short) slice).array();
  }

  /** Rows in the history column family (for footprint measurements; walks them all). */
  public long historyRows() {
    long n = 0;
    try (RocksIterator it = db.newIterator(history)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        n++;
      }
    }
    return n;
  }

  /** Deletes the persisted history below {@code version}. */
  public void trimChanges(long version) throws IOException {
    try {
      db.deleteRange(changes, longKey(0), longKey(version));
    } catch (RocksDBException e) {
      throw new IOException("RocksDB trim of the change history failed: " + e.getMessage(), e);
    }
  }

  /**
   * Flushes and writes a consistent copy of the database to {@code target}, which must not exist.
   * SST files are hard-linked, so this is cheap on one filesystem.
   */
  public void checkpoint(Path target) throws IOException {
    try (FlushOptions flush = new FlushOptions().setWaitForFlush(true);
        Checkpoint checkpoint = Checkpoint.create(db)) {
      db.flushWal(true);
      db.flush(flush, List.of(ranges, servers, changes, meta, history));
      checkpoint.createCheckpoint(target.toString());
    } catch (RocksDBException e) {
      throw new IOException("checkpoint to " + target + " failed: " + e.getMessage(), e);
    }
  }

  public Path dir() {
    return dir;
  }

  @Override
  public void close() {
    db.close();
    writeOptions.close();
    cfOptions.close();
    dbOptions.close();
  }

  private long readLong(byte[] key) throws IOException {
    try {
      byte[] v = db.get(meta, key);
      return v == null ? 0L : ByteBuffer.wrap(v).getLong();
    } catch (RocksDBException e) {
      throw new IOException("RocksDB read failed: " + e.getMessage(), e);
    }
  }

  /** Big-endian, so RocksDB's byte order is unsigned numeric order. */
  static byte[] longKey(long v) {
    return ByteBuffer.allocate(8).putLong(v).array();
  }

  private static byte[] longValue(long v) {
    return longKey(v);
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
