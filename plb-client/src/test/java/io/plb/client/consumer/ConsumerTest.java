package io.plb.client.consumer;

import static io.plb.client.router.TestMaps.map;
import static io.plb.client.router.TestMaps.owned;
import static io.plb.client.router.TestMaps.until;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.router.FakeMapService;
import io.plb.client.router.FakeQueueServer;
import io.plb.client.router.Router;
import io.plb.core.keyspace.Ring;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The consumer against queue servers the test controls: acks, redelivery, following the map. */
class ConsumerTest {
  private static final Duration WAIT = Duration.ofSeconds(10);

  private FakeMapService maps;
  private FakeQueueServer a;
  private FakeQueueServer b;
  private Router router;
  private Consumer consumer;

  @BeforeEach
  void setUp() throws InterruptedException {
    maps = new FakeMapService();
    a = new FakeQueueServer("A");
    b = new FakeQueueServer("B");
    maps.set(map(1, List.of(a), owned(0, Ring.RING_END, "A", 1)));
    router = Router.start(List.of(maps.address()));
    assertTrue(router.awaitVersion(1, WAIT));
  }

  @AfterEach
  void tearDown() throws Exception {
    if (consumer != null) {
      consumer.close();
    }
    router.close();
    a.close();
    b.close();
    maps.close();
  }

  private static Consumer.Config config(String name) {
    return Consumer.Config.defaults(name).withBackoff(Duration.ofMillis(10), Duration.ofMillis(100));
  }

  @Test
  void handsEveryDeliveryToTheHandlerInOrderAndAcknowledgesIt() throws Exception {
    List<String> handled = Collections.synchronizedList(new ArrayList<>());
    consumer = Consumer.start(router,
        (server, d) -> handled.add(server + ":" + d.getPayload().toStringUtf8()), config("c1"));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber");
    assertEquals(Set.of("c1"), a.subscriberNames());
    for (int i = 0; i < 50; i++) {
      a.offer("k" + (i % 3), "m" + i);
    }
    a.await(s -> s.acked().size() == 50, WAIT, "50 acknowledgements");
    List<String> expected = new ArrayList<>();
    for (int i = 0; i < 50; i++) {
      expected.add("A:m" + i);
    }
    assertEquals(expected, handled);
    until(() -> consumer.acknowledged() == 50, WAIT, "the consumer's count");
    assertEquals(50, consumer.delivered());
    assertEquals(0, consumer.redelivered());
    assertEquals(0, a.unackedCount());
  }

  @Test
  void acknowledgementsAreCoalescedWhileDeliveriesWait() throws Exception {
    CountDownLatch inHandler = new CountDownLatch(1);
    CountDownLatch letGo = new CountDownLatch(1);
    AtomicBoolean first = new AtomicBoolean(true);
    consumer = Consumer.start(router, (server, d) -> {
      if (first.compareAndSet(true, false)) {
        inHandler.countDown();
        letGo.await(WAIT.toMillis(), TimeUnit.MILLISECONDS);
      }
    }, config("c-acks").withMaxAckBatch(8));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber");
    for (int i = 0; i < 21; i++) {
      a.offer("k" + i, "m" + i);
    }
    assertTrue(inHandler.await(WAIT.toMillis(), TimeUnit.MILLISECONDS));
    until(() -> consumer.waiting() == 20, WAIT, "20 deliveries waiting behind the first");
    letGo.countDown();
    a.await(s -> s.acked().size() == 21, WAIT, "21 acknowledgements");
    assertEquals(3, a.ackMessages(), "8 + 8 + 5 ids: full batches, then what is left at once");
    assertEquals(0, consumer.waiting());
  }

