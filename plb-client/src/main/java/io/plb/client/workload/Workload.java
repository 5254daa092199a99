package io.plb.client.workload;

import io.plb.core.time.WallClock;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.cli.Json;
import io.plb.client.consumer.Consumer;
import io.plb.client.router.Producer;
import io.plb.client.router.Router;
import io.plb.core.check.History;
import io.plb.core.check.HistoryChecker;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Producers and consumers against a running PLB cluster and its queue servers, recording a
 * {@link History} and ending with the {@link HistoryChecker}'s verdict and latency percentiles.
 * Operators run it as a canary ({@code bin/plb workload}); tests and benchmarks run it in-process.
 * Optionally it moves random ranges while traffic flows ({@code moves}) and splits and merges
 * random ranges ({@code reshapes}). Its producers and its consumers can run as two processes
 * ({@link Role}): the producers write their half of the history to a file when done, and the
 * consumers check it with their own deliveries.
 *
 * <p>Thread model: one thread per producer (paced to its share of the rate), consumer handlers
 * on the consumers' stream threads, one mover and one reshaper thread, and the caller's thread
 * printing progress.
 * The history is thread-safe.
 */
public final class Workload {

  /** What to run. */
  public record Options(
      List<String> endpoints,
      int keys,
      double rate,
      int size,
      Duration duration,
      int producers,
      int consumers,
      int moves,
      Duration settle,
      long seed,
      int reshapes,
      Path publishLog,
      Role role,
      Path historyFile) {

    public Options {
      if (keys < 1) {
        throw new IllegalArgumentException("--keys must be at least 1");
      }
      if (!(rate > 0) || Double.isInfinite(rate)) {
        throw new IllegalArgumentException("--rate must be a positive number of messages/s");
      }
      if (size < 0 || size > 1 << 20) {
        throw new IllegalArgumentException("--size must be 0..1048576 bytes");
      }
      if (duration.isNegative() || duration.isZero()) {
        throw new IllegalArgumentException("--duration must be positive");
      }
      if (producers < 1 || producers > 256 || consumers < 1 || consumers > 256) {
        throw new IllegalArgumentException("--producers and --consumers must be 1..256");
      }
      if (moves < 0) {
        throw new IllegalArgumentException("--moves must be >= 0");
      }
      if (reshapes < 0) {
        throw new IllegalArgumentException("--reshapes must be >= 0");
      }
      if (role != Role.ALL && historyFile == null) {
        throw new IllegalArgumentException("--role=" + role.name().toLowerCase(Locale.ROOT)
            + " needs --history=FILE: the producers write their half of the history there, "
            + "the consumers read it and check both halves");
      }
    }

    public static Options defaults(List<String> endpoints) {
      return new Options(endpoints, 1000, 200, 100, Duration.ofSeconds(10), 2, 2, 0,
          Duration.ofSeconds(60), System.nanoTime(), 0, null, Role.ALL, null);
    }

    public Options withKeys(int v) {
      return new Options(endpoints, v, rate, size, duration, producers, consumers, moves, settle,
          seed, reshapes, publishLog, role, historyFile);
    }

    public Options withRate(double v) {
      return new Options(endpoints, keys, v, size, duration, producers, consumers, moves, settle,
          seed, reshapes, publishLog, role, historyFile);
    }

    public Options withDuration(Duration v) {
      return new Options(endpoints, keys, rate, size, v, producers, consumers, moves, settle,
          seed, reshapes, publishLog, role, historyFile);
    }

    public Options withClients(int producers, int consumers) {
      return new Options(endpoints, keys, rate, size, duration, producers, consumers, moves,
          settle, seed, reshapes, publishLog, role, historyFile);
    }

    public Options withMoves(int v) {
      return new Options(endpoints, keys, rate, size, duration, producers, consumers, v, settle,
          seed, reshapes, publishLog, role, historyFile);
    }

    /** Random splits and merges spread over the run, beside the moves. */
    public Options withReshapes(int v) {
      return new Options(endpoints, keys, rate, size, duration, producers, consumers, moves,
          settle, seed, v, publishLog, role, historyFile);
    }

    /**
     * Runs only the producers (writing their half of the history to {@code file} when done) or
     * only the consumers (reading that half once it is there, then checking both), so the two
     * run as processes of their own.
     */
    public Options withRole(Role v, Path file) {
      return new Options(endpoints, keys, rate, size, duration, producers, consumers, moves,
          settle, seed, reshapes, publishLog, v, file);
    }

    /** Writes every acknowledged publish to this file at the end (see {@link PublishLog}). */
    public Options withPublishLog(Path v) {
      return new Options(endpoints, keys, rate, size, duration, producers, consumers, moves,
          settle, seed, reshapes, v, role, historyFile);
    }
  }

