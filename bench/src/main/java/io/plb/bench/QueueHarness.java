package io.plb.bench;

import io.plb.client.consumer.Consumer;
import io.plb.client.router.Producer;
import io.plb.client.router.PublishAck;
import io.plb.client.router.Router;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.Delivery;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Throughput and publish latency of one reference queue server, end to end through the router's
 * {@link Producer}: 3 PLB nodes and one queue server ({@code q1}, owning the whole ring) in this
 * JVM on loopback, durable by default (every acknowledged write fsynced).
 *
 * <p>Per mode — {@code batched} (the Producer's defaults: up to 512 items or 1 MiB per request)
 * and {@code unbatched} ({@code maxBatchItems = 1}); both with one unanswered request per link —
 * two runs:
 * <ul>
 *   <li><b>saturated</b>: each of {@code --producers} sessions publishes as fast as its window
 *       ({@code --window} unfinished messages in all) lets it, for {@code --seconds} after
 *       {@code --warmup-s}. Throughput = messages acknowledged in the measured interval / its
 *       length; latency from the {@code publish} call to the ack (mostly the window's queueing:
 *       Little's law);
 *   <li><b>paced</b>: a steady rate of {@code --paced-fraction} of the saturated throughput (or
 *       {@code --paced-rate}), latency from each message's scheduled send time to its ack.
 * </ul>
 * One consumer acknowledges every delivery at once, so the queue stays short; it also gives the
 * time from acceptance ({@code accepted_at_micros}) to receipt. Between runs the harness waits
 * until the consumer has everything.
 *
 * <p>Thread model: one publishing thread per session, producer callbacks on gRPC threads,
 * consumer handlers on its stream threads; counters are atomics, samples are written once per
 * index and read after the run's counters show every write done.
 *
 * <p>Usage: see {@code --help}. Exit code 0 if OK, 2 if a check failed, 1 on error.
 */
public final class QueueHarness {
  private static final Logger LOG = LoggerFactory.getLogger(QueueHarness.class);

  private QueueHarness() {}

  record Options(List<String> modes, double seconds, double warmupSeconds, int payload,
      int producers, int keys, int window, double pacedFraction, double pacedRate, boolean sync,
      int timeoutSeconds, Path rootParent) {
    static final String USAGE = String.join("\n",
        "usage: QueueHarness [options]",
        "  --modes M,...       batched and/or unbatched (batched,unbatched); a mode ending",
        "                      in -plain publishes without idempotence (epoch 0), to compare",
        "  --seconds S         measured time of each run (10)",
        "  --warmup-s S        unmeasured traffic before each saturated run (3)",
        "  --payload N         payload bytes (1024)",
        "  --producers N       producer sessions, one thread each (1)",
        "  --keys N            ordering keys (1000)",
        "  --window N          unfinished messages over all sessions, saturated runs (1000)",
        "  --paced-fraction F  paced rate as a fraction of the saturated throughput (0.5)",
        "  --paced-rate R      paced rate in msg/s instead (0 = use the fraction)",
        "  --sync B            the queue server fsyncs acknowledged writes (true)",
        "  --timeout-s N       longest wait for the queue to drain (120)",
        "  --root DIR          parent of the temporary cluster folder (java.io.tmpdir)");

    static Options parse(String[] args) {
      List<String> modes = List.of("batched", "unbatched");
      double seconds = 10;
      double warmup = 3;
      int payload = 1024;
      int producers = 1;
      int keys = 1000;
      int window = 1000;
      double fraction = 0.5;
      double rate = 0;
      boolean sync = true;
      int timeout = 120;
      Path root = null;
      for (int i = 0; i < args.length; i++) {
        switch (args[i]) {
          case "--modes" -> modes = List.of(Bench.value(args, ++i).split(","));
          case "--seconds" -> seconds = Double.parseDouble(Bench.value(args, ++i));
          case "--warmup-s" -> warmup = Double.parseDouble(Bench.value(args, ++i));
          case "--payload" -> payload = Integer.parseInt(Bench.value(args, ++i));
          case "--producers" -> producers = Integer.parseInt(Bench.value(args, ++i));
          case "--keys" -> keys = Integer.parseInt(Bench.value(args, ++i));
          case "--window" -> window = Integer.parseInt(Bench.value(args, ++i));
          case "--paced-fraction" -> fraction = Double.parseDouble(Bench.value(args, ++i));
          case "--paced-rate" -> rate = Double.parseDouble(Bench.value(args, ++i));
          case "--sync" -> sync = Boolean.parseBoolean(Bench.value(args, ++i));
          case "--timeout-s" -> timeout = Integer.parseInt(Bench.value(args, ++i));
          case "--root" -> root = Path.of(Bench.value(args, ++i));
          case "-h", "--help" -> {
            System.out.println(USAGE);
            System.exit(0);
          }
          default -> throw new IllegalArgumentException("unknown argument " + args[i] + "\n"
              + USAGE);
        }
      }
      for (String m : modes) {
        String base = m.endsWith("-plain") ? m.substring(0, m.length() - "-plain".length()) : m;
        if (!base.equals("batched") && !base.equals("unbatched")) {
          throw new IllegalArgumentException("unknown mode " + m + "\n" + USAGE);
        }
      }
      if (!(seconds > 0) || warmup < 0 || payload < 0 || producers < 1 || keys < 1
          || window < producers || !(fraction > 0) || rate < 0 || timeout < 1) {
        throw new IllegalArgumentException("bad settings\n" + USAGE);
      }
      return new Options(modes, seconds, warmup, payload, producers, keys, window, fraction,
          rate, sync, timeout, root);
    }
  }

  /** What one run measured. */
  record Run(String mode, String kind, double offeredRate, long acked, double seconds,
      long[] latencies, long[] e2e, long requests, long items, long failed) {
    double throughput() {
      return acked / seconds;
    }
  }

  /** Consumer side: first deliveries and their acceptance-to-receipt times. */
  static final class Deliveries {
    final AtomicLong count = new AtomicLong();
    volatile long[] sink = new long[1 << 20];
    final AtomicLong sinkSize = new AtomicLong();
    volatile boolean recording;

    void onDelivery(Delivery d) {
      long e2e = (Bench.wallMicros() - d.getAcceptedAtMicros()) * 1_000;
      if (recording) {
        long i = sinkSize.getAndIncrement();
        long[] s = sink;
        if (i < s.length) {
          s[(int) i] = e2e;
        }
      }
      count.incrementAndGet();
    }

    long[] drainSamples() {
      int n = (int) Math.min(sinkSize.getAndSet(0), sink.length);
      return Arrays.copyOf(sink, n);
    }
  }

  public static void main(String[] args) {
    Bench.exitWith("queue harness", () -> run(Options.parse(args)));
  }

  static int run(Options o) throws Exception {
    Path root = Bench.tempRoot(o.rootParent(), "plb-queue-bench");
    int problems = 0;
    BenchCluster c = null;
    Router router = null;
    Consumer consumer = null;
    List<Run> runs = new ArrayList<>();
    try {
      say("date " + Instant.now() + "; " + Bench.load());
      say("settings " + o);
      c = BenchCluster.start(root, 1, Map.of("sync", Boolean.toString(o.sync())), "leader");
      ClusterImage layout = c.layOut(1);
      say("cluster up: 3 PLB nodes, queue server q1 owns the ring; map version "
          + layout.version() + "; queue store " + c.queues.get(0).store().dir()
          + " (sync " + c.queues.get(0).store().syncWrites() + ")");
      router = Router.start(c.plb.endpoints());
      if (!router.awaitVersion(layout.version(), Duration.ofSeconds(30))) {
        throw new IllegalStateException("router did not reach the map");
      }
      Deliveries deliveries = new Deliveries();
      consumer = Consumer.start(router, (server, d) -> deliveries.onDelivery(d),
          Consumer.Config.defaults("bench"));
      byte[][] keys = new byte[o.keys()][];
      for (int i = 0; i < keys.length; i++) {
        keys[i] = ("key-" + i).getBytes(StandardCharsets.UTF_8);
      }
      byte[] payload = new byte[o.payload()];
      new Random(1).nextBytes(payload);
      AtomicLong totalAcked = new AtomicLong();
      int sessionNo = 0;
      for (String mode : o.modes()) {
        Producer.Config base = Producer.Config.defaults();
        if (mode.startsWith("unbatched")) {
          base = base.withMaxBatchItems(1);
        }
        if (mode.endsWith("-plain")) {
          base = base.withIdempotent(false);
        }
        phase(mode + ": saturated");
        Run sat = saturated(router, base, mode, o, keys, payload, deliveries, totalAcked,
            sessionNo);
        sessionNo += o.producers();
        runs.add(sat);
        say(line(sat));
        problems += settle(deliveries, totalAcked, o);
        double rate = o.pacedRate() > 0 ? o.pacedRate() : sat.throughput() * o.pacedFraction();
        phase(mode + ": paced at " + rate);
        Run paced = paced(router, base, mode, o, keys, payload, deliveries, totalAcked, rate,
            sessionNo);
        sessionNo += o.producers();
        runs.add(paced);
        say(line(paced));
        problems += settle(deliveries, totalAcked, o);
      }
      say("end: " + Bench.load());
      say("");
      say("=== reference queue server, " + o.payload() + "-byte payloads, sync "
          + o.sync() + ", " + o.producers() + " producer session(s) ===");
      say(String.format("%-10s %-9s %9s %10s %9s %8s %8s %8s %8s %8s | %8s %8s | %s", "mode",
          "run", "offered", "msg/s", "acked", "p50", "p90", "p99", "p99.9", "max", "e2e p50",
          "e2e p99", "items/request"));
      for (Run r : runs) {
        say(table(r));
      }
      Run b = find(runs, "batched", "saturated");
      Run u = find(runs, "unbatched", "saturated");
      if (b != null && u != null) {
        say(String.format("saturated throughput batched/unbatched: %.1fx",
            b.throughput() / u.throughput()));
      }
      for (String mode : List.of("batched", "unbatched")) {
        Run idem = find(runs, mode, "saturated");
        Run plain = find(runs, mode + "-plain", "saturated");
        if (idem != null && plain != null) {
          say(String.format("%s saturated throughput idempotent/plain: %.3f", mode,
              idem.throughput() / plain.throughput()));
        }
      }
      for (Run r : runs) {
        if (r.failed() > 0) {
          say("PROBLEM: " + r.failed() + " publishes failed in " + r.mode() + "/" + r.kind());
          problems++;
        }
      }
      say("consumer: delivered " + consumer.delivered() + ", redelivered "
          + consumer.redelivered() + ", reconnects " + consumer.reconnects());
    } finally {
      phase("shutdown");
      if (consumer != null) {
        consumer.close();
      }
      if (router != null) {
        router.close();
      }
      if (c != null) {
        c.close();
      }
      Bench.deleteTree(root);
    }
    say(problems == 0 ? "result: OK" : "result: " + problems + " PROBLEM(S), see above");
    return problems == 0 ? 0 : 2;
  }

  private static Run find(List<Run> runs, String mode, String kind) {
    for (Run r : runs) {
      if (r.mode().equals(mode) && r.kind().equals(kind)) {
        return r;
      }
    }
    return null;
  }

  /** Per-session sample buffer; one publisher thread writes, callbacks fill latencies. */
  static final class Samples {
    final long[] latency;
    final AtomicLong n = new AtomicLong();

    Samples(int cap) {
      latency = new long[cap];
    }

    void add(long v) {
      long i = n.getAndIncrement();
      if (i < latency.length) {
        latency[(int) i] = v;
      }
    }
  }

  private static Run saturated(Router router, Producer.Config base, String mode, Options o,
      byte[][] keys, byte[] payload, Deliveries deliveries, AtomicLong totalAcked, int sessionNo)
      throws InterruptedException {
    int perSession = Math.max(1, o.window() / o.producers());
    List<Producer> producers = new ArrayList<>();
    for (int i = 0; i < o.producers(); i++) {
      producers.add(router.producer("sat-" + mode + "-" + (sessionNo + i),
          base.withMaxOutstanding(perSession)));
    }
    long warmEnd = System.nanoTime() + (long) (o.warmupSeconds() * 1e9);
    long measureEnd = warmEnd + (long) (o.seconds() * 1e9);
    AtomicLong ackedInWindow = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    Samples samples = new Samples(4_000_000);
    long[] requestsAtStart = new long[producers.size()];
    long[] ackedAtStart = new long[producers.size()];
    List<Thread> threads = new ArrayList<>();
    for (int pi = 0; pi < producers.size(); pi++) {
      Producer p = producers.get(pi);
      int idx = pi;
      Thread t = new Thread(() -> {
        Random rnd = new Random(idx);
        boolean marked = false;
        while (true) {
          long now = System.nanoTime();
          if (now >= measureEnd) {
            break;
          }
          if (!marked && now >= warmEnd) {
            Producer.Stats st = p.stats();
            requestsAtStart[idx] = st.requests();
            ackedAtStart[idx] = st.acknowledged();
            marked = true;
          }
          boolean measured = now >= warmEnd;
          CompletableFuture<PublishAck> f = p.publish(keys[rnd.nextInt(keys.length)], payload);
          f.whenComplete((ack, err) -> {
            if (err != null) {
              failed.incrementAndGet();
              return;
            }
            totalAcked.incrementAndGet();
            long done = System.nanoTime();
            if (measured && done < measureEnd) {
              ackedInWindow.incrementAndGet();
              samples.add(ack.latencyNanos());
            }
          });
        }
      }, "bench-saturate-" + pi);
      t.setDaemon(true);
      threads.add(t);
    }
    deliveries.drainSamples();
    // Receipts are recorded while the measured interval lasts.
    Thread recorder = new Thread(() -> {
      Bench.parkUntil(warmEnd);
      deliveries.drainSamples();
      deliveries.recording = true;
      Bench.parkUntil(measureEnd);
      deliveries.recording = false;
    });
    recorder.setDaemon(true);
    recorder.start();
    for (Thread t : threads) {
      t.start();
    }
    for (Thread t : threads) {
      t.join();
    }
    recorder.join();
    long requests = 0;
    long items = 0;
    for (int i = 0; i < producers.size(); i++) {
      Producer p = producers.get(i);
      p.flush(Duration.ofSeconds(o.timeoutSeconds()));
      Producer.Stats st = p.stats();
      requests += st.requests() - requestsAtStart[i];
      items += st.acknowledged() - ackedAtStart[i];
      p.close();
    }
    long n = Math.min(samples.n.get(), samples.latency.length);
    return new Run(mode, "saturated", 0, ackedInWindow.get(), o.seconds(),
        Arrays.copyOf(samples.latency, (int) n), deliveries.drainSamples(), requests, items,
        failed.get());
  }

  private static Run paced(Router router, Producer.Config base, String mode, Options o,
      byte[][] keys, byte[] payload, Deliveries deliveries, AtomicLong totalAcked, double rate,
      int sessionNo) throws InterruptedException {
    List<Producer> producers = new ArrayList<>();
    for (int i = 0; i < o.producers(); i++) {
      producers.add(router.producer("paced-" + mode + "-" + (sessionNo + i),
          base.withMaxOutstanding(100_000)));
    }
    AtomicLong acked = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    Samples samples = new Samples((int) Math.min(4_000_000, rate * o.seconds() * 2 + 1000));
    long start = System.nanoTime() + 50_000_000L;
    long end = start + (long) (o.seconds() * 1e9);
    double period = 1e9 * o.producers() / rate;
    List<Thread> threads = new ArrayList<>();
    deliveries.drainSamples();
    deliveries.recording = true;
    for (int pi = 0; pi < producers.size(); pi++) {
      Producer p = producers.get(pi);
      int idx = pi;
      Thread t = new Thread(() -> {
        Random rnd = new Random(100 + idx);
        long first = start + (long) (period * idx / o.producers());
        for (long i = 0; ; i++) {
          long intended = first + (long) (i * period);
          if (intended >= end) {
            break;
          }
          Bench.parkUntil(intended);
          p.publish(keys[rnd.nextInt(keys.length)], payload).whenComplete((ack, err) -> {
            if (err != null) {
              failed.incrementAndGet();
              return;
            }
            totalAcked.incrementAndGet();
            acked.incrementAndGet();
            samples.add(System.nanoTime() - intended);
          });
        }
      }, "bench-paced-" + pi);
      t.setDaemon(true);
      threads.add(t);
    }
    for (Thread t : threads) {
      t.start();
    }
    for (Thread t : threads) {
      t.join();
    }
    long requests = 0;
    long items = 0;
    for (Producer p : producers) {
      p.flush(Duration.ofSeconds(o.timeoutSeconds()));
      requests += p.stats().requests();
      items += p.stats().acknowledged();
      p.close();
    }
    deliveries.recording = false;
    long n = Math.min(samples.n.get(), samples.latency.length);
    return new Run(mode, "paced", rate, acked.get(), o.seconds(),
        Arrays.copyOf(samples.latency, (int) n), deliveries.drainSamples(), requests, items,
        failed.get());
  }

  /** Waits until the consumer has received every acknowledged message. */
  private static int settle(Deliveries deliveries, AtomicLong totalAcked, Options o) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(o.timeoutSeconds());
    while (deliveries.count.get() < totalAcked.get()) {
      if (System.nanoTime() > deadline) {
        say("PROBLEM: the consumer has " + deliveries.count.get() + " of " + totalAcked.get()
            + " acknowledged messages after " + o.timeoutSeconds() + " s");
        return 1;
      }
      LockSupport.parkNanos(5_000_000L);
    }
    return 0;
  }

  private static String line(Run r) {
    return r.mode() + "/" + r.kind() + ": " + r.acked() + " acknowledged in " + r.seconds()
        + " s = " + String.format("%.0f", r.throughput()) + " msg/s; " + Bench.load();
  }

  private static String table(Run r) {
    long[] s = r.latencies().clone();
    Arrays.sort(s);
    long[] e = r.e2e().clone();
    Arrays.sort(e);
    return String.format("%-10s %-9s %9s %10.0f %9d %8.2f %8.2f %8.2f %8.2f %8.2f | %8.2f %8.2f"
            + " | %.1f", r.mode(), r.kind(),
        r.offeredRate() > 0 ? String.format("%.0f", r.offeredRate()) : "max", r.throughput(),
        r.acked(), Bench.pct(s, 50) / 1e6, Bench.pct(s, 90) / 1e6, Bench.pct(s, 99) / 1e6,
        Bench.pct(s, 99.9) / 1e6, s.length == 0 ? 0 : s[s.length - 1] / 1e6,
        Bench.pct(e, 50) / 1e6, Bench.pct(e, 99) / 1e6,
        r.requests() == 0 ? 0.0 : (double) r.items() / r.requests());
  }

  private static void say(String line) {
    System.out.println(line);
  }

  private static void phase(String what) {
    LOG.info("=== harness phase: {}", what);
  }
}