  @Test
  void aFailedStreamIsReopenedAndWhatWasUnacknowledgedComesAgain() throws Exception {
    CountDownLatch inHandler = new CountDownLatch(1);
    CountDownLatch letGo = new CountDownLatch(1);
    AtomicBoolean first = new AtomicBoolean(true);
    List<String> handled = Collections.synchronizedList(new ArrayList<>());
    consumer = Consumer.start(router, (server, d) -> {
      if (first.compareAndSet(true, false)) {
        inHandler.countDown();
        letGo.await(WAIT.toMillis(), TimeUnit.MILLISECONDS);
      }
      handled.add(d.getPayload().toStringUtf8() + (d.getRedelivered() ? "*" : ""));
    }, config("c2"));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber");
    a.offer("k", "m0");
    a.offer("k", "m1");
    assertTrue(inHandler.await(WAIT.toMillis(), TimeUnit.MILLISECONDS));
    a.killSubscriber(); // m0 is in the handler, m1 waits: neither is acknowledged
    letGo.countDown();
    a.await(s -> s.subscribes() == 2 && s.unackedCount() == 0 && s.acked().size() >= 2, WAIT,
        "a second subscription that acknowledges both");
    assertTrue(consumer.reconnects() >= 1);
    assertTrue(consumer.redelivered() >= 1);
    assertTrue(handled.contains("m0*"), handled.toString());
    assertEquals("m1*", handled.get(handled.size() - 1), "m1 only on the new stream, redelivered");
  }

  @Test
  void aHandlerThatThrowsGetsTheDeliveryAgainAndOrderHolds() throws Exception {
    AtomicBoolean failOnce = new AtomicBoolean(true);
    List<String> handled = Collections.synchronizedList(new ArrayList<>());
    consumer = Consumer.start(router, (server, d) -> {
      String p = d.getPayload().toStringUtf8();
      if (p.equals("boom") && failOnce.compareAndSet(true, false)) {
        throw new IllegalStateException("the handler fails once");
      }
      handled.add(p);
    }, config("c3"));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber");
    a.offer("k", "boom");
    a.offer("k", "after");
    a.await(s -> s.acked().size() == 2 && s.unackedCount() == 0, WAIT, "both acknowledged");
    assertEquals(List.of("boom", "after"), handled);
    assertEquals(1, consumer.handlerFailures());
    assertTrue(consumer.redelivered() >= 1);
  }

  @Test
  void followsTheServersInTheMap() throws Exception {
    Set<String> threads = Collections.synchronizedSet(new HashSet<>());
    List<String> handled = Collections.synchronizedList(new ArrayList<>());
    consumer = Consumer.start(router, (server, d) -> {
      threads.add(server + "@" + Thread.currentThread().getName());
      handled.add(server + ":" + d.getPayload().toStringUtf8());
    }, config("c4"));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber at A");
    assertEquals(Set.of("A"), consumer.servers());

    maps.set(map(2, List.of(a, b), owned(0, Ring.RING_END, "A", 1)));
    b.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber at B once B is in the map");
    assertEquals(Set.of("A", "B"), consumer.servers());
    a.offer("k", "from A");
    b.offer("k", "from B");
    a.await(s -> s.acked().size() == 1, WAIT, "A's ack");
    b.await(s -> s.acked().size() == 1, WAIT, "B's ack");
    assertTrue(handled.containsAll(List.of("A:from A", "B:from B")));
    assertEquals(2, threads.size(), "one handler thread per server: " + threads);

    maps.set(map(3, List.of(a), owned(0, Ring.RING_END, "A", 1)));
    b.await(s -> s.cancelledSubscriptions() == 1 && !s.hasSubscriber(), WAIT,
        "B's stream closed once B left the map");
    until(() -> consumer.servers().equals(Set.of("A")), WAIT, "the consumer to drop B");
  }

  @Test
  void closeEndsEveryStream() throws Exception {
    consumer = Consumer.start(router, (server, d) -> { }, config("c5"));
    a.await(FakeQueueServer::hasSubscriber, WAIT, "a subscriber");
    consumer.close();
    a.await(s -> !s.hasSubscriber(), WAIT, "the subscription to end");
    a.offer("k", "nobody listens");
    assertEquals(0, consumer.delivered());
  }
}