  /** Which part of the workload this process runs. */
  public enum Role {
    /** Producers, consumers and range changes in one process; checks the history. */
    ALL,
    /**
     * Producers and range changes; writes the sends and their outcomes to the history file at
     * the end (written whole, then renamed into place: its presence means the producers are
     * done).
     */
    PRODUCERS,
    /**
     * Consumers only; once the producers' history file is there, waits for every acknowledged
     * message, then checks the producers' half and its own deliveries together.
     */
    CONSUMERS
  }

  /**
   * What the producers' routers saw besides acknowledgements, summed over producers: answers of
   * WRONG_OWNER (the range had moved; sent again to the new owner), OVERLOADED answers, and
   * messages sent again for either reason or after a broken link. None of them is a loss.
   */
  public record RouterCounts(long redirected, long overloaded, long resent) {}

  /** The producers' counters, summed in one pass over their stats. */
  private record ProducerTotals(long published, long acknowledged, long inFlight,
      RouterCounts router) {
    static ProducerTotals of(List<Producer> producers) {
      long published = 0;
      long acknowledged = 0;
      long inFlight = 0;
      long redirected = 0;
      long overloaded = 0;
      long resent = 0;
      for (Producer p : producers) {
        Producer.Stats s = p.stats();
        published += s.published();
        acknowledged += s.acknowledged();
        inFlight += s.inFlight();
        redirected += s.refused();
        overloaded += s.overloaded();
        resent += s.resent();
      }
      return new ProducerTotals(published, acknowledged, inFlight,
          new RouterCounts(redirected, overloaded, resent));
    }
  }

  /** The outcome. */
  public record Result(
      HistoryChecker.Verdict verdict,
      long movesStarted,
      long movesRefused,
      long splits,
      long merges,
      long reshapesRefused,
      RouterCounts router,
      double[] publishLatencyMs,
      double[] endToEndLatencyMs,
      double seconds) {

    /** The summary fields, in a fixed order, for {@code --json}. */
    public Map<String, Object> toJsonFields() {
      Map<String, Object> m = new LinkedHashMap<>(verdict.toJsonFields());
      m.put("moves_started", movesStarted);
      m.put("moves_refused", movesRefused);
      m.put("splits", splits);
      m.put("merges", merges);
      m.put("reshapes_refused", reshapesRefused);
      m.put("redirected", router.redirected());
      m.put("overloaded", router.overloaded());
      m.put("resent", router.resent());
      m.put("publish_ms_p50", round(publishLatencyMs[0]));
      m.put("publish_ms_p99", round(publishLatencyMs[1]));
      m.put("publish_ms_max", round(publishLatencyMs[2]));
      m.put("end_to_end_ms_p50", round(endToEndLatencyMs[0]));
      m.put("end_to_end_ms_p99", round(endToEndLatencyMs[1]));
      m.put("end_to_end_ms_max", round(endToEndLatencyMs[2]));
      m.put("seconds", round(seconds));
      return m;
    }

    private static double round(double v) {
      return Math.round(v * 100) / 100.0;
    }
  }

  private final Options options;
  private final PrintStream progress;
  private final History history = new History();
  private final LatencyLog publishLatency = new LatencyLog();
  private final LatencyLog endToEnd = new LatencyLog();
  private final AtomicLong movesStarted = new AtomicLong();
  private final AtomicLong movesRefused = new AtomicLong();
  private final AtomicLong splits = new AtomicLong();
  private final AtomicLong merges = new AtomicLong();
  private final AtomicLong reshapesRefused = new AtomicLong();
  private final PublishLog publishLog = new PublishLog();
  private volatile boolean stopProducing;
  private volatile boolean stopRequested;

  public Workload(Options options, PrintStream progress) {
    this.options = options;
    this.progress = progress;
  }

  public History history() {
    return history;
  }

  /**
   * Ends the traffic before its duration is up: {@link #run} then stops producing, settles and
   * checks as at the end of the duration. Safe from any thread.
   */
  public void stop() {
    stopRequested = true;
  }

