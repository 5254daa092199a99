package io.plb.core.check;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;
import java.io.Writer;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Objects;

/**
 * A recorder of what producers sent and consumers received, checked afterwards by {@link
 * HistoryChecker}. Tests, the deterministic simulation and benchmarks all record into it.
 *
 * <p>A message is identified by {@code (producerId, seq)}: {@code seq} grows by one per message of
 * that producer, across keys. Four kinds of event are recorded:
 *
 * <ul>
 *   <li>{@link #publishSent}: the producer sent the message with an ordering key (recording a
 *       resend of the same message again is harmless; the first key wins);
 *   <li>{@link #publishAcked}: the queue server stored it durably, so it must not be lost;
 *   <li>{@link #publishFailed}: the publish failed or its outcome is unknown; it may or may not be
 *       delivered;
 *   <li>{@link #delivered}: a consumer observed a delivery, with the server's {@code redelivered}
 *       and {@code late} flags.
 * </ul>
 *
 * <p>Every event gets a global sequence number, its position in the history, in the order the
 * calls were made; per-(producer, key) delivery order is the order of these numbers, so record a
 * delivery when the consumer observes it. The order between a send and a delivery of the same
 * message does not matter (a delivery may be recorded before the producer thread records the
 * send).
 *
 * <p>Keys are strings. A {@code byte[]} key is stored as the ISO-8859-1 string of its bytes (one
 * char per byte, lossless; see {@link #keyOf(byte[])}), so {@code "abc"} and {@code
 * "abc".getBytes(ISO_8859_1)} name the same key.
 *
 * <p><b>Thread model.</b> Thread-safe: every recording method takes the recorder's lock, so a
 * history may be recorded from many threads, and checked while recording continues (the check sees
 * a prefix). <b>Memory.</b> Events are stored column-wise in primitive chunks (about 21 bytes an
 * event) with producer, consumer, key and reason strings interned to ints, so a run of millions of
 * events stays compact and growth never copies the whole history.
 */
public final class History {
  static final int CHUNK_BITS = 15;
  static final int CHUNK = 1 << CHUNK_BITS;
  static final int CHUNK_MASK = CHUNK - 1;

  /** Event kinds, in the low two bits of an event's kind byte. */
  static final int SENT = 0;

  static final int ACKED = 1;
  static final int FAILED = 2;
  static final int DELIVERED = 3;
  static final int KIND_MASK = 3;
  /** Delivery flags, above the kind. */
  static final int FLAG_REDELIVERED = 4;

  static final int FLAG_LATE = 8;

  private final Interner producers = new Interner();
  private final Interner consumers = new Interner();
  private final Interner keys = new Interner();
  private final Interner reasons = new Interner();

  // Column chunks; chunk c holds events [c * CHUNK, (c + 1) * CHUNK).
  private byte[][] kinds = new byte[8][];
  private int[][] producerIds = new int[8][];
  private long[][] seqs = new long[8][];
  /** Key id for sends and deliveries, reason id for failures, -1 for acks. */
  private int[][] refs = new int[8][];
  /** Consumer id for deliveries, -1 otherwise. */
  private int[][] consumerIds = new int[8][];

  private int size;
  private long deliveries;

  /** The lossless string form of a {@code byte[]} key: one ISO-8859-1 char per byte. */
  public static String keyOf(byte[] key) {
    return new String(Objects.requireNonNull(key, "key"), StandardCharsets.ISO_8859_1);
  }

  /** Records that {@code producerId} sent message {@code seq} with ordering key {@code key}. */
  public void publishSent(String producerId, long seq, String key) {
    Objects.requireNonNull(producerId, "producerId");
    Objects.requireNonNull(key, "key");
    synchronized (this) {
      append(SENT, producers.id(producerId), seq, keys.id(key), -1);
    }
  }

  /** {@link #publishSent(String, long, String)} with a binary key (see {@link #keyOf(byte[])}). */
  public void publishSent(String producerId, long seq, byte[] key) {
    publishSent(producerId, seq, keyOf(key));
  }

  /** Records that the queue server stored message {@code (producerId, seq)} durably. */
  public void publishAcked(String producerId, long seq) {
    Objects.requireNonNull(producerId, "producerId");
    synchronized (this) {
      append(ACKED, producers.id(producerId), seq, -1, -1);
    }
  }

  /**
   * Records that publishing {@code (producerId, seq)} failed or ended with an unknown outcome; the
   * message may or may not be delivered. An ack recorded for the same message wins.
   */
  public void publishFailed(String producerId, long seq, String reason) {
    Objects.requireNonNull(producerId, "producerId");
    String r = reason == null ? "" : reason;
    synchronized (this) {
      append(FAILED, producers.id(producerId), seq, reasons.id(r), -1);
    }
  }

