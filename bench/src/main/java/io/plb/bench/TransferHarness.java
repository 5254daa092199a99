package io.plb.bench;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.RangeEntry;
import io.plb.proto.v1.Acknowledge;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.proto.v1.SubscribeStart;
import io.plb.queue.store.HoldTimes;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * A handover whose source holds N messages in its sealed hold buffer, moved by the chunked
 * forward transfer (docs/design.md §5 "Chunked transfers"), on a real in-process cluster: 3 PLB
 * nodes, 2 durable reference queue servers. One run per N, each on a fresh cluster; N = 0 is
 * the baseline of the same run.
 *
 * <p><b>Scenario.</b> q1 owns the ring. A consumer takes one message of it and does not
 * acknowledge it, which keeps the handover to q2 in SWITCH (the source's backlog is not
 * drained). N messages routed under the map before SWITCH then reach q1: its hold buffer. The
 * consumer acknowledges: q1 seals, sends the buffer to q2 in chunks, reports drained; the map
 * completes the move and q2 releases the buffer into its queue.
 *
 * <p><b>Measured.</b> Decision (MoveRange returned) → COMPLETE on the leader's map, which
 * includes filling the hold buffer; seal (the acknowledgement) → COMPLETE, the transfer itself;
 * seal → q2 released everything; hold time per message (q2's histogram: acceptance at q1 →
 * release at q2). Checked: q2 queues exactly N messages and holds none, q1 holds none.
 *
 * <p>Thread model: the main thread drives everything; gRPC callbacks only hand answers over.
 * Usage: {@code --held 0,10000,1000000 --payload 100 --queue transfer.chunkMessages=1000
 * --root DIR} ({@code --queue} sets a queue server setting, repeatable). Exit 0 if OK, 2 if a
 * check failed.
 */
public final class TransferHarness {
  private TransferHarness() {}

  public static void main(String[] args) {
    Bench.exitWith("TransferHarness", () -> run(args));
  }