  /**
   * Runs the workload to its end and checks the history; for {@link Role#PRODUCERS}, writes the
   * producers' half of it instead (the verdict then only counts sends and outcomes).
   */
  public Result run() throws InterruptedException {
    long t0 = System.nanoTime();
    boolean producing = options.role() != Role.CONSUMERS;
    boolean consuming = options.role() != Role.PRODUCERS;
    RouterCounts routerCounts = new RouterCounts(0, 0, 0);
    try (Router router = Router.start(options.endpoints())) {
      if (!router.awaitVersion(1, Duration.ofSeconds(30))) {
        throw PlbClientException.of(io.plb.core.error.ErrorCode.UNAVAILABLE,
            "no shard map from " + options.endpoints() + " within 30 s", null);
      }
      List<Consumer> consumers = consuming ? startConsumers(router) : List.of();
      List<Producer> producers = new ArrayList<>();
      List<Thread> threads = new ArrayList<>();
      String run = Long.toHexString(options.seed() & 0xffffffL);
      for (int p = 0; producing && p < options.producers(); p++) {
        Producer producer = router.producer("wl-" + run + "-p" + (p + 1));
        producers.add(producer);
        int index = p;
        Thread t = new Thread(() -> produce(producer, index), "workload-producer-" + (p + 1));
        t.setDaemon(true);
        threads.add(t);
      }
      List<Thread> changers = new ArrayList<>();
      if (producing && options.moves() > 0) {
        changers.add(new Thread(this::moveRanges, "workload-mover"));
      }
      if (producing && options.reshapes() > 0) {
        changers.add(new Thread(this::reshapeRanges, "workload-reshaper"));
      }
      threads.forEach(Thread::start);
      for (Thread t : changers) {
        t.setDaemon(true);
        t.start();
      }
      long end = t0 + options.duration().toNanos();
      while (System.nanoTime() < end && !stopRequested) {
        LockSupport.parkNanos(Math.min(1_000_000_000L, Math.max(1, end - System.nanoTime())));
        printProgress(producers, t0);
      }
      stopProducing = true;
      for (Thread t : threads) {
        t.join();
      }
      for (Thread t : changers) {
        t.join();
      }
      // Settle: every publish has an outcome, then every acknowledged message is delivered.
      long settleEnd = System.nanoTime() + options.settle().toNanos();
      for (Producer p : producers) {
        long left = Math.max(1, (settleEnd - System.nanoTime()) / 1_000_000);
        p.flush(Duration.ofMillis(left));
      }
      if (!producing) {
        readProducersHistory(producers, t0);
        settleEnd = System.nanoTime() + options.settle().toNanos();
      }
      if (consuming) {
        awaitDeliveries(producers, t0, settleEnd);
      }
      for (Producer p : producers) {
        p.close(Duration.ofSeconds(5)); // what is still unsettled fails: its outcome is unknown
      }
      if (producing) {
        routerCounts = ProducerTotals.of(producers).router();
      }
      if (!consuming) {
        writeHistory();
      }
      for (Consumer c : consumers) {
        c.close();
      }
    }
    HistoryChecker.Verdict verdict = HistoryChecker.check(history);
    if (options.publishLog() != null) {
      publishLog.write(options.publishLog());
    }
    return new Result(verdict, movesStarted.get(), movesRefused.get(), splits.get(),
        merges.get(), reshapesRefused.get(), routerCounts,
        publishLatency.percentilesMs(), endToEnd.percentilesMs(), (System.nanoTime() - t0) / 1e9);
  }

  private List<Consumer> startConsumers(Router router) {
    List<Consumer> consumers = new ArrayList<>();
    for (int c = 0; c < options.consumers(); c++) {
      String name = "consumer-" + (c + 1);
      consumers.add(Consumer.start(router, (server, d) -> {
        history.delivered(name, d.getProducer(), d.getSeq(), d.getKey().toByteArray(),
            d.getRedelivered(), d.getLate());
        if (d.getAcceptedAtMicros() > 0 && !d.getRedelivered()) {
          endToEnd.add(WallClock.SYSTEM.micros() - d.getAcceptedAtMicros());
        }
      }, Consumer.Config.defaults(name)));
    }
    return consumers;
  }