  /**
   * Records that {@code consumerId} observed a delivery of {@code (producerId, seq)} with key
   * {@code key} and the server's flags.
   *
   * @return the delivery's global sequence number (its position in this history), as used in the
   *     checker's examples
   */
  public long delivered(
      String consumerId,
      String producerId,
      long seq,
      String key,
      boolean redelivered,
      boolean late) {
    Objects.requireNonNull(consumerId, "consumerId");
    Objects.requireNonNull(producerId, "producerId");
    Objects.requireNonNull(key, "key");
    int kind = DELIVERED | (redelivered ? FLAG_REDELIVERED : 0) | (late ? FLAG_LATE : 0);
    synchronized (this) {
      deliveries++;
      return append(kind, producers.id(producerId), seq, keys.id(key), consumers.id(consumerId));
    }
  }

  /** {@link #delivered(String, String, long, String, boolean, boolean)} with a binary key. */
  public long delivered(
      String consumerId,
      String producerId,
      long seq,
      byte[] key,
      boolean redelivered,
      boolean late) {
    return delivered(consumerId, producerId, seq, keyOf(key), redelivered, late);
  }

  /** The number of events recorded so far. */
  public synchronized int size() {
    return size;
  }

  /** The number of deliveries recorded so far. */
  public synchronized long deliveries() {
    return deliveries;
  }

  /** The first line of {@link #write}'s text form. */
  static final String TEXT_HEADER = "# plb history v1";

  /**
   * Writes every event recorded so far, in order, as text: one event a line — {@code S producer
   * seq key}, {@code A producer seq}, {@code F producer seq reason}, {@code D consumer producer seq
   * key flags} ({@code r} redelivered, {@code l} late, {@code -} neither) — each string
   * URL-encoded behind an {@code =}, so any key or name survives. {@link #read} appends them to
   * another history: a producer process and a consumer process can each record their half, and
   * one of them checks the two together.
   */
  public void write(Writer out) throws IOException {
    Snapshot h = snapshot();
    out.write(TEXT_HEADER + "\n");
    StringBuilder line = new StringBuilder();
    for (int i = 0; i < h.size; i++) {
      line.setLength(0);
      int kind = h.kind(i);
      String producer = text(h.producerNames[h.producer(i)]);
      long seq = h.seq(i);
      switch (kind & KIND_MASK) {
        case SENT -> line.append("S ").append(producer).append(' ').append(seq).append(' ')
            .append(text(h.keyNames[h.ref(i)]));
        case ACKED -> line.append("A ").append(producer).append(' ').append(seq);
        case FAILED -> line.append("F ").append(producer).append(' ').append(seq).append(' ')
            .append(text(h.reasonNames[h.ref(i)]));
        default -> line.append("D ").append(text(h.consumerNames[h.consumer(i)])).append(' ')
            .append(producer).append(' ').append(seq).append(' ')
            .append(text(h.keyNames[h.ref(i)])).append(' ')
            .append((kind & FLAG_REDELIVERED) != 0 ? "r" : "")
            .append((kind & FLAG_LATE) != 0 ? "l" : "")
            .append((kind & (FLAG_REDELIVERED | FLAG_LATE)) == 0 ? "-" : "");
      }
      out.write(line.append('\n').toString());
    }
    out.flush();
  }

  /**
   * Appends the events of {@link #write}'s text form to this history, in their order.
   *
   * @throws IllegalArgumentException naming the line, for text that is not such a history
   */
  public void read(Reader in) throws IOException {
    BufferedReader r = in instanceof BufferedReader b ? b : new BufferedReader(in);
    String header = r.readLine();
    if (!TEXT_HEADER.equals(header)) {
      throw new IllegalArgumentException("not a PLB history: first line " + header);
    }
    int number = 1;
    for (String line; (line = r.readLine()) != null; ) {
      number++;
      String[] f = line.split(" ");
      try {
        switch (f[0]) {
          case "S" -> publishSent(untext(f[1]), Long.parseLong(f[2]), untext(f[3]));
          case "A" -> publishAcked(untext(f[1]), Long.parseLong(f[2]));
          case "F" -> publishFailed(untext(f[1]), Long.parseLong(f[2]), untext(f[3]));
          case "D" -> delivered(untext(f[1]), untext(f[2]), Long.parseLong(f[3]), untext(f[4]),
              f[5].contains("r"), f[5].contains("l"));
          default -> throw new IllegalArgumentException("unknown event " + f[0]);
        }
      } catch (RuntimeException e) {
        throw new IllegalArgumentException("history line " + number + " (" + line + "): "
            + e.getMessage(), e);
      }
    }
  }