  private static int run(String[] args) throws Exception {
    List<Long> held = List.of(0L, 10_000L, 1_000_000L);
    int payload = 100;
    Path parent = null;
    Map<String, String> queueSettings = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--held" -> {
          held = new ArrayList<>();
          for (String n : Bench.value(args, ++i).split(",")) {
            held.add(Long.parseLong(n.strip()));
          }
        }
        case "--payload" -> payload = Integer.parseInt(Bench.value(args, ++i));
        case "--root" -> parent = Path.of(Bench.value(args, ++i));
        case "--queue" -> {
          String kv = Bench.value(args, ++i);
          int eq = kv.indexOf('=');
          if (eq <= 0) {
            throw new IllegalArgumentException("--queue takes key=value, not " + kv);
          }
          queueSettings.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        default -> throw new IllegalArgumentException("usage: TransferHarness [--held N,N,..] "
            + "[--payload BYTES] [--queue key=value]... [--root DIR]");
      }
    }
    System.out.println("TransferHarness " + Instant.now() + "; " + Bench.load()
        + "; payload " + payload + " B; queue settings " + queueSettings);
    System.out.printf("%10s %10s %12s %12s %12s %10s %10s %10s %10s%n", "held", "fill s",
        "dec->COMPL", "seal->COMPL", "seal->rel", "msg/s", "hold p50", "hold p99", "hold max");
    boolean ok = true;
    for (long n : held) {
      ok &= once(parent, n, payload, queueSettings);
    }
    return ok ? 0 : 2;
  }

  private static boolean once(Path parent, long n, int payload, Map<String, String> settings)
      throws Exception {
    Path root = Bench.tempRoot(parent, "plb-transfer-");
    try (BenchCluster c = BenchCluster.start(root, 2, settings, "leader")) {
      ClusterImage layout = c.layOut(1);
      long v0 = layout.version();
      ManagedChannel ch = NettyChannelBuilder.forTarget(c.queue("q1").address()).usePlaintext()
          .build();
      try {
        String body = "x".repeat(payload);
        awaitTrue(() -> c.queue("q1").agent().holdsLease()
            && c.queue("q1").agent().version() >= v0, "q1 serving");
        publish(ch, "p", 0, 1, body, v0);
        LinkedBlockingQueue<Delivery> got = new LinkedBlockingQueue<>();
        StreamObserver<SubscribeRequest> sub = QueueServiceGrpc.newStub(ch).subscribe(
            new StreamObserver<SubscribeResponse>() {
              @Override
              public void onNext(SubscribeResponse r) {
                got.addAll(r.getDeliveriesList());
              }

              @Override
              public void onError(Throwable t) {}

              @Override
              public void onCompleted() {}
            });
        sub.onNext(SubscribeRequest.newBuilder().setStart(SubscribeStart.newBuilder()
            .setConsumer("holder").setMaxInFlight(1)).build());
        Delivery first = got.poll(30, TimeUnit.SECONDS);
        if (first == null) {
          throw new IllegalStateException("the holder got nothing");
        }
        long decision = System.nanoTime();
        c.admin.move(0, "q2");
        awaitTrue(() -> phase(c) == HandoverPhase.SWITCH
            && c.queue("q1").agent().version() >= c.admin.getMap(0).version(), "SWITCH");
        publish(ch, "p", 1, n, body, v0); // routed before SWITCH, arriving after: held
        long filled = System.nanoTime();
        if (c.queue("q1").store().held() != n) {
          throw new IllegalStateException("q1 holds " + c.queue("q1").store().held() + ", not "
              + n);
        }
        long seal = System.nanoTime();
        synchronized (sub) {
          sub.onNext(SubscribeRequest.newBuilder().setAck(Acknowledge.newBuilder()
              .addDeliveryIds(first.getDeliveryId())).build());
        }
        awaitTrue(() -> {
          RangeEntry r = c.admin.getMap(0).rangeFor(0);
          return r.handover() == null && r.owner().equals("q2");
        }, "COMPLETE");
        long complete = System.nanoTime();
        awaitTrue(() -> c.queue("q2").store().held() == 0
            && c.queue("q2").store().queued() == n, "q2 released the buffer");
        long released = System.nanoTime();
        sub.onCompleted();
        HoldTimes.Snapshot h = c.queue("q2").store().holdTimes().snapshot();
        System.out.printf("%10d %10.1f %12s %12s %12s %10.0f %10s %10s %10s%n", n,
            (filled - decision) / 1e9, Bench.ms(complete - decision), Bench.ms(complete - seal),
            Bench.ms(released - seal), n / ((released - seal) / 1e9),
            Bench.ms(h.percentile(50) * 1000), Bench.ms(h.percentile(99) * 1000),
            Bench.ms(h.max() * 1000));
        boolean ok = c.queue("q1").store().held() == 0 && h.total() == n;
        if (!ok) {
          System.out.println("PROBLEM: q1 holds " + c.queue("q1").store().held()
              + ", q2 released " + h.total() + " of " + n);
        }
        return ok;
      } finally {
        ch.shutdownNow();
      }
    } finally {
      Bench.deleteTree(root);
    }
  }

  /** Publishes seq {@code from+1 .. from+n} of producer p in requests of 1,000 on one stream. */
  private static void publish(ManagedChannel ch, String producer, long from, long n, String body,
      long tag) throws InterruptedException {
    LinkedBlockingQueue<Object> answers = new LinkedBlockingQueue<>();
    StreamObserver<PublishRequest> req = QueueServiceGrpc.newStub(ch).publish(
        new StreamObserver<PublishResponse>() {
          @Override
          public void onNext(PublishResponse r) {
            answers.add(r);
          }

          @Override
          public void onError(Throwable t) {
            answers.add(t);
          }

          @Override
          public void onCompleted() {}
        });
    ByteString payload = ByteString.copyFromUtf8(body);
    long seq = from;
    int inFlight = 0;
    while (seq < from + n || inFlight > 0) {
      // Up to 4 requests outstanding: the server answers each in order.
      while (seq < from + n && inFlight < 4) {
        PublishRequest.Builder b = PublishRequest.newBuilder().setProducer(producer);
        for (int i = 0; i < 1000 && seq < from + n; i++) {
          seq++;
          b.addItems(PublishItem.newBuilder().setSeq(seq)
              .setKey(ByteString.copyFromUtf8("k" + (seq % 1000))).setMapVersion(tag)
              .setPayload(payload));
        }
        req.onNext(b.build());
        inFlight++;
      }
      Object a = answers.poll(60, TimeUnit.SECONDS);
      if (!(a instanceof PublishResponse r)) {
        throw new IllegalStateException("publish failed: " + a);
      }
      for (PublishResult res : r.getResultsList()) {
        if (res.getStatus() != PublishStatus.ACCEPTED) {
          throw new IllegalStateException("publish not accepted: " + res);
        }
      }
      inFlight--;
    }
    req.onCompleted();
  }

  private static HandoverPhase phase(BenchCluster c) {
    RangeEntry r = c.admin.getMap(0).rangeFor(0);
    return r.handover() == null ? null : r.handover().phase();
  }

  /** Polls every millisecond (GetMap of a one-range map is cheap) for up to 10 minutes. */
  private static void awaitTrue(BooleanSupplier condition, String what) {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("timed out waiting for " + what);
      }
      Bench.parkUntil(System.nanoTime() + 1_000_000);
    }
  }
}