  /** Until every acknowledged message is delivered, nothing arrives for 20 s, or the end. */
  private void awaitDeliveries(List<Producer> producers, long t0, long settleEnd) {
    long lastDelivered = -1;
    long stableSince = System.nanoTime();
    while (System.nanoTime() < settleEnd) {
      HistoryChecker.Verdict v = HistoryChecker.check(history);
      if (v.lost() == 0 && v.acknowledged() > 0 || v.acknowledged() == 0) {
        break;
      }
      if (v.delivered() != lastDelivered) {
        lastDelivered = v.delivered();
        stableSince = System.nanoTime();
      } else if (System.nanoTime() - stableSince > 20_000_000_000L) {
        break; // nothing arrives any more: report what is missing
      }
      printProgress(producers, t0);
      LockSupport.parkNanos(500_000_000L); // paces the progress lines while deliveries arrive
    }
  }

  /** The producers' half, written whole and then renamed into place. */
  private void writeHistory() {
    Path file = options.historyFile();
    Path partial = file.resolveSibling(file.getFileName() + ".partial");
    try {
      try (java.io.Writer w = Files.newBufferedWriter(partial)) {
        history.write(w);
      }
      Files.move(partial, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
          java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the history " + file, e);
    }
  }

  /**
   * Waits (consuming meanwhile) for the producers' history file, bounded by their duration and
   * twice the settle time past this process's own duration, then adds it to the history.
   */
  private void readProducersHistory(List<Producer> producers, long t0)
      throws InterruptedException {
    Path file = options.historyFile();
    long giveUp = System.nanoTime() + 2 * options.settle().toNanos() + 60_000_000_000L;
    while (!Files.exists(file)) {
      if (System.nanoTime() > giveUp) {
        throw new IllegalStateException("the producers' history " + file + " did not appear "
            + "within twice the settle time after the duration (--settle="
            + options.settle().toSeconds() + ")");
      }
      printProgress(producers, t0);
      LockSupport.parkNanos(500_000_000L);
      if (Thread.interrupted()) {
        throw new InterruptedException();
      }
    }
    try (java.io.Reader r = Files.newBufferedReader(file)) {
      history.read(r);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the producers' history " + file, e);
    }
  }

  /** One producer: random keys at its share of the rate, recording every send and outcome. */
  private void produce(Producer producer, int index) {
    Random random = new Random(options.seed() * 31 + index);
    double perProducer = options.rate() / options.producers();
    long interval = (long) (1e9 / perProducer);
    long next = System.nanoTime();
    byte[] payload = new byte[options.size()];
    while (!stopProducing) {
      long now = System.nanoTime();
      if (now < next) {
        LockSupport.parkNanos(next - now);
        continue;
      }
      long slot = next; // when this message was due: a publish that blocked delays the next ones
      next += interval;
      int keyIndex = random.nextInt(options.keys());
      String key = "k" + keyIndex;
      byte[] keyBytes = key.getBytes(StandardCharsets.UTF_8);
      random.nextBytes(payload);
      long start = System.nanoTime();
      long before = producer.published();
      CompletableFuture<io.plb.client.router.PublishAck> f;
      try {
        f = producer.publish(keyBytes, payload);
      } catch (RuntimeException e) {
        continue;
      }
      if (producer.published() == before) {
        continue; // refused at the call (the session stayed full): no sequence number taken
      }
      // Only this thread publishes on this session, which numbers messages 1, 2, 3, ...
      long seq = producer.published();
      history.publishSent(producer.id(), seq, keyBytes);
      f.whenComplete((ack, error) -> {
        if (error == null) {
          long done = System.nanoTime();
          history.publishAcked(producer.id(), seq);
          publishLatency.add((done - start) / 1_000);
          if (options.publishLog() != null) {
            publishLog.add(slot, keyIndex, (done - slot) / 1_000);
          }
        } else {
          history.publishFailed(producer.id(), seq, String.valueOf(error.getMessage()));
        }
      });
    }
  }

  /** Random moves while traffic flows, spread over the run, up to the cluster's limits. */
  private void moveRanges() {
    Random random = new Random(options.seed() ^ 0x5eed);
    long spacing = options.duration().toNanos() / Math.max(1, options.moves());
    try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(options.endpoints())
        .deadline(Duration.ofSeconds(10)).build()) {
      long next = System.nanoTime();
      for (int i = 0; i < options.moves() && !stopProducing; i++) {
        long wait = next - System.nanoTime();
        if (wait > 0) {
          LockSupport.parkNanos(wait);
        }
        next += spacing;
        try {
          ClusterImage image = admin.getMap(0);
          List<RangeEntry> idle = new ArrayList<>();
          for (RangeEntry r : image.ranges()) {
            if (r.isAssigned() && r.handover() == null && !r.pinned()) {
              idle.add(r);
            }
          }
          List<String> active = new ArrayList<>();
          for (QueueServerInfo s : image.servers().values()) {
            if (s.state() == ServerState.ACTIVE) {
              active.add(s.id());
            }
          }
          if (idle.isEmpty() || active.size() < 2) {
            continue;
          }
          RangeEntry r = idle.get(random.nextInt(idle.size()));
          active.remove(r.owner());
          admin.move(r.start(), active.get(random.nextInt(active.size())));
          movesStarted.incrementAndGet();
        } catch (PlbClientException e) {
          movesRefused.incrementAndGet(); // a limit was reached, or the range changed meanwhile
        }
      }
    }
  }