  private static String text(String s) {
    return "=" + URLEncoder.encode(s, StandardCharsets.UTF_8);
  }

  private static String untext(String field) {
    if (!field.startsWith("=")) {
      throw new IllegalArgumentException("a string field starts with '=': " + field);
    }
    return URLDecoder.decode(field.substring(1), StandardCharsets.UTF_8);
  }

  private int append(int kind, int producer, long seq, int ref, int consumer) {
    int i = size;
    if (i == Integer.MAX_VALUE) {
      throw new IllegalStateException("history is full (" + i + " events)");
    }
    int c = i >>> CHUNK_BITS;
    int o = i & CHUNK_MASK;
    if (o == 0) {
      addChunk(c);
    }
    kinds[c][o] = (byte) kind;
    producerIds[c][o] = producer;
    seqs[c][o] = seq;
    refs[c][o] = ref;
    consumerIds[c][o] = consumer;
    size = i + 1;
    return i;
  }

  private void addChunk(int c) {
    if (c == kinds.length) {
      int n = c * 2;
      kinds = Arrays.copyOf(kinds, n);
      producerIds = Arrays.copyOf(producerIds, n);
      seqs = Arrays.copyOf(seqs, n);
      refs = Arrays.copyOf(refs, n);
      consumerIds = Arrays.copyOf(consumerIds, n);
    }
    kinds[c] = new byte[CHUNK];
    producerIds[c] = new int[CHUNK];
    seqs[c] = new long[CHUNK];
    refs[c] = new int[CHUNK];
    consumerIds[c] = new int[CHUNK];
  }

  /**
   * A consistent, immutable view of the events recorded so far. Recorded chunk slots are never
   * written again, so the view shares them; only the small outer arrays and name tables are copied.
   */
  synchronized Snapshot snapshot() {
    int chunks = (size + CHUNK_MASK) >>> CHUNK_BITS;
    return new Snapshot(
        size,
        Arrays.copyOf(kinds, chunks),
        Arrays.copyOf(producerIds, chunks),
        Arrays.copyOf(seqs, chunks),
        Arrays.copyOf(refs, chunks),
        Arrays.copyOf(consumerIds, chunks),
        producers.names(),
        consumers.names(),
        keys.names(),
        reasons.names());
  }

  /** Read-only events for the checker; see {@link #snapshot()}. */
  static final class Snapshot {
    final int size;
    private final byte[][] kinds;
    private final int[][] producerIds;
    private final long[][] seqs;
    private final int[][] refs;
    private final int[][] consumerIds;
    final String[] producerNames;
    final String[] consumerNames;
    final String[] keyNames;
    final String[] reasonNames;

    private Snapshot(
        int size,
        byte[][] kinds,
        int[][] producerIds,
        long[][] seqs,
        int[][] refs,
        int[][] consumerIds,
        String[] producerNames,
        String[] consumerNames,
        String[] keyNames,
        String[] reasonNames) {
      this.size = size;
      this.kinds = kinds;
      this.producerIds = producerIds;
      this.seqs = seqs;
      this.refs = refs;
      this.consumerIds = consumerIds;
      this.producerNames = producerNames;
      this.consumerNames = consumerNames;
      this.keyNames = keyNames;
      this.reasonNames = reasonNames;
    }

    /** Kind bits and flags of event {@code i}. */
    int kind(int i) {
      return kinds[i >>> CHUNK_BITS][i & CHUNK_MASK];
    }

    int producer(int i) {
      return producerIds[i >>> CHUNK_BITS][i & CHUNK_MASK];
    }

    long seq(int i) {
      return seqs[i >>> CHUNK_BITS][i & CHUNK_MASK];
    }

    /** Key id (sent, delivered), reason id (failed) or -1 (acked). */
    int ref(int i) {
      return refs[i >>> CHUNK_BITS][i & CHUNK_MASK];
    }

    int consumer(int i) {
      return consumerIds[i >>> CHUNK_BITS][i & CHUNK_MASK];
    }
  }

  /** Strings to dense ints. Not thread-safe; used under the recorder's lock. */
  private static final class Interner {
    private final HashMap<String, Integer> ids = new HashMap<>();
    private final ArrayList<String> names = new ArrayList<>();

    int id(String name) {
      Integer id = ids.get(name);
      if (id == null) {
        id = names.size();
        ids.put(name, id);
        names.add(name);
      }
      return id;
    }

    String[] names() {
      return names.toArray(new String[0]);
    }
  }
}
