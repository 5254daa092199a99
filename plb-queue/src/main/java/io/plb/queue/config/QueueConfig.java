package io.plb.queue.config;

import io.plb.client.agent.QueueServerAgent;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The settings of one reference queue server: from a file of {@code key = value} lines, then
 * {@code --key=value} flags. Every key is listed in {@link #KEYS} with its default and meaning; an
 * unknown key or a bad value is an error that names the key. Immutable.
 */
public final class QueueConfig {
  /** key → {default ("" = required), description}. */
  public static final Map<String, String[]> KEYS = new LinkedHashMap<>();

  static {
    KEYS.put("id", new String[] {"", "queue server id, as registered in PLB"});
    KEYS.put("listen", new String[] {"127.0.0.1:0", "host:port the queue API listens on"});
    KEYS.put("advertise", new String[] {"", "host:port registered in the map (default: the "
        + "listen address with its bound port)"});
    KEYS.put("data", new String[] {"", "data directory (RocksDB)"});
    KEYS.put("plb", new String[] {"127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303",
        "PLB node API endpoints, comma-separated"});
    KEYS.put("register", new String[] {"true", "register (or update) this server in PLB on start"});
    KEYS.put("capacity", new String[] {"1.0", "capacity weight registered with the server"});
    KEYS.put("sync", new String[] {"true", "fsync every acknowledged write"});
    KEYS.put("maxQueued", new String[] {"1000000", "messages queued (deliverable) before "
        + "publishes are answered OVERLOADED"});
    KEYS.put("maxHeld", new String[] {"1000000", "messages in handover buffers before "
        + "publishes into them are answered OVERLOADED"});
    KEYS.put("maxMessageBytes", new String[] {"1048576", "largest payload accepted"});
    KEYS.put("mapWait", new String[] {"5s", "longest a publish waits for the map version it "
        + "was routed under"});
    KEYS.put("maxMapWaiters", new String[] {"64", "publish requests and transfers that may "
        + "wait at once for a map version this server has not reached; past it a publish is "
        + "answered OVERLOADED, a transfer RESOURCE_EXHAUSTED"});
    KEYS.put("maxVersionLead", new String[] {"1000000", "how far ahead of this server's map "
        + "version a message or transfer may be tagged and still wait for it; further ahead is "
        + "answered at once as above"});
    KEYS.put("maxProducers", new String[] {"10000", "producer sessions with publish streams "
        + "open here at once (each may hold refusal fences); a request of another session ends "
        + "its stream RESOURCE_EXHAUSTED"});
    KEYS.put("maxWorkers", new String[] {"256", "threads that handle publish requests and "
        + "transfers at once (2-10000); a request that finds none free is answered "
        + "RESOURCE_EXHAUSTED"});
    KEYS.put("idempotence.maxSequences", new String[] {"1000000", "(producer, key) entries "
        + "kept to store each producer's resend at most once; past it a message of a producer "
        + "and key without one is answered OVERLOADED"});
    KEYS.put("idempotence.producerIdle", new String[] {"60m", "a producer that stored and "
        + "settled nothing here for this long is forgotten: a resend of its messages that comes "
        + "later is no longer recognised (at least 1m)"});
    KEYS.put("resendInterval", new String[] {"500ms", "how often owed reports and transfers "
        + "are sent again"});
    KEYS.put("heartbeatInterval", new String[] {"1s", "heartbeat to the PLB leader"});
    KEYS.put("lateBatch.messages", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_LATE_BATCH_MESSAGES), "most messages one late "
        + "transfer carries (1-" + QueueServerAgent.MAX_LATE_BATCH_MESSAGES + ")"});
    KEYS.put("lateBatch.bytes", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_LATE_BATCH_BYTES), "most message bytes one late "
        + "transfer carries (64 KiB-64 MiB; a larger message goes alone)"});
    KEYS.put("agentIo.threads", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_IO_THREADS), "threads the agent sends handover "
        + "reports, transfers and late messages on (2-1024)"});
    KEYS.put("agentIo.queue", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_IO_QUEUE), "sends waiting for an agent I/O "
        + "thread (1-1000000); past it a send is dropped and made again on the next resend"});
    KEYS.put("transfer.chunkMessages", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_CHUNK_MESSAGES), "most messages one chunk of a "
        + "handover's transfer carries, and one step of a buffer's release moves (1-"
        + QueueServerAgent.MAX_LATE_BATCH_MESSAGES + ")"});
    KEYS.put("transfer.chunkBytes", new String[] {
        String.valueOf(QueueServerAgent.DEFAULT_CHUNK_BYTES), "most message bytes one chunk of "
        + "a handover's transfer carries, and one step of a buffer's release moves (64 KiB-64 "
        + "MiB; a larger message goes alone)"});
    KEYS.put("telemetry.reportInterval", new String[] {"1s", "how often a load report goes to "
        + "the PLB leader"});
    KEYS.put("telemetry.hotKeys", new String[] {"32", "hot keys a load report tracks (1-1024)"});
  }

  private static final Pattern DURATION = Pattern.compile("(\\d+)\\s*(ms|s|m)?");
  private final Map<String, String> values;

  private QueueConfig(Map<String, String> values) {
    this.values = values;
    id();
    data();
    listen();
    if (!get("advertise").isEmpty()) {
      checkAddress("advertise", get("advertise"));
    }
    capacity();
    maxQueued();
    maxHeld();
    maxMessageBytes();
    mapWait();
    maxMapWaiters();
    maxVersionLead();
    maxProducers();
    maxWorkers();
    maxSequences();
    producerIdle();
    resendInterval();
    heartbeatInterval();
    QueueServerAgent.checkLateBatch(lateBatchMessages(), lateBatchBytes());
    QueueServerAgent.checkIo(agentIoThreads(), agentIoQueue());
    QueueServerAgent.checkTransferChunk(transferChunkMessages(), transferChunkBytes());
    reportInterval();
    hotKeys();
    bool("sync");
    bool("register");
  }

  /** Reads {@code file} (may be null), then applies {@code overrides}. */
  public static QueueConfig load(Path file, Map<String, String> overrides) throws IOException {
    Map<String, String> v = new LinkedHashMap<>();
    if (file != null) {
      int n = 0;
      for (String line : Files.readAllLines(file)) {
        n++;
        String t = line.strip();
        if (t.isEmpty() || t.startsWith("#")) {
          continue;
        }
        int eq = t.indexOf('=');
        if (eq <= 0) {
          throw new IllegalArgumentException(file + ":" + n + ": expected key = value");
        }
        v.put(t.substring(0, eq).strip(), t.substring(eq + 1).strip());
      }
    }
    v.putAll(overrides);
    return of(v);
  }

  public static QueueConfig of(Map<String, String> given) {
    for (String k : given.keySet()) {
      if (!KEYS.containsKey(k)) {
        throw new IllegalArgumentException("unknown setting '" + k + "' (see plb queue --help)");
      }
    }
    Map<String, String> v = new LinkedHashMap<>();
    for (Map.Entry<String, String[]> e : KEYS.entrySet()) {
      v.put(e.getKey(), given.getOrDefault(e.getKey(), e.getValue()[0]));
    }
    return new QueueConfig(v);
  }

  public String id() {
    String id = required("id");
    if (!id.matches("[A-Za-z0-9._-]{1,64}")) {
      throw new IllegalArgumentException("id '" + id + "' must be 1-64 of A-Z a-z 0-9 . _ -");
    }
    return id;
  }

  public Path data() {
    return Path.of(required("data"));
  }

  public String listen() {
    return checkAddress("listen", get("listen"));
  }

  public String advertise() {
    return get("advertise");
  }

  public List<String> plb() {
    List<String> out = new java.util.ArrayList<>();
    for (String p : get("plb").split(",")) {
      if (!p.isBlank()) {
        out.add(checkAddress("plb", p.strip()));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("plb: at least one PLB endpoint is needed");
    }
    return out;
  }

  public boolean register() {
    return bool("register");
  }

  public double capacity() {
    try {
      double c = Double.parseDouble(get("capacity"));
      if (!(c > 0) || Double.isInfinite(c)) {
        throw new NumberFormatException();
      }
      return c;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("capacity '" + get("capacity")
          + "' must be a positive number");
    }
  }

  public boolean sync() {
    return bool("sync");
  }

  public long maxQueued() {
    return positive("maxQueued");
  }

  /** Messages in handover buffers (hold buffers, held queues) before they are refused. */
  public long maxHeld() {
    return positive("maxHeld");
  }

  public int maxMessageBytes() {
    long v = positive("maxMessageBytes");
    if (v > 64L << 20) {
      throw new IllegalArgumentException("maxMessageBytes is at most 64 MiB");
    }
    return (int) v;
  }

  public Duration mapWait() {
    return duration("mapWait");
  }

  /** Requests that may wait at once for a map version (C2); at most maxWorkers do anyway. */
  public int maxMapWaiters() {
    long v = positive("maxMapWaiters");
    if (v > 10_000) {
      throw new IllegalArgumentException("maxMapWaiters '" + v + "' must be 1..10000");
    }
    return (int) v;
  }

  /** How many versions ahead of this server's map a tag may be and still be waited for. */
  public long maxVersionLead() {
    return positive("maxVersionLead");
  }

  /** Producer sessions with open publish streams at once (and so sessions holding fences). */
  public int maxProducers() {
    long v = positive("maxProducers");
    if (v > 1_000_000) {
      throw new IllegalArgumentException("maxProducers '" + v + "' must be 1..1000000");
    }
    return (int) v;
  }

  /** The worker pool's bound: Publish requests and TransferHeld calls being handled at once. */
  public int maxWorkers() {
    long v = positive("maxWorkers");
    if (v < 2 || v > 10_000) {
      throw new IllegalArgumentException("maxWorkers '" + v + "' must be 2..10000");
    }
    return (int) v;
  }

  /** (producer, key) entries of idempotent publish kept at most. */
  public int maxSequences() {
    long v = positive("idempotence.maxSequences");
    if (v > 100_000_000) {
      throw new IllegalArgumentException(
          "idempotence.maxSequences '" + v + "' must be 1..100000000");
    }
    return (int) v;
  }

  /** How long an idle producer's sequences are kept. */
  public Duration producerIdle() {
    Duration d = duration("idempotence.producerIdle");
    if (d.compareTo(Duration.ofMinutes(1)) < 0) {
      throw new IllegalArgumentException("idempotence.producerIdle must be at least 1m");
    }
    return d;
  }

  public Duration resendInterval() {
    return duration("resendInterval");
  }

  public Duration heartbeatInterval() {
    return duration("heartbeatInterval");
  }

  public long lateBatchMessages() {
    return positive("lateBatch.messages");
  }

  public long lateBatchBytes() {
    return positive("lateBatch.bytes");
  }

  /** Threads of the agent's I/O pool (handover reports, transfers, late messages). */
  public long agentIoThreads() {
    return positive("agentIo.threads");
  }

  /** Sends that may wait for an agent I/O thread. */
  public long agentIoQueue() {
    return positive("agentIo.queue");
  }

  public long transferChunkMessages() {
    return positive("transfer.chunkMessages");
  }

  public long transferChunkBytes() {
    return positive("transfer.chunkBytes");
  }

  public Duration reportInterval() {
    return duration("telemetry.reportInterval");
  }

  public int hotKeys() {
    long v = positive("telemetry.hotKeys");
    if (v > io.plb.core.load.HotKeys.MAX_KEYS) {
      throw new IllegalArgumentException("telemetry.hotKeys '" + v + "' must be 1.."
          + io.plb.core.load.HotKeys.MAX_KEYS);
    }
    return (int) v;
  }

  private String get(String k) {
    return values.get(k);
  }

  private String required(String k) {
    String v = get(k);
    if (v == null || v.isEmpty()) {
      throw new IllegalArgumentException("setting '" + k + "' is required ("
          + KEYS.get(k)[1] + ")");
    }
    return v;
  }

  private long positive(String k) {
    try {
      long v = Long.parseLong(get(k));
      if (v <= 0) {
        throw new NumberFormatException();
      }
      return v;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(k + " '" + get(k) + "' must be a positive integer");
    }
  }

  private boolean bool(String k) {
    String v = get(k);
    if (!v.equals("true") && !v.equals("false")) {
      throw new IllegalArgumentException(k + " '" + v + "' must be true or false");
    }
    return v.equals("true");
  }

  private Duration duration(String k) {
    Matcher m = DURATION.matcher(get(k).strip());
    if (!m.matches()) {
      throw new IllegalArgumentException(k + " '" + get(k) + "' must be a duration like 500ms");
    }
    long n = Long.parseLong(m.group(1));
    String unit = m.group(2) == null ? "ms" : m.group(2);
    Duration d = switch (unit) {
      case "s" -> Duration.ofSeconds(n);
      case "m" -> Duration.ofMinutes(n);
      default -> Duration.ofMillis(n);
    };
    if (d.isZero()) {
      throw new IllegalArgumentException(k + " must be positive");
    }
    return d;
  }

  private static String checkAddress(String key, String a) {
    int colon = a.lastIndexOf(':');
    if (colon <= 0 || !a.substring(colon + 1).matches("\\d{1,5}")
        || Integer.parseInt(a.substring(colon + 1)) > 65535) {
      throw new IllegalArgumentException(key + " '" + a + "' is not host:port");
    }
    return a;
  }
}
