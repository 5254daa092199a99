package io.plb.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.core.keyspace.KeyHash;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.QueueStatusRequest;
import io.plb.queue.testing.QueueCluster;
import io.plb.queue.testing.RawQueueClient;
import io.plb.server.testing.TestCluster;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A message answered OVERLOADED must not be overtaken by a later message of its producer and
 * range on the same stream — neither later in the same request nor in a request the router had
 * already sent before it saw the answer. The OVERLOADED here comes from a tag the server cannot
 * reach within {@code mapWait} (a router ahead of the server's watch), which is the case where a
 * later item would otherwise be accepted at once.
 */
class OverloadFenceTest {
  @TempDir static Path tmp;
  static QueueCluster cluster;
  static ManagedChannel channel;

  @BeforeAll
  static void start() throws Exception {
    cluster = QueueCluster.start(tmp, 1, Map.of(), Map.of("mapWait", "200ms"));
    cluster.layOut(2);
    channel = NettyChannelBuilder.forTarget(cluster.queue(0).address()).usePlaintext().build();
  }

  @AfterAll
  static void stop() {
    channel.shutdownNow();
    cluster.close();
  }

  /** One Publish stream, requests written back to back, answers read in order. */
  private static final class Stream implements AutoCloseable {
    final LinkedBlockingQueue<Object> answers = new LinkedBlockingQueue<>();
    final StreamObserver<PublishRequest> requests;

    Stream() {
      requests = QueueServiceGrpc.newStub(channel).publish(new StreamObserver<>() {
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
    }

    void send(PublishRequest r) {
      requests.onNext(r);
    }

    List<PublishStatus> next() throws InterruptedException {
      Object r = answers.poll(20, TimeUnit.SECONDS);
      assertTrue(r instanceof PublishResponse, "no answer: " + r);
      return ((PublishResponse) r).getResultsList().stream().map(PublishResult::getStatus)
          .collect(Collectors.toList());
    }

    @Override
    public void close() {
      requests.onCompleted();
    }
  }

  private static long version() {
    return cluster.queue(0).agent().version();
  }

  private static PublishItem item(long seq, String key, long tag) {
    long hash = KeyHash.hash(key.getBytes(StandardCharsets.UTF_8));
    return PublishItem.newBuilder().setSeq(seq).setKey(ByteString.copyFromUtf8(key))
        .setPayload(ByteString.copyFromUtf8(key + "#" + seq)).setMapVersion(tag)
        .setRangeStart(cluster.map().rangeFor(hash).start()).build();
  }

  private static PublishRequest request(String producer, Long overloadsSeen, PublishItem... items) {
    PublishRequest.Builder b = PublishRequest.newBuilder().setProducer(producer);
    if (overloadsSeen != null) {
      b.setOverloadsSeen(overloadsSeen);
    }
    for (PublishItem i : items) {
      b.addItems(i);
    }
    return b.build();
  }

  /** Two keys in different ranges of the two-range map. */
  private static String[] keysInTwoRanges() {
    String first = "fence-a";
    long firstRange = cluster.map().rangeFor(KeyHash.hash(first.getBytes(StandardCharsets.UTF_8)))
        .start();
    for (int i = 0; ; i++) {
      String k = "fence-b" + i;
      if (cluster.map().rangeFor(KeyHash.hash(k.getBytes(StandardCharsets.UTF_8))).start()
          != firstRange) {
        return new String[] {first, k};
      }
    }
  }

  private static long overloadedTotal() {
    return QueueServiceGrpc.newBlockingStub(channel)
        .getQueueStatus(QueueStatusRequest.getDefaultInstance()).getOverloadedTotal();
  }

  @Test
  void laterItemsOfTheRangeInTheSameRequestAreOverloadedToo() throws Exception {
    long v = version();
    long before = overloadedTotal();
    List<Delivery> got = new CopyOnWriteArrayList<>();
    try (RawQueueClient consumer = new RawQueueClient(cluster.queue(0).address());
        Stream s = new Stream()) {
      consumer.subscribe("c-same", got);
      // m1 is tagged with a version the server will not reach; m2 would be taken at once.
      s.send(request("p-same", 0L, item(1, "same", v + 1_000_000), item(2, "same", v)));
      assertEquals(List.of(PublishStatus.OVERLOADED, PublishStatus.OVERLOADED), s.next());
      assertEquals(before + 2, overloadedTotal());
      // The router, having seen both answers, resends them in order under the current map.
      s.send(request("p-same", 2L, item(1, "same", v), item(2, "same", v)));
      assertEquals(List.of(PublishStatus.ACCEPTED, PublishStatus.ACCEPTED), s.next());
      awaitPayloads(got, "same#1", "same#2");
    }
  }

  @Test
  void aRequestSentBeforeTheRouterSawTheOverloadIsFencedOnlyForThatRange() throws Exception {
    long v = version();
    String[] keys = keysInTwoRanges();
    List<Delivery> got = new CopyOnWriteArrayList<>();
    try (RawQueueClient consumer = new RawQueueClient(cluster.queue(0).address());
        Stream s = new Stream()) {
      consumer.subscribe("c-pipe", got);
      // Two requests written back to back: the second was built before the first was answered.
      s.send(request("p-pipe", 0L, item(1, keys[0], v + 1_000_000)));
      s.send(request("p-pipe", 0L, item(2, keys[0], v), item(3, keys[1], v)));
      assertEquals(List.of(PublishStatus.OVERLOADED), s.next());
      assertEquals(List.of(PublishStatus.OVERLOADED, PublishStatus.ACCEPTED), s.next(),
          "seq 2 shares seq 1's range and must wait for its resend; seq 3 is another range");
      // The router has now seen two OVERLOADED answers and resends 1 and 2 in order.
      s.send(request("p-pipe", 2L, item(1, keys[0], v), item(2, keys[0], v)));
      assertEquals(List.of(PublishStatus.ACCEPTED, PublishStatus.ACCEPTED), s.next());
      awaitPayloads(got, keys[0] + "#1", keys[0] + "#2", keys[1] + "#3");
      List<String> firstKey = got.stream().map(d -> d.getPayload().toStringUtf8())
          .filter(p -> p.startsWith(keys[0] + "#")).collect(Collectors.toList());
      assertEquals(List.of(keys[0] + "#1", keys[0] + "#2"), firstKey);
    }
  }

  @Test
  void aRequestThatHadSeenTheOverloadIsNotFenced() throws Exception {
    long v = version();
    try (Stream s = new Stream()) {
      s.send(request("p-seen", 0L, item(1, "seen", v + 1_000_000)));
      assertEquals(List.of(PublishStatus.OVERLOADED), s.next());
      s.send(request("p-seen", 1L, item(1, "seen", v)));
      assertEquals(List.of(PublishStatus.ACCEPTED), s.next());
    }
  }

  @Test
  void withoutOverloadsSeenOnlyTheRestOfTheRequestIsFenced() throws Exception {
    long v = version();
    try (Stream s = new Stream()) {
      s.send(request("p-legacy", null, item(1, "legacy", v + 1_000_000),
          item(2, "legacy", v)));
      assertEquals(List.of(PublishStatus.OVERLOADED, PublishStatus.OVERLOADED), s.next());
      s.send(request("p-legacy", null, item(1, "legacy", v), item(2, "legacy", v)));
      assertEquals(List.of(PublishStatus.ACCEPTED, PublishStatus.ACCEPTED), s.next());
    }
  }

  @Test
  void theFenceIsPerProducer() throws Exception {
    long v = version();
    try (Stream s = new Stream()) {
      s.send(request("p-one", 0L, item(1, "shared", v + 1_000_000)));
      assertEquals(List.of(PublishStatus.OVERLOADED), s.next());
      s.send(request("p-two", 0L, item(1, "shared", v)));
      assertEquals(List.of(PublishStatus.ACCEPTED), s.next());
      assertNotEquals(0, overloadedTotal());
    }
  }

  private static void awaitPayloads(List<Delivery> got, String... payloads) {
    List<String> want = List.of(payloads);
    TestCluster.await(Duration.ofSeconds(20), "delivery of " + want, () -> got.stream()
        .map(d -> d.getPayload().toStringUtf8()).collect(Collectors.toList()).containsAll(want));
  }
}
