package io.plb.server.storage;

import com.google.protobuf.InvalidProtocolBufferException;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.QueueServer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.rocksdb.Checkpoint;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.FlushOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * The RocksDB database of one PLB node (DESIGN §9): one column family per kind of state, and every
 * applied entry written — its changes and the applied index together — in one {@link WriteBatch},
 * so the database is always at exactly one applied entry.
 *
 * <p>Column families: {@code ranges} (8-byte big-endian start → RangeEntry), {@code servers} (id →
 * QueueServer), {@code changes} (8-byte big-endian version → MapDelta, the recent history watchers
 * resume from), {@code meta} (applied term and index, map version).
 *
 * <p>Thread model: written only by the state machine's apply thread; {@link #checkpoint} runs on
 * the same thread. Not thread-safe otherwise.
 */
public final class StateStore implements AutoCloseable {
  private static final byte[] APPLIED_INDEX = bytes("applied.index");
  private static final byte[] APPLIED_TERM = bytes("applied.term");
  private static final byte[] MAP_VERSION = bytes("map.version");

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
            new ColumnFamilyDescriptor(bytes("meta"), cfOptions));
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
    try (WriteBatch batch = new WriteBatch()) {
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
      db.flush(flush, List.of(ranges, servers, changes, meta));
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