  /**
   * Random splits (at a range's middle) and merges (of two neighbours with one owner) while
   * traffic flows, spread over the run; ranges in a handover are left alone. Splits stop at 32
   * ranges so the map does not only grow.
   */
  private void reshapeRanges() {
    Random random = new Random(options.seed() ^ 0x5a17);
    long spacing = options.duration().toNanos() / Math.max(1, options.reshapes());
    try (PlbAdminClient admin = PlbAdminClient.newBuilder().endpoints(options.endpoints())
        .deadline(Duration.ofSeconds(10)).build()) {
      long next = System.nanoTime() + spacing / 2;
      for (int i = 0; i < options.reshapes() && !stopProducing; i++) {
        long wait = next - System.nanoTime();
        if (wait > 0) {
          LockSupport.parkNanos(wait);
        }
        next += spacing;
        try {
          List<RangeEntry> ranges = admin.getMap(0).ranges();
          List<RangeEntry[]> pairs = new ArrayList<>();
          for (int r = 0; r + 1 < ranges.size(); r++) {
            RangeEntry a = ranges.get(r);
            RangeEntry b = ranges.get(r + 1);
            if (a.isAssigned() && a.owner().equals(b.owner()) && a.handover() == null
                && b.handover() == null) {
              pairs.add(new RangeEntry[] {a, b});
            }
          }
          if (!pairs.isEmpty() && (ranges.size() >= 32 || random.nextBoolean())) {
            RangeEntry[] p = pairs.get(random.nextInt(pairs.size()));
            admin.merge(p[0].start(), p[1].start());
            merges.incrementAndGet();
          } else if (ranges.size() < 32) {
            RangeEntry r = ranges.get(random.nextInt(ranges.size()));
            long width = r.end() - r.start(); // unsigned; 0 only for the whole ring
            long middle = width == 0 ? 1L << 63 : r.start() + Long.divideUnsigned(width, 2);
            if (r.handover() == null && middle != r.start()) {
              admin.splitAtHash(r.start(), middle);
              splits.incrementAndGet();
            }
          }
        } catch (PlbClientException e) {
          reshapesRefused.incrementAndGet(); // the range changed meanwhile, or no leader
        }
      }
    }
  }

  private void printProgress(List<Producer> producers, long t0) {
    if (progress == null) {
      return;
    }
    ProducerTotals t = ProducerTotals.of(producers);
    progress.printf("%6.1fs  published %d  acknowledged %d  delivered %d  in flight %d  "
            + "redirected %d  moves %d%n", (System.nanoTime() - t0) / 1e9, t.published(),
        t.acknowledged(), history.deliveries(), t.inFlight(), t.router().redirected(),
        movesStarted.get());
  }

  /**
   * Every acknowledged publish: when it was due (wall clock, milliseconds), its key's number and
   * how long from then until its acknowledgement (microseconds) — the wait a producer saw,
   * including time blocked on a full session. Written at the end, one publish a line, so a fault
   * harness can tell the waits of keys a fault touched from those it did not. Thread-safe.
   */
  static final class PublishLog {
    private final long wallAtStartMillis = WallClock.SYSTEM.micros() / 1000;
    private final long nanoAtStart = System.nanoTime();
    private long[] rows = new long[3 * 1024];
    private int size;

    synchronized void add(long slotNanos, int key, long micros) {
      if (size + 3 > rows.length) {
        rows = Arrays.copyOf(rows, rows.length * 2);
      }
      rows[size++] = wallAtStartMillis + (slotNanos - nanoAtStart) / 1_000_000;
      rows[size++] = key;
      rows[size++] = micros;
    }

