package io.plb.queue.store;

import io.plb.core.time.WallClock;
import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.plb.client.agent.HandoverStore;
import io.plb.client.agent.QueueServerAgent;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.keyspace.Ring;
import io.plb.core.publish.ProducerSequences;
import io.plb.core.publish.ProducerSequences.Changes;
import io.plb.core.publish.ProducerSequences.Verdict;
import io.plb.proto.v1.ProducerSequence;
import io.plb.proto.v1.StoredMessage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import java.util.function.LongPredicate;
import java.util.function.Predicate;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The durable store of the reference queue server: the deliverable queue, the handover buffers
 * and the agent's state, in one RocksDB database.
 *
 * <p><b>Layout.</b> Column family {@code queue}: 8-byte big-endian local sequence number (lsn) →
 * {@link StoredMessage}; a key's messages are delivered in lsn order. Column family {@code
 * buffers}: {@code rangeStart(8) handoverEpoch(8) buffer(1) lsn(8)} → {@link StoredMessage}.
 * Default column family: the agent's state, and per sending server the receipt of the last late
 * batch taken from it. Column family {@code sequences}: what recognises producers' resends
 * ({@link ProducerSequences}): {@code 1 producer} → {@code epoch(8) lastUsedMillis(8)
 * settledBelow(8)}, and
 * {@code 2 producerLength(2) producer key} → {@code epoch(8) hash(8) seq(8)}; every message
 * stored updates it in the same write. Lsns grow across both families, so a buffer keeps arrival order, and a
 * release appends to the queue with fresh lsns in the order it lists buffers.
 * Writes that acknowledge a producer or a transfer are synced ({@code sync}); acknowledgements by
 * consumers are not (losing one redelivers a message, which at-least-once allows).
 *
 * <p><b>In memory</b> (rebuilt from the database on open): per key, the lsns of its queued
 * messages and whether its head is out with a consumer; per ring position, the number of queued
 * messages (for a range's backlog); per buffer, its size; which messages may have been delivered
 * before (released by a consumer that went away, or a key's head when the store was opened), so
 * their next delivery is marked redelivered. Payloads stay on disk. Since start: how long
 * released buffer messages were held ({@link HoldTimes}).
 *
 * <p><b>Thread model.</b> Thread-safe; one monitor guards the in-memory index and every write.
 * It never calls out while holding it, except the ack listener, which is called after the monitor
 * is released. A listener is called only once its write stands (durable and indexed), and what
 * it throws is logged and counted ({@link #listenerFailures}), never passed on: the write's
 * caller would answer a stored publish as failed, and its producer would send it again.
 */
public final class QueueStore implements HandoverStore, AutoCloseable {
  static {
    RocksDB.loadLibrary();
  }

  private static final Logger LOG = LoggerFactory.getLogger(QueueStore.class);
  private static final byte[] AGENT_STATE = "agent.state".getBytes(StandardCharsets.UTF_8);

  /** One key's queue. */
  static final class KeyQueue {
    final ByteString key;
    final long hash;
    final ArrayDeque<Long> lsns = new ArrayDeque<>();
    /** The lsn of the head delivered and not yet acknowledged, or -1. */
    long inFlight = -1;
    /**
     * When the head was accepted (microseconds); after an ack, until the new head is read, that
     * of the acknowledged one — an older time, so the oldest age is never understated.
     */
    long headAcceptedMicros;
    Object holder;

    KeyQueue(ByteString key, long hash) {
      this.key = key;
      this.hash = hash;
    }
  }

  /** A message handed to a consumer, with its key's ring position. */
  public record Delivered(long lsn, StoredMessage message, boolean redelivered, long hash) {}

  private final Path dir;
  private final boolean sync;
  /** Measures hold times against messages' acceptance stamps (wall clock, microseconds). */
  private final WallClock clock;
  private final DBOptions dbOptions;
  private final ColumnFamilyOptions cfOptions;
  private final WriteOptions durable;
  private final WriteOptions lazy;
  private final RocksDB db;
  private final ColumnFamilyHandle meta;
  private final ColumnFamilyHandle queue;
  private final ColumnFamilyHandle buffers;
  private final ColumnFamilyHandle sequenceFamily;
  /** The last seq stored per producer and key; guarded by this store's monitor. */
  private final ProducerSequences<ByteString> sequences = new ProducerSequences<>();

  private final Map<ByteString, KeyQueue> keys = new HashMap<>();
  /** Keys whose head may be delivered now, in the order they became ready. */
  private final LinkedHashSet<KeyQueue> ready = new LinkedHashSet<>();
  /** Queued messages per ring position, keyed by hash ^ MIN so the order is unsigned. */
  private final TreeMap<Long, Integer> queuedAt = new TreeMap<>();
  private final Map<String, Integer> bufferSizes = new HashMap<>();
  private final Set<Long> deliveredBefore = new HashSet<>();
  private final HoldTimes holdTimes = new HoldTimes();
  private long nextLsn;
  private int stepMessages = QueueServerAgent.DEFAULT_CHUNK_MESSAGES;
  private long stepBytes = QueueServerAgent.DEFAULT_CHUNK_BYTES;
  private long queued;
  private long held;
  private long inFlight;
  private volatile LongConsumer ackListener = h -> {};
  private volatile Runnable readyListener = () -> {};
  private final AtomicLong listenerFailures = new AtomicLong();

  /**
   * Test hook, null outside tests: a listener call of a kind ({@code "ready"}, {@code "ack"}) it
   * accepts throws after the listener ran, as a listener failing at its end would.
   */
  static volatile Predicate<String> failListener;

  private QueueStore(Path dir, boolean sync, WallClock clock) throws IOException {
    this.dir = dir;
    this.sync = sync;
    this.clock = clock;
    Files.createDirectories(dir);
    dbOptions = new DBOptions().setCreateIfMissing(true).setCreateMissingColumnFamilies(true);
    cfOptions = new ColumnFamilyOptions();
    durable = new WriteOptions().setSync(sync);
    lazy = new WriteOptions().setSync(false);
    List<ColumnFamilyHandle> handles = new ArrayList<>();
    try {
      db = RocksDB.open(dbOptions, dir.toString(), List.of(
          new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, cfOptions),
          new ColumnFamilyDescriptor("queue".getBytes(StandardCharsets.UTF_8), cfOptions),
          new ColumnFamilyDescriptor("buffers".getBytes(StandardCharsets.UTF_8), cfOptions),
          new ColumnFamilyDescriptor("sequences".getBytes(StandardCharsets.UTF_8), cfOptions)),
          handles);
    } catch (RocksDBException e) {
      throw new IOException("cannot open the queue store at " + dir + ": " + e.getMessage(), e);
    }
    meta = handles.get(0);
    queue = handles.get(1);
    buffers = handles.get(2);
    sequenceFamily = handles.get(3);
    load();
  }

  /** Opens (or creates) the store in {@code dir}; {@code sync} makes acknowledged writes fsync. */
  public static QueueStore open(Path dir, boolean sync) throws IOException {
    return open(dir, sync, WallClock.SYSTEM);
  }

  /** As {@link #open(Path, boolean)}, measuring hold times with {@code clock}. */
  public static QueueStore open(Path dir, boolean sync, WallClock clock) throws IOException {
    return new QueueStore(dir, sync, clock);
  }

  /** Called, outside the store's lock, with the ring position of every acknowledged message. */
  public synchronized void onAck(LongConsumer listener) {
    this.ackListener = listener;
  }

  /** Called, outside the store's lock, whenever a message may have become deliverable. */
  public synchronized void onReady(Runnable listener) {
    this.readyListener = listener;
  }

  /** Listener calls that threw (logged; the writes they followed stand). */
  public long listenerFailures() {
    return listenerFailures.get();
  }

  private void notifyReady() {
    try {
      readyListener.run();
      failpoint("ready");
    } catch (RuntimeException e) {
      listenerFailed("ready", e);
    }
  }

  private void notifyAck(long hash) {
    try {
      ackListener.accept(hash);
      failpoint("ack");
    } catch (RuntimeException e) {
      listenerFailed("ack", e);
    }
  }

  private static void failpoint(String kind) {
    Predicate<String> fail = failListener;
    if (fail != null && fail.test(kind)) {
      throw new IllegalStateException("failpoint: the " + kind + " listener failed");
    }
  }

  private void listenerFailed(String kind, RuntimeException e) {
    long n = listenerFailures.incrementAndGet();
    if (n == 1 || n % 1000 == 0) { // a listener failing on every write must not flood the log
      LOG.error("queue store: the {} listener failed ({} so far); the write it followed stands",
          kind, n, e);
    }
  }

  private void load() throws IOException {
    long maxLsn = 0;
    try (RocksIterator it = db.newIterator(queue)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        long lsn = ByteBuffer.wrap(it.key()).getLong();
        StoredMessage m = parse(it.value());
        index(lsn, m);
        maxLsn = Math.max(maxLsn, lsn);
      }
    }
    // A key's head may have been out with a consumer whose acknowledgement never arrived before
    // the server stopped; it is delivered again, so it is marked redelivered. Only heads can have
    // been out: a key has at most one delivery outstanding, and an acknowledged one is deleted.
    for (KeyQueue q : keys.values()) {
      deliveredBefore.add(q.lsns.peekFirst());
    }
    try (RocksIterator it = db.newIterator(buffers)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        byte[] k = it.key();
        ByteBuffer b = ByteBuffer.wrap(k);
        long range = b.getLong();
        long he = b.getLong();
        int buf = b.get();
        long lsn = b.getLong();
        bufferSizes.merge(bufferName(range, he, Buffer.values()[buf]), 1, Integer::sum);
        held++;
        maxLsn = Math.max(maxLsn, lsn);
      }
    }
    nextLsn = maxLsn + 1;
    loadSequences();
  }

  private void loadSequences() throws IOException {
    List<byte[]> stale = new ArrayList<>();
    try (RocksIterator it = db.newIterator(sequenceFamily)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        byte[] k = it.key();
        ByteBuffer v = ByteBuffer.wrap(it.value());
        if (k[0] == PRODUCER_ROW) {
          sequences.restoreProducer(new String(k, 1, k.length - 1, StandardCharsets.UTF_8),
              v.getLong(), v.getLong(), v.getLong());
        } else {
          int n = ByteBuffer.wrap(k, 1, 2).getShort() & 0xffff;
          String producer = new String(k, 3, n, StandardCharsets.UTF_8);
          ByteString key = ByteString.copyFrom(k, 3 + n, k.length - 3 - n);
          long epoch = v.getLong();
          long hash = v.getLong();
          if (!sequences.restoreEntry(
              new ProducerSequences.Entry<>(producer, epoch, key, hash, v.getLong()))) {
            stale.add(k);
          }
        }
      }
    }
    try (WriteBatch batch = new WriteBatch()) {
      for (byte[] k : stale) {
        batch.delete(sequenceFamily, k);
      }
      db.write(durable, batch);
    } catch (RocksDBException e) {
      throw new IOException("cannot clean the producer sequences: " + e.getMessage(), e);
    }
  }

  // ------------------------------------------------------------------ publish

  /** Where one accepted message goes. */
  public record Placed(StoredMessage message, long hash, Buffer buffer, long rangeStart,
      long handoverEpoch) {
    /** A message for the deliverable queue. */
    public static Placed queue(StoredMessage m, long hash) {
      return new Placed(m, hash, null, 0, 0);
    }
  }

  /** Appends accepted messages, in order, in one durable write. */
  public void append(List<Placed> messages) {
    if (messages.isEmpty()) {
      return;
    }
    append(messages, null, null);
  }

  /** Appends messages and, if {@code metaKey} is set, puts that record, in one durable write. */
  private void append(List<Placed> messages, byte[] metaKey, byte[] metaValue) {
    boolean becameReady = false;
    synchronized (this) {
      try (WriteBatch batch = new WriteBatch()) {
        if (metaKey != null) {
          batch.put(meta, metaKey, metaValue);
        }
        long lsn = nextLsn;
        Changes<ByteString> changes = new Changes<>();
        for (Placed p : messages) {
          byte[] value = p.message().toByteArray();
          if (p.buffer() == null) {
            batch.put(queue, lsnKey(lsn), value);
          } else {
            batch.put(buffers, bufferKey(p.rangeStart(), p.handoverEpoch(), p.buffer(), lsn),
                value);
          }
          storedSequence(p.message(), changes);
          lsn++;
        }
        write(batch, changes);
        db.write(durable, batch);
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
      }
      for (Placed p : messages) {
        long lsn = nextLsn++;
        if (p.buffer() == null) {
          becameReady |= index(lsn, p.message());
        } else {
          bufferSizes.merge(bufferName(p.rangeStart(), p.handoverEpoch(), p.buffer()), 1,
              Integer::sum);
          held++;
        }
      }
    }
    if (becameReady) {
      notifyReady();
    }
  }

  /**
   * Indexes messages released from handover buffers into the queue, in order, and records how
   * long each was held; true if some key became ready. Locked.
   */
  private boolean indexReleased(List<StoredMessage> moved) {
    boolean becameReady = false;
    long now = clock.micros();
    for (StoredMessage m : moved) {
      becameReady |= index(nextLsn++, m);
      if (m.getAcceptedAtMicros() > 0) {
        holdTimes.record(now - m.getAcceptedAtMicros());
      }
    }
    return becameReady;
  }

  /** Adds a queued message to the in-memory index; true if its key became ready. Locked. */
  private boolean index(long lsn, StoredMessage m) {
    KeyQueue q = keys.get(m.getKey());
    if (q == null) {
      q = new KeyQueue(m.getKey(), KeyHash.hash(m.getKey().toByteArray()));
      keys.put(m.getKey(), q);
    }
    if (q.lsns.isEmpty()) {
      q.headAcceptedMicros = m.getAcceptedAtMicros();
    }
    q.lsns.addLast(lsn);
    queuedAt.merge(q.hash ^ Long.MIN_VALUE, 1, Integer::sum);
    queued++;
    if (q.inFlight < 0 && q.lsns.size() == 1) {
      ready.add(q);
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ producer sequences

  private static final byte PRODUCER_ROW = 1;
  private static final byte ENTRY_ROW = 2;

  /** Whether a message about to be stored was stored before, or is from a fenced instance. */
  public synchronized Verdict checkSequence(String producer, long epoch, ByteString key,
      long seq) {
    return sequences.check(producer, epoch, key, seq);
  }

  /** Whether storing this message would add an entry to the sequences kept. */
  public synchronized boolean wouldAddSequence(String producer, long epoch, ByteString key) {
    return sequences.wouldAdd(producer, epoch, key);
  }

  /** Entries kept to recognise resends (one per producer and key). */
  public synchronized int sequenceCount() {
    return sequences.size();
  }

  /**
   * The producer instance settled every message below {@code settledBelow}: forgets the entries
   * that only served to recognise their resends, but those of keys {@code keep} accepts (in a
   * range in a handover here: its transfer must still carry them). Not synced: an entry that comes back after a
   * crash is only kept longer.
   */
  public synchronized void settled(String producer, long epoch, long settledBelow,
      LongPredicate keep) {
    Changes<ByteString> changes = new Changes<>();
    sequences.settled(producer, epoch, settledBelow, clock.micros() / 1000, keep, changes);
    writeLazily(changes);
  }

  /** Forgets every producer that stored and settled nothing for {@code idleMillis}. */
  public synchronized int expireSequences(long idleMillis) {
    int before = sequences.size();
    Changes<ByteString> changes = new Changes<>();
    sequences.expire(clock.micros() / 1000 - idleMillis, changes);
    writeLazily(changes);
    return before - sequences.size();
  }

  @Override
  public synchronized List<ProducerSequence> sequencesIn(long start, long end) {
    List<ProducerSequence> out = new ArrayList<>();
    for (ProducerSequences.Entry<ByteString> e : sequences.entriesIn(start, end)) {
      out.add(ProducerSequence.newBuilder().setProducer(e.producer()).setEpoch(e.epoch())
          .setKey(e.key()).setSeq(e.seq()).build());
    }
    return out;
  }

  @Override
  public synchronized void mergeSequences(List<ProducerSequence> arrived, long rangeStart,
      long handoverEpoch, Buffer buffer) {
    if (arrived.isEmpty()) {
      return;
    }
    long now = clock.micros() / 1000;
    ProducerSequences<ByteString> theirs = new ProducerSequences<>();
    Changes<ByteString> changes = new Changes<>();
    for (ProducerSequence q : arrived) {
      long hash = KeyHash.hash(q.getKey().toByteArray());
      sequences.merge(new ProducerSequences.Entry<>(q.getProducer(), q.getEpoch(), q.getKey(),
          hash, q.getSeq(), false), now, changes);
      theirs.stored(q.getProducer(), q.getEpoch(), q.getKey(), hash, q.getSeq(), now,
          new Changes<>());
    }
    List<byte[]> resends = new ArrayList<>();
    if (buffer != null) {
      scanBuffer(rangeStart, handoverEpoch, buffer, -1, (k, v) -> {
        StoredMessage m = parse(v);
        if (theirs.check(m.getProducer(), m.getProducerEpoch(), m.getKey(), m.getSeq())
            == Verdict.DUPLICATE) {
          resends.add(k);
        }
        return true;
      });
    }
    try (WriteBatch batch = new WriteBatch()) {
      write(batch, changes);
      for (byte[] k : resends) {
        batch.delete(buffers, k);
      }
      db.write(durable, batch);
    } catch (RocksDBException e) {
      throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
    }
    if (!resends.isEmpty()) {
      bufferSizes.computeIfPresent(bufferName(rangeStart, handoverEpoch, buffer),
          (k, n) -> n == resends.size() ? null : n - resends.size());
      held -= resends.size();
    }
  }

  /** Notes a stored message in the sequences kept. Locked. */
  private void storedSequence(StoredMessage m, Changes<ByteString> changes) {
    if (m.getProducerEpoch() != 0) {
      sequences.stored(m.getProducer(), m.getProducerEpoch(), m.getKey(),
          KeyHash.hash(m.getKey().toByteArray()), m.getSeq(), clock.micros() / 1000, changes);
    }
  }

  private void writeLazily(Changes<ByteString> changes) {
    if (changes.isEmpty()) {
      return;
    }
    try (WriteBatch batch = new WriteBatch()) {
      write(batch, changes);
      db.write(lazy, batch);
    } catch (RocksDBException e) {
      throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
    }
  }

  /** Adds the changes to the sequences kept to {@code batch}, in order. */
  private void write(WriteBatch batch, Changes<ByteString> changes) throws RocksDBException {
    for (ProducerSequences.Change<ByteString> c : changes.list()) {
      if (c instanceof ProducerSequences.PutEntry<ByteString> put) {
        ProducerSequences.Entry<ByteString> e = put.entry();
        batch.put(sequenceFamily, entryRow(e.producer(), e.key()), ByteBuffer.allocate(24)
            .putLong(e.epoch()).putLong(e.hash()).putLong(e.seq()).array());
      } else if (c instanceof ProducerSequences.DeleteEntry<ByteString> del) {
        batch.delete(sequenceFamily, entryRow(del.producer(), del.key()));
      } else if (c instanceof ProducerSequences.PutProducer<ByteString> put) {
        batch.put(sequenceFamily, producerRow(put.producer()), ByteBuffer.allocate(24)
            .putLong(put.epoch()).putLong(put.lastUsedMillis()).putLong(put.settledBelow())
            .array());
      } else if (c instanceof ProducerSequences.DeleteProducer<ByteString> del) {
        batch.delete(sequenceFamily, producerRow(del.producer()));
      }
    }
  }

  private static byte[] producerRow(String producer) {
    byte[] p = producer.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(1 + p.length).put(PRODUCER_ROW).put(p).array();
  }

  private static byte[] entryRow(String producer, ByteString key) {
    byte[] p = producer.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(3 + p.length + key.size()).put(ENTRY_ROW)
        .putShort((short) p.length).put(p).put(key.asReadOnlyByteBuffer()).array();
  }

  // ------------------------------------------------------------------ delivery

  /**
   * Takes up to {@code max} deliverable heads for {@code holder} (one per key, at most one
   * outstanding per key across all holders), of keys at ring positions {@code owned} accepts:
   * what is queued of a range this server no longer owns stays for the agent to hand over.
   */
  public List<Delivered> take(Object holder, int max, LongPredicate owned) {
    List<Delivered> out = new ArrayList<>();
    synchronized (this) {
      var it = ready.iterator();
      while (out.size() < max && it.hasNext()) {
        KeyQueue q = it.next();
        if (!owned.test(q.hash)) {
          continue; // a range this server lost: the agent hands it to the owner as late
        }
        it.remove();
        long lsn = q.lsns.peekFirst();
        byte[] value;
        try {
          value = db.get(queue, lsnKey(lsn));
        } catch (RocksDBException e) {
          throw new IllegalStateException("queue store read failed: " + e.getMessage(), e);
        }
        q.inFlight = lsn;
        q.holder = holder;
        inFlight++;
        StoredMessage m = parse(value);
        q.headAcceptedMicros = m.getAcceptedAtMicros();
        out.add(new Delivered(lsn, m, deliveredBefore.contains(lsn), q.hash));
      }
    }
    return out;
  }

  /**
   * A consumer acknowledged delivery {@code lsn}: the message leaves the queue. An ack for a
   * delivery this holder does not hold (already acked, or redelivered elsewhere) is ignored.
   *
   * @return whether it was acknowledged now
   */
  public boolean ack(Object holder, long lsn, ByteString key) {
    long hash;
    boolean becameReady;
    synchronized (this) {
      KeyQueue q = keys.get(key);
      if (q == null || q.inFlight != lsn || q.holder != holder) {
        return false;
      }
      try {
        db.delete(queue, lazy, lsnKey(lsn));
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store delete failed: " + e.getMessage(), e);
      }
      q.lsns.pollFirst();
      q.inFlight = -1;
      q.holder = null;
      inFlight--;
      queued--;
      deliveredBefore.remove(lsn);
      queuedAt.compute(q.hash ^ Long.MIN_VALUE, (k, n) -> n == 1 ? null : n - 1);
      becameReady = !q.lsns.isEmpty();
      if (becameReady) {
        ready.add(q);
      } else {
        keys.remove(key);
      }
      hash = q.hash;
    }
    notifyAck(hash);
    if (becameReady) {
      notifyReady();
    }
    return true;
  }

  /** A consumer went away: what it held goes back to be delivered again, marked redelivered. */
  public void releaseHolder(Object holder, List<Long> lsns, List<ByteString> keysHeld) {
    boolean any = false;
    synchronized (this) {
      for (int i = 0; i < lsns.size(); i++) {
        KeyQueue q = keys.get(keysHeld.get(i));
        if (q != null && q.inFlight == lsns.get(i) && q.holder == holder) {
          q.inFlight = -1;
          q.holder = null;
          inFlight--;
          deliveredBefore.add(lsns.get(i));
          ready.add(q);
          any = true;
        }
      }
    }
    if (any) {
      notifyReady();
    }
  }

  // ------------------------------------------------------------------ HandoverStore

  @Override
  public synchronized long backlog(long start, long end) {
    long lo = start ^ Long.MIN_VALUE;
    Map<Long, Integer> sub = end == 0 ? queuedAt.tailMap(lo, true)
        : queuedAt.subMap(lo, true, end ^ Long.MIN_VALUE, false);
    long n = 0;
    for (int c : sub.values()) {
      n += c;
    }
    return n;
  }

  @Override
  public synchronized Chunk readChunk(long rangeStart, long handoverEpoch, List<Buffer> list,
      byte[] cursor, int maxMessages, long maxBytes) {
    int from = 0;
    long afterLsn = -1;
    if (cursor.length == CURSOR_BYTES) {
      ByteBuffer c = ByteBuffer.wrap(cursor);
      int ordinal = c.get();
      from = ordinal >= 0 && ordinal < Buffer.values().length
          ? list.indexOf(Buffer.values()[ordinal]) : -1;
      afterLsn = c.getLong();
    }
    if (from < 0 || cursor.length != 0 && cursor.length != CURSOR_BYTES) {
      throw new IllegalArgumentException("not a transfer cursor of buffers " + list);
    }
    List<StoredMessage> out = new ArrayList<>();
    long[] bytes = {0};
    byte[][] last = {cursor};
    boolean[] full = {false};
    for (int i = from; i < list.size() && !full[0]; i++) {
      Buffer b = list.get(i);
      long after = i == from ? afterLsn : -1;
      scanBuffer(rangeStart, handoverEpoch, b, after, (k, v) -> {
        if (out.size() >= maxMessages || !out.isEmpty() && bytes[0] + v.length > maxBytes) {
          full[0] = true;
          return false;
        }
        out.add(parse(v));
        bytes[0] += v.length;
        last[0] = cursor(b, ByteBuffer.wrap(k, 17, 8).getLong());
        return true;
      });
    }
    return new Chunk(out, last[0], !full[0]);
  }

  /** A transfer cursor: the buffer and the lsn of the last message sent. */
  private static final int CURSOR_BYTES = 9;

  private static byte[] cursor(Buffer b, long lsn) {
    return ByteBuffer.allocate(CURSOR_BYTES).put((byte) b.ordinal()).putLong(lsn).array();
  }

  @Override
  public synchronized Progress transferProgress(long rangeStart, long handoverEpoch,
      Buffer into) {
    try {
      byte[] v = db.get(meta, progressKey(rangeStart, handoverEpoch, into));
      if (v == null) {
        return Progress.NONE;
      }
      ByteBuffer b = ByteBuffer.wrap(v);
      long chunks = b.getLong();
      boolean complete = b.get() != 0;
      byte[] cursor = new byte[b.remaining()];
      b.get(cursor);
      return new Progress(chunks, cursor, complete);
    } catch (RocksDBException e) {
      throw new IllegalStateException("reading a transfer's progress failed: " + e.getMessage(),
          e);
    }
  }

  @Override
  public void storeChunk(long rangeStart, long handoverEpoch, Buffer into,
      List<StoredMessage> messages, Progress progress) {
    byte[] value = ByteBuffer.allocate(9 + progress.cursor().length).putLong(progress.chunks())
        .put((byte) (progress.complete() ? 1 : 0)).put(progress.cursor()).array();
    List<Placed> placed = new ArrayList<>(messages.size());
    for (StoredMessage m : messages) {
      placed.add(new Placed(m, 0, into, rangeStart, handoverEpoch));
    }
    append(placed, progressKey(rangeStart, handoverEpoch, into), value);
  }

  /** Where the progress of a transfer received into {@code into} is kept (default family). */
  private static byte[] progressKey(long rangeStart, long he, Buffer into) {
    return ByteBuffer.allocate(PROGRESS.length + 17).put(PROGRESS).putLong(rangeStart).putLong(he)
        .put((byte) into.ordinal()).array();
  }

  private static final byte[] PROGRESS = "xfer.".getBytes(StandardCharsets.UTF_8);
  /** Ids already moved by a release that runs in steps (default family), per handover. */
  private static final byte[] RELEASED = "rel.".getBytes(StandardCharsets.UTF_8);

  private static byte[] releasedPrefix(long rangeStart, long he) {
    return ByteBuffer.allocate(RELEASED.length + 16).put(RELEASED).putLong(rangeStart).putLong(he)
        .array();
  }

  @Override
  public synchronized void forgetTransfers(long rangeStart, long handoverEpoch) {
    try (WriteBatch batch = new WriteBatch()) {
      forgetTransfers(batch, rangeStart, handoverEpoch);
      db.write(lazy, batch);
    } catch (RocksDBException e) {
      throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
    }
  }

  /** Deletes a handover's transfer progress and release marks. Locked. */
  private void forgetTransfers(WriteBatch batch, long rangeStart, long he)
      throws RocksDBException {
    batch.delete(meta, progressKey(rangeStart, he, Buffer.PREFIX));
    batch.delete(meta, progressKey(rangeStart, he, Buffer.RETURNED));
    byte[] from = releasedPrefix(rangeStart, he);
    batch.deleteRange(meta, from, prefixEnd(from));
  }

  /** The smallest key above every key that starts with {@code prefix} (no prefix is all 0xff). */
  private static byte[] prefixEnd(byte[] prefix) {
    byte[] end = prefix.clone();
    for (int i = end.length - 1; i >= 0; i--) {
      if (end[i] != (byte) 0xff) {
        end[i]++;
        return java.util.Arrays.copyOf(end, i + 1);
      }
    }
    throw new IllegalArgumentException("no key follows an all-0xff prefix");
  }

  @Override
  public void release(long rangeStart, long handoverEpoch, List<Buffer> list) {
    move(rangeStart, handoverEpoch, list);
  }

  @Override
  public synchronized List<BufferedHandover> bufferedHandovers() {
    TreeSet<BufferedHandover> out = new TreeSet<>(BY_RANGE_THEN_EPOCH);
    for (Map.Entry<String, Integer> e : bufferSizes.entrySet()) {
      if (e.getValue() > 0) {
        String[] parts = e.getKey().split("/");
        out.add(new BufferedHandover(Long.parseLong(parts[0]), Long.parseLong(parts[1])));
      }
    }
    return new ArrayList<>(out);
  }

  private static final java.util.Comparator<BufferedHandover> BY_RANGE_THEN_EPOCH =
      java.util.Comparator.comparing(BufferedHandover::rangeStart, Long::compareUnsigned)
          .thenComparing(BufferedHandover::handoverEpoch, Long::compareUnsigned);

  /** The order a release lists a handover's buffers in: a source's, then a target's. */
  private static final List<Buffer> RELEASE_ORDER = List.of(Buffer.HOLD, Buffer.PREFIX,
      Buffer.RETURNED, Buffer.HELD, Buffer.POST_ABORT);

  @Override
  public synchronized List<Held> buffered(long rangeStart, long handoverEpoch, int max,
      long maxBytes) {
    List<Held> out = new ArrayList<>();
    long[] bytes = {0};
    for (Buffer b : RELEASE_ORDER) {
      if (out.size() >= max) {
        break;
      }
      boolean[] full = {false};
      scanBuffer(rangeStart, handoverEpoch, b, -1, (k, v) -> {
        if (out.size() >= max || !out.isEmpty() && bytes[0] + v.length > maxBytes) {
          full[0] = true;
          return false;
        }
        bytes[0] += v.length;
        StoredMessage m = parse(v);
        out.add(new Held(m, KeyHash.hash(m.getKey().toByteArray()), rangeStart,
            handoverEpoch, b, ByteBuffer.wrap(k, 17, 8).getLong()));
        return true;
      });
      if (full[0]) {
        break;
      }
    }
    return out;
  }

  /**
   * Key by key (each key's messages in its order; late messages keep no order across keys), so
   * only what is returned is read: the backlog of a lost range may be far larger than a batch.
   */
  @Override
  public synchronized List<Held> queued(long start, long end, int max, long maxBytes) {
    List<Held> out = new ArrayList<>();
    long bytes = 0;
    for (KeyQueue q : keys.values()) {
      if (!Ring.contains(start, end, q.hash)) {
        continue;
      }
      for (long lsn : q.lsns) {
        if (out.size() >= max) {
          return out;
        }
        try {
          byte[] v = db.get(queue, lsnKey(lsn));
          if (!out.isEmpty() && bytes + v.length > maxBytes) {
            return out;
          }
          bytes += v.length;
          out.add(new Held(parse(v), q.hash, 0, 0, null, lsn));
        } catch (RocksDBException e) {
          throw new IllegalStateException("queue store read failed: " + e.getMessage(), e);
        }
      }
    }
    return out;
  }

  @Override
  public void drop(List<Held> copies) {
    boolean becameReady = false;
    synchronized (this) {
      List<Held> present = present(copies);
      if (present.isEmpty()) {
        return;
      }
      try (WriteBatch batch = new WriteBatch()) {
        for (Held h : present) {
          batch.delete(h.buffer() == null ? queue : buffers, keyOf(h));
        }
        db.write(durable, batch);
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store drop failed: " + e.getMessage(), e);
      }
      for (Held h : present) {
        becameReady |= unindex(h);
      }
      forgetEmptied(present);
    }
    if (becameReady) {
      notifyReady();
    }
  }

  @Override
  public void requeueLate(List<Held> copies) {
    boolean becameReady = false;
    synchronized (this) {
      List<Held> present = new ArrayList<>();
      for (Held h : present(copies)) {
        if (h.buffer() != null) {
          present.add(h);
        }
      }
      if (present.isEmpty()) {
        return;
      }
      List<StoredMessage> moved = new ArrayList<>();
      Set<String> ids = new HashSet<>();
      try (WriteBatch batch = new WriteBatch()) {
        long lsn = nextLsn;
        for (Held h : present) {
          batch.delete(buffers, keyOf(h));
          if (ids.add(h.id())) {
            StoredMessage m = h.message().toBuilder().setLate(true).build();
            moved.add(m);
            batch.put(queue, lsnKey(lsn++), m.toByteArray());
          }
        }
        db.write(durable, batch);
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store requeue failed: " + e.getMessage(), e);
      }
      for (Held h : present) {
        unindex(h);
      }
      forgetEmptied(present);
      becameReady |= indexReleased(moved);
    }
    if (becameReady) {
      notifyReady();
    }
  }

  /**
   * Deletes the transfer progress of handovers whose buffers these copies emptied: nothing can
   * resume into them any more (their handovers are over here). Locked.
   */
  private void forgetEmptied(List<Held> copies) {
    Set<BufferedHandover> emptied = new HashSet<>();
    for (Held h : copies) {
      if (h.buffer() != null && held(h.rangeStart(), h.handoverEpoch()) == 0) {
        emptied.add(new BufferedHandover(h.rangeStart(), h.handoverEpoch()));
      }
    }
    if (emptied.isEmpty()) {
      return;
    }
    try (WriteBatch batch = new WriteBatch()) {
      for (BufferedHandover h : emptied) {
        forgetTransfers(batch, h.rangeStart(), h.handoverEpoch());
      }
      db.write(lazy, batch);
    } catch (RocksDBException e) {
      throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
    }
  }

  /** The copies still stored (a consumer may have acknowledged a queued one meanwhile). */
  private List<Held> present(List<Held> copies) {
    List<Held> out = new ArrayList<>();
    Set<Long> seen = new HashSet<>();
    for (Held h : copies) {
      if (!seen.add(h.position())) {
        continue;
      }
      if (h.buffer() == null) {
        KeyQueue q = keys.get(h.message().getKey());
        if (q != null && q.lsns.contains(h.position())) {
          out.add(h);
        }
      } else {
        try {
          if (db.get(buffers, keyOf(h)) != null) {
            out.add(h);
          }
        } catch (RocksDBException e) {
          throw new IllegalStateException("queue store read failed: " + e.getMessage(), e);
        }
      }
    }
    return out;
  }

  private static byte[] keyOf(Held h) {
    return h.buffer() == null ? lsnKey(h.position())
        : bufferKey(h.rangeStart(), h.handoverEpoch(), h.buffer(), h.position());
  }

  /** Takes a deleted copy out of the in-memory index; true if its key became ready. Locked. */
  private boolean unindex(Held h) {
    if (h.buffer() != null) {
      bufferSizes.computeIfPresent(bufferName(h.rangeStart(), h.handoverEpoch(), h.buffer()),
          (k, n) -> n == 1 ? null : n - 1);
      held--;
      return false;
    }
    long lsn = h.position();
    KeyQueue q = keys.get(h.message().getKey());
    if (q == null || !q.lsns.remove(lsn)) {
      return false;
    }
    queued--;
    deliveredBefore.remove(lsn);
    queuedAt.compute(q.hash ^ Long.MIN_VALUE, (k, n) -> n == 1 ? null : n - 1);
    if (q.inFlight == lsn) {
      // Out with a consumer: its acknowledgement will find nothing; the owner delivers it.
      q.inFlight = -1;
      q.holder = null;
      inFlight--;
    }
    if (q.lsns.isEmpty()) {
      keys.remove(h.message().getKey());
      ready.remove(q);
      return false;
    }
    return q.inFlight < 0 && ready.add(q);
  }

  @Override
  public synchronized OptionalLong nextQueuedHash(long from) {
    // queuedAt holds only hashes with messages (an entry goes when its count reaches 0).
    Long k = queuedAt.ceilingKey(from ^ Long.MIN_VALUE);
    return k == null ? OptionalLong.empty() : OptionalLong.of(k ^ Long.MIN_VALUE);
  }

  /**
   * Buffers to the back of the queue, in this order, in steps of at most {@code stepMessages}
   * messages and {@code stepBytes} bytes, each one durable write, so a release of any size holds
   * one step in memory. A message id moves once: each step records the ids it moved (default
   * family, per handover) in its write and looks earlier ones up there, which keeps the
   * de-duplication across steps and across a crash between them; a call repeated after such a
   * crash moves what is left. The marks are deleted once everything is moved. The store's
   * monitor is let go between steps (a consumer may take what is moved already); the agent's
   * lock keeps arrivals out of the queue until the call returns.
   */
  private void move(long rangeStart, long handoverEpoch, List<Buffer> list) {
    byte[] marks = releasedPrefix(rangeStart, handoverEpoch);
    for (Buffer b : list) {
      long after = -1;
      while (after != Long.MIN_VALUE) {
        boolean becameReady = false;
        synchronized (this) {
          List<byte[]> oldKeys = new ArrayList<>();
          List<byte[]> values = new ArrayList<>();
          long[] bytes = {0};
          scanBuffer(rangeStart, handoverEpoch, b, after, (k, v) -> {
            if (oldKeys.size() >= stepMessages
                || !oldKeys.isEmpty() && bytes[0] + v.length > stepBytes) {
              return false;
            }
            oldKeys.add(k);
            values.add(v);
            bytes[0] += v.length;
            return true;
          });
          if (oldKeys.isEmpty()) {
            after = Long.MIN_VALUE; // this buffer is done
            continue;
          }
          List<StoredMessage> moved = new ArrayList<>();
          Set<String> ids = new HashSet<>();
          try (WriteBatch batch = new WriteBatch()) {
            long lsn = nextLsn;
            for (int i = 0; i < oldKeys.size(); i++) {
              batch.delete(buffers, oldKeys.get(i));
              StoredMessage m = parse(values.get(i));
              String id = HandoverStore.messageId(m);
              byte[] mark = concat(marks, id.getBytes(StandardCharsets.UTF_8));
              if (ids.add(id) && db.get(meta, mark) == null) {
                moved.add(m);
                batch.put(queue, lsnKey(lsn++), values.get(i));
                batch.put(meta, mark, new byte[0]);
              }
            }
            db.write(durable, batch);
          } catch (RocksDBException e) {
            throw new IllegalStateException("queue store release failed: " + e.getMessage(), e);
          }
          bufferSizes.computeIfPresent(bufferName(rangeStart, handoverEpoch, b),
              (k, n) -> n <= oldKeys.size() ? null : n - oldKeys.size());
          held -= oldKeys.size();
          after = ByteBuffer.wrap(oldKeys.get(oldKeys.size() - 1), 17, 8).getLong();
          becameReady = indexReleased(moved);
        }
        if (becameReady) {
          notifyReady();
        }
      }
    }
    synchronized (this) {
      try (WriteBatch batch = new WriteBatch()) {
        byte[] from = releasedPrefix(rangeStart, handoverEpoch);
        batch.deleteRange(meta, from, prefixEnd(from));
        db.write(durable, batch);
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store release failed: " + e.getMessage(), e);
      }
    }
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  /**
   * The most messages and bytes one step of a release moves (see {@link #move}); by default
   * those of a transfer chunk.
   */
  public synchronized void releaseStep(int messages, long bytes) {
    if (messages < 1 || bytes < 1) {
      throw new IllegalArgumentException("a release step needs at least one message and byte");
    }
    this.stepMessages = messages;
    this.stepBytes = bytes;
  }

  @Override
  public synchronized void discard(long rangeStart, long handoverEpoch, List<Buffer> list) {
    try (WriteBatch batch = new WriteBatch()) {
      for (Buffer b : list) {
        byte[] from = bufferKey(rangeStart, handoverEpoch, b, 0);
        byte[] to = bufferKey(rangeStart, handoverEpoch, b, -1);
        batch.deleteRange(buffers, from, to);
        batch.delete(buffers, to);
      }
      db.write(durable, batch);
    } catch (RocksDBException e) {
      throw new IllegalStateException("queue store discard failed: " + e.getMessage(), e);
    }
    for (Buffer b : list) {
      Integer n = bufferSizes.remove(bufferName(rangeStart, handoverEpoch, b));
      held -= n == null ? 0 : n;
    }
  }

  @Override
  public void queueLate(List<StoredMessage> messages, String fromServer, byte[] receipt) {
    boolean becameReady = false;
    synchronized (this) {
      List<StoredMessage> late = new ArrayList<>(messages.size());
      try (WriteBatch batch = new WriteBatch()) {
        long lsn = nextLsn;
        Changes<ByteString> changes = new Changes<>();
        for (StoredMessage m : messages) {
          StoredMessage l = m.toBuilder().setLate(true).build();
          late.add(l);
          batch.put(queue, lsnKey(lsn++), l.toByteArray());
          storedSequence(m, changes);
        }
        write(batch, changes);
        batch.put(meta, lateReceiptKey(fromServer), receipt);
        db.write(durable, batch);
      } catch (RocksDBException e) {
        throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
      }
      for (StoredMessage l : late) {
        becameReady |= index(nextLsn++, l);
      }
    }
    if (becameReady) {
      notifyReady();
    }
  }

  @Override
  public int markQueuedLate(long start, long end) {
    List<Long> lsns = new ArrayList<>();
    synchronized (this) {
      for (KeyQueue q : keys.values()) {
        if (Ring.contains(start, end, q.hash)) {
          lsns.addAll(q.lsns);
        }
      }
    }
    int marked = 0;
    // In steps, each one durable write, so a large backlog is not one huge batch; a message
    // acknowledged meanwhile is gone and skipped.
    for (int from = 0; from < lsns.size(); from += 1024) {
      synchronized (this) {
        try (WriteBatch batch = new WriteBatch()) {
          for (long lsn : lsns.subList(from, Math.min(lsns.size(), from + 1024))) {
            byte[] v = db.get(queue, lsnKey(lsn));
            if (v == null) {
              continue;
            }
            StoredMessage m = parse(v);
            if (!m.getLate()) {
              batch.put(queue, lsnKey(lsn), m.toBuilder().setLate(true).build().toByteArray());
              marked++;
            }
          }
          db.write(durable, batch);
        } catch (RocksDBException e) {
          throw new IllegalStateException("queue store write failed: " + e.getMessage(), e);
        }
      }
    }
    return marked;
  }

  @Override
  public synchronized byte[] lateReceipt(String fromServer) {
    try {
      byte[] v = db.get(meta, lateReceiptKey(fromServer));
      return v == null ? new byte[0] : v;
    } catch (RocksDBException e) {
      throw new IllegalStateException("reading a late receipt failed: " + e.getMessage(), e);
    }
  }

  private static byte[] lateReceiptKey(String fromServer) {
    return ("late.receipt." + fromServer).getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public synchronized void saveAgentState(byte[] state) {
    try {
      db.put(meta, durable, AGENT_STATE, state);
    } catch (RocksDBException e) {
      throw new IllegalStateException("saving the agent state failed: " + e.getMessage(), e);
    }
  }

  @Override
  public synchronized byte[] loadAgentState() {
    try {
      byte[] v = db.get(meta, AGENT_STATE);
      return v == null ? new byte[0] : v;
    } catch (RocksDBException e) {
      throw new IllegalStateException("reading the agent state failed: " + e.getMessage(), e);
    }
  }

  // ------------------------------------------------------------------ figures

  /**
   * The load gauges per slice (DESIGN §6): for every slice with queued messages (delivered but
   * unacknowledged ones included; messages in handover buffers are not), how many there are and
   * how long the oldest has waited since it was accepted, as of {@code nowMillis}. Walks the key
   * index once under the store's lock — O(keys with queued messages) — so it is meant for one call
   * per load report. An age may be overstated until a key's new head is delivered (never
   * understated).
   */
  public void sampleSlices(long nowMillis, io.plb.core.load.SliceLoadAccumulator.GaugeSink sink) {
    long[] depth = new long[Ring.SLICES];
    long[] oldest = new long[Ring.SLICES];
    java.util.Arrays.fill(oldest, Long.MAX_VALUE);
    synchronized (this) {
      for (KeyQueue q : keys.values()) {
        if (q.lsns.isEmpty()) {
          continue;
        }
        int s = Ring.sliceOf(q.hash);
        depth[s] += q.lsns.size();
        oldest[s] = Math.min(oldest[s], q.headAcceptedMicros);
      }
    }
    for (int s = 0; s < Ring.SLICES; s++) {
      if (depth[s] > 0) {
        sink.slice(s, depth[s], Math.max(0, nowMillis - oldest[s] / 1000));
      }
    }
  }

  public synchronized long queued() {
    return queued;
  }

  public synchronized long held() {
    return held;
  }

  public synchronized long inFlight() {
    return inFlight;
  }

  /** Messages in the buffers of one handover, by buffer. */
  public synchronized long held(long rangeStart, long handoverEpoch) {
    long n = 0;
    for (Buffer b : Buffer.values()) {
      n += bufferSizes.getOrDefault(bufferName(rangeStart, handoverEpoch, b), 0);
    }
    return n;
  }

  /** How long the messages released from handover buffers so far were held. */
  public HoldTimes holdTimes() {
    return holdTimes;
  }

  public boolean syncWrites() {
    return sync;
  }

  public Path dir() {
    return dir;
  }

  // ------------------------------------------------------------------ plumbing

  private interface EntryVisitor {
    /** Returns whether to go on. */
    boolean visit(byte[] key, byte[] value);
  }

  /** Visits buffer {@code b} of a handover in order, from the first lsn above {@code after}. */
  private void scanBuffer(long rangeStart, long handoverEpoch, Buffer b, long after,
      EntryVisitor visitor) {
    byte[] prefix = ByteBuffer.allocate(17).putLong(rangeStart).putLong(handoverEpoch)
        .put((byte) b.ordinal()).array();
    byte[] from = after < 0 ? prefix : bufferKey(rangeStart, handoverEpoch, b, after + 1);
    try (ReadOptions ro = new ReadOptions().setPrefixSameAsStart(false);
        RocksIterator it = db.newIterator(buffers, ro)) {
      for (it.seek(from); it.isValid(); it.next()) {
        byte[] k = it.key();
        if (!startsWith(k, prefix) || !visitor.visit(k, it.value())) {
          break;
        }
      }
    }
  }

  private static boolean startsWith(byte[] k, byte[] prefix) {
    if (k.length < prefix.length) {
      return false;
    }
    for (int i = 0; i < prefix.length; i++) {
      if (k[i] != prefix[i]) {
        return false;
      }
    }
    return true;
  }

  private static byte[] lsnKey(long lsn) {
    return ByteBuffer.allocate(8).putLong(lsn).array();
  }

  private static byte[] bufferKey(long rangeStart, long he, Buffer b, long lsn) {
    return ByteBuffer.allocate(25).putLong(rangeStart).putLong(he).put((byte) b.ordinal())
        .putLong(lsn).array();
  }

  private static String bufferName(long rangeStart, long he, Buffer b) {
    return rangeStart + "/" + he + "/" + b;
  }

  private static StoredMessage parse(byte[] v) {
    try {
      return StoredMessage.parseFrom(v);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("a stored message is corrupt", e);
    }
  }

  @Override
  public synchronized void close() {
    sequenceFamily.close();
    buffers.close();
    queue.close();
    meta.close();
    db.close();
    durable.close();
    lazy.close();
    cfOptions.close();
    dbOptions.close();
  }
}