    synchronized void write(Path file) {
      try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(file))) {
        w.println("# due_epoch_millis key latency_micros");
        for (int i = 0; i < size; i += 3) {
          w.println(rows[i] + " " + rows[i + 1] + " " + rows[i + 2]);
        }
      } catch (IOException e) {
        throw new UncheckedIOException("cannot write the publish log " + file, e);
      }
    }
  }

  /** Latencies in microseconds; thread-safe. */
  static final class LatencyLog {
    private long[] values = new long[1024];
    private int size;

    synchronized void add(long micros) {
      if (size == values.length) {
        values = Arrays.copyOf(values, size * 2);
      }
      values[size++] = micros;
    }

    /** p50, p99, max in milliseconds (zeros when empty). */
    synchronized double[] percentilesMs() {
      if (size == 0) {
        return new double[] {0, 0, 0};
      }
      long[] v = Arrays.copyOf(values, size);
      Arrays.sort(v);
      return new double[] {v[(int) (size * 0.50)] / 1000.0,
          v[Math.min(size - 1, (int) (size * 0.99))] / 1000.0, v[size - 1] / 1000.0};
    }
  }

  // ------------------------------------------------------------------ command line

  /** A command line read: its {@code --key value} options, {@code --json}, {@code --help}. */
  record CommandLine(Map<String, String> flags, boolean json, boolean help) {}

  /**
   * Reads {@code --key=value} and {@code --key value} options, {@code --json} and
   * {@code --help}; anything else is refused with an IllegalArgumentException naming it.
   */
  static CommandLine parse(String... args) {
    Map<String, String> flags = new LinkedHashMap<>();
    boolean json = false;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (a.equals("--help") || a.equals("-h")) {
        return new CommandLine(flags, json, true);
      } else if (a.equals("--json")) {
        json = true;
      } else if (a.startsWith("--") && a.contains("=")) {
        flags.put(a.substring(2, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
      } else if (a.startsWith("--") && a.length() > 2 && i + 1 < args.length
          && !args[i + 1].startsWith("--")) {
        flags.put(a.substring(2), args[++i]);
      } else {
        throw new IllegalArgumentException("cannot read argument '" + a
            + "' (use --key=value or --key value)");
      }
    }
    return new CommandLine(flags, json, false);
  }

  public static void main(String[] args) throws Exception {
    CommandLine line;
    try {
      line = parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("plb workload: " + e.getMessage());
      System.exit(2);
      return;
    }
    if (line.help()) {
      usage(System.out);
      return;
    }
    Map<String, String> flags = line.flags();
    boolean json = line.json();
    Options o;
    try {
      String endpoints = flags.getOrDefault("endpoints", System.getenv()
          .getOrDefault("PLB_ENDPOINTS", "127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303"));
      o = new Options(List.of(endpoints.split(",")),
          Integer.parseInt(flags.getOrDefault("keys", "1000")),
          Double.parseDouble(flags.getOrDefault("rate", "200")),
          Integer.parseInt(flags.getOrDefault("size", "100")),
          Duration.ofMillis((long) (1000 * Double.parseDouble(flags.getOrDefault("duration",
              "10")))),
          Integer.parseInt(flags.getOrDefault("producers", "2")),
          Integer.parseInt(flags.getOrDefault("consumers", "2")),
          Integer.parseInt(flags.getOrDefault("moves", "0")),
          Duration.ofSeconds(Long.parseLong(flags.getOrDefault("settle", "60"))),
          Long.parseLong(flags.getOrDefault("seed", Long.toString(System.nanoTime()))),
          Integer.parseInt(flags.getOrDefault("reshapes", "0")),
          flags.containsKey("publish-log") ? Path.of(flags.get("publish-log")) : null,
          Role.valueOf(flags.getOrDefault("role", "all").toUpperCase(Locale.ROOT)),
          flags.containsKey("history") ? Path.of(flags.get("history")) : null);
      for (String k : flags.keySet()) {
        if (!List.of("endpoints", "keys", "rate", "size", "duration", "producers", "consumers",
            "moves", "settle", "seed", "reshapes", "publish-log", "role", "history")
            .contains(k)) {
          throw new IllegalArgumentException("unknown option --" + k);
        }
      }
    } catch (IllegalArgumentException e) {
      System.err.println("plb workload: " + e.getMessage());
      System.exit(2);
      return;
    }
    Workload w = new Workload(o, json ? System.err : System.out);
    Result r = w.run();
    HistoryChecker.Verdict v = r.verdict();
    PrintStream out = System.out;
    if (o.role() == Role.PRODUCERS) {
      // Only half a history: nothing here can tell a loss. The consumers' process checks.
      Map<String, Object> m = r.toJsonFields();
      m.keySet().retainAll(List.of("published", "acknowledged", "failed", "moves_started",
          "moves_refused", "splits", "merges", "reshapes_refused", "redirected", "overloaded",
          "resent", "publish_ms_p50", "publish_ms_p99", "publish_ms_max", "seconds"));
      if (json) {
        out.println(Json.write(m));
      } else {
        out.printf("%nproducers done: published %d, acknowledged %d, failed %d; their history "
            + "is in %s for the consumers' check%n", v.published(), v.acknowledged(), v.failed(),
            o.historyFile());
        out.printf("  moves: started %d, refused %d; splits %d, merges %d%n", r.movesStarted(),
            r.movesRefused(), r.splits(), r.merges());
      }
      System.exit(v.acknowledged() > 0 ? 0 : 1);
    }
    if (!json) {
      out.println();
      out.println(v.ok() ? "verdict: OK" : "verdict: FAILED");
      out.printf("  published %d, acknowledged %d, delivered %d (duplicates %d, %d unexplained)%n",
          v.published(), v.acknowledged(), v.delivered(), v.duplicates(),
          v.unexplainedDuplicates());
      out.printf("  lost %d, reordered keys %d, late %d%n", v.lost(), v.reorderedKeys(),
          v.late());
      out.printf("  moves: started %d, refused %d%n", r.movesStarted(), r.movesRefused());
      if (o.reshapes() > 0) {
        out.printf("  splits %d, merges %d, refused %d%n", r.splits(), r.merges(),
            r.reshapesRefused());
      }
      out.printf("  router: redirected %d (a range had moved), overloaded %d, resent %d%n",
          r.router().redirected(), r.router().overloaded(), r.router().resent());
      out.printf("  publish latency ms: p50 %.2f  p99 %.2f  max %.2f%n",
          r.publishLatencyMs()[0], r.publishLatencyMs()[1], r.publishLatencyMs()[2]);
      out.printf("  end-to-end latency ms: p50 %.2f  p99 %.2f  max %.2f%n",
          r.endToEndLatencyMs()[0], r.endToEndLatencyMs()[1], r.endToEndLatencyMs()[2]);
      for (String e : v.examples()) {
        out.println("  e.g. " + e);
      }
    } else {
      out.println(Json.write(r.toJsonFields()));
    }
    if (v.published() > 0 && v.acknowledged() == 0) {
      System.err.println("plb workload: no publish was acknowledged — are ranges assigned to "
          + "running queue servers? (bin/plbctl map)");
      System.exit(1);
    }
    System.exit(v.ok() ? 0 : 1);
  }

  private static void usage(PrintStream out) {
    out.println("""
        usage: plb workload [--key=value | --key value ...] [--json]

        Producers and consumers against a running PLB cluster and its queue servers. Records
        every publish and delivery, then reports lost messages, duplicates, reordered keys and
        late messages, with latency percentiles. Exit 0 when nothing is lost or reordered.
        Producers and consumers may run as two processes (--role, --history).

          --endpoints=H:P,...  PLB nodes (default $PLB_ENDPOINTS or the local cluster)
          --keys=N             distinct ordering keys (default 1000)
          --rate=R             messages per second, all producers together (default 200)
          --size=B             payload bytes (default 100)
          --duration=S         seconds of traffic (default 10)
          --producers=N        producer sessions (default 2)
          --consumers=N        consumers (default 2)
          --moves=N            random range moves spread over the run (default 0)
          --reshapes=N         random splits and merges spread over the run (default 0)
          --publish-log=FILE   write every acknowledged publish (due time, key, wait) to FILE
          --role=R             all (default), producers or consumers: run producers (and the
                               moves) and consumers as two processes; both need --history
          --history=FILE       producers write their sends and outcomes to FILE when done;
                               consumers wait for it, then check it with their deliveries
          --settle=S           seconds to wait for outstanding deliveries (default 60)
          --seed=N             random seed (keys, payloads, moves)
          --json               the summary as one JSON object on the last line""");
  }
}
