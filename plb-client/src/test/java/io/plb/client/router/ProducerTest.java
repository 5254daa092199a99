package io.plb.client.router;

import static io.plb.client.router.TestMaps.MID;
import static io.plb.client.router.TestMaps.keysIn;
import static io.plb.client.router.TestMaps.map;
import static io.plb.client.router.TestMaps.moving;
import static io.plb.client.router.TestMaps.owned;
import static io.plb.client.router.TestMaps.until;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.PlbClientException;
import io.plb.core.error.ErrorCode;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.HandoverPhase;
import io.plb.proto.v1.PublishStatus;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The publish path against queue servers the test controls and a map it sets: batching, rule C4
 * (the barrier, ordered resends), rejection, overload, link failure, splits, back-pressure.
 */
class ProducerTest {
  private static final Duration WAIT = Duration.ofSeconds(10);
  private static final long END = Ring.RING_END;

  private FakeMapService maps;
  private FakeQueueServer a;
  private FakeQueueServer b;
  private Router router;

  @BeforeEach
  void setUp() throws InterruptedException {
    maps = new FakeMapService();
    a = new FakeQueueServer("A");
    b = new FakeQueueServer("B");
    maps.set(map(1, List.of(a, b), owned(0, END, "A", 1)));
    router = Router.start(List.of(maps.address()));
    assertTrue(router.awaitVersion(1, WAIT));
  }

  @AfterEach
  void tearDown() throws Exception {
    if (router != null) {
      router.close();
    }
    a.close();
    b.close();
    maps.close();
  }

  private static Producer.Config fast() {
    return Producer.Config.defaults()
        .withBackoff(Duration.ofMillis(10), Duration.ofMillis(100))
        .withCloseTimeout(Duration.ofSeconds(5));
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private void setMap(Producer p, io.plb.core.map.ClusterImage image) throws InterruptedException {
    maps.set(image);
    until(() -> p.mapVersion() >= image.version(), WAIT, "the producer to see " + image.version());
  }

  private static List<Long> seqs(List<FakeQueueServer.Item> items) {
    List<Long> out = new ArrayList<>();
    for (FakeQueueServer.Item i : items) {
      out.add(i.seq());
    }
    return out;
  }

  private static void allDone(List<CompletableFuture<PublishAck>> futures) throws Exception {
    CompletableFuture.allOf(futures.toArray(new CompletableFuture<?>[0]))
        .get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * For each key: the seqs accepted first at each server, concatenated in the given server order
   * (the order a handover delivers them), without repeats.
   */
  private static Map<String, List<Long>> firstAcceptedByKey(FakeQueueServer... servers) {
    Map<String, List<Long>> out = new HashMap<>();
    Set<Long> seen = new HashSet<>();
    for (FakeQueueServer s : servers) {
      for (FakeQueueServer.Item i : s.accepted()) {
        if (seen.add(i.seq())) {
          out.computeIfAbsent(i.key(), k -> new ArrayList<>()).add(i.seq());
        }
      }
    }
    return out;
  }

  private static void assertAscending(Map<String, List<Long>> byKey) {
    for (Map.Entry<String, List<Long>> e : byKey.entrySet()) {
      List<Long> sorted = new ArrayList<>(e.getValue());
      sorted.sort(null);
      assertEquals(sorted, e.getValue(), "order of key " + e.getKey());
    }
  }

  // ---------------------------------------------------------------- batching

  @Test
  void itemsAccumulateWhileARequestIsOutstanding() throws Exception {
    Producer p = router.producer("p1", fast());
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("k0", bytes("m1")));
    a.await(s -> s.requests().size() == 1, WAIT, "the first request");
    for (int i = 2; i <= 100; i++) {
      fs.add(p.publish("k" + (i % 7), bytes("m" + i)));
    }
    a.release();
    allDone(fs);

    List<List<FakeQueueServer.Item>> reqs = a.requests();
    assertEquals(2, reqs.size(), "one request out, the other 99 items wait and go as one batch");
    assertEquals(1, reqs.get(0).size());
    assertEquals(99, reqs.get(1).size());
    List<Long> expected = new ArrayList<>();
    for (long s = 1; s <= 100; s++) {
      expected.add(s);
    }
    assertEquals(expected, seqs(a.received()), "seq grows by one per message, across keys");
    assertEquals(1, reqs.get(0).get(0).settledBelow(), "m1 unfinished");
    assertEquals(2, reqs.get(1).get(0).settledBelow(), "m1 settled, m2 the lowest unfinished");
    for (FakeQueueServer.Item i : a.received()) {
      assertEquals("p1", i.producer());
      assertEquals(p.epoch(), i.epoch());
      assertTrue(p.epoch() >= 100, "a named producer's epoch is the one PLB opened it at");
      assertEquals(1, i.mapVersion(), "tagged with the router's version");
      assertEquals(0, i.rangeStart());
    }
    PublishAck ack = fs.get(41).get();
    assertEquals(42, ack.seq());
    assertEquals("p1", ack.producer());
    assertEquals("A", ack.serverId());
    assertEquals(1, ack.mapVersion());
    assertTrue(ack.latencyNanos() > 0);
    Producer.Stats st = p.stats();
    assertEquals(100, st.published());
    assertEquals(100, st.acknowledged());
    assertEquals(0, st.inFlight());
    assertEquals(2, st.requests());
  }

  @Test
  void batchesAreCappedByItemsAndBytes() throws Exception {
    Producer p = router.producer("p-cap", fast().withMaxBatchItems(10));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("k", bytes("first")));
    a.await(s -> s.requests().size() == 1, WAIT, "the first request");
    for (int i = 0; i < 45; i++) {
      fs.add(p.publish("k", bytes("m" + i)));
    }
    a.release();
    allDone(fs);
    List<Integer> sizes = new ArrayList<>();
    for (List<FakeQueueServer.Item> r : a.requests()) {
      sizes.add(r.size());
    }
    assertEquals(List.of(1, 10, 10, 10, 10, 5), sizes);

    // Bytes: each item is 1 key byte + 100 payload bytes + overhead; 300 bytes hold two.
    Producer q = router.producer("p-bytes", fast().withMaxBatchBytes(300));
    a.hold();
    int before = a.requests().size();
    List<CompletableFuture<PublishAck>> gs = new ArrayList<>();
    gs.add(q.publish("k", new byte[100]));
    a.await(s -> s.requests().size() == before + 1, WAIT, "q's first request");
    for (int i = 0; i < 5; i++) {
      gs.add(q.publish("k", new byte[100]));
    }
    a.release();
    allDone(gs);
    sizes.clear();
    for (List<FakeQueueServer.Item> r : a.requests().subList(before, a.requests().size())) {
      sizes.add(r.size());
    }
    assertEquals(List.of(1, 2, 2, 1), sizes);
  }

  // ---------------------------------------------------------------- rule C4

  @Test
  void refusedMessagesAreResentInOrderBeforeNewOnesAndTheBarrierHolds() throws Exception {
    // Up to four requests in flight: every message goes out at once, pipelined.
    Producer p = router.producer("p-c4", fast().withMaxRequestsPerLink(4));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    for (int i = 1; i <= 4; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.await(s -> s.requests().size() == 4, WAIT, "four pipelined requests");

    // The move switches: the router now routes the range to B. New messages must wait while
    // sends under the old entry are unsettled.
    setMap(p, map(2, List.of(a, b), moving(0, END, "A", 1, "B", HandoverPhase.SWITCH)));
    fs.add(p.publish("key", bytes("m5")));
    fs.add(p.publish("key", bytes("m6")));
    assertEquals(2, p.stats().waiting(), "m5 and m6 wait behind the unsettled sends to A");
    assertTrue(b.received().isEmpty(), "nothing goes to B while sends to A are unsettled");

    // A (sealed) accepts m1 and refuses the rest at version 2.
    a.setVersion(2);
    a.setPolicy(i -> i.seq() == 1 ? a.accept(i) : a.wrongOwner(i, 2));
    a.release();
    allDone(fs);

    assertEquals(List.of(1L), seqs(a.accepted()));
    assertEquals(List.of(2L, 3L, 4L, 5L, 6L), seqs(b.received()),
        "resends first, in their order, then the new messages");
    for (FakeQueueServer.Item i : b.received()) {
      assertEquals(2, i.mapVersion(), "resends are re-routed under the current map");
    }
    assertEquals("A", fs.get(0).get().serverId());
    assertEquals("B", fs.get(1).get().serverId());
    assertEquals(2, fs.get(1).get().mapVersion());
    Producer.Stats st = p.stats();
    assertEquals(3, st.refused());
    assertEquals(3, st.resent());
    assertEquals(6, st.acknowledged());
  }

  @Test
  void aResendWaitsUntilTheMapReachesTheRefusalVersion() throws Exception {
    Producer p = router.producer("p-ver", fast());
    a.setPolicy(i -> a.wrongOwner(i, 3)); // A already knows of a map the router has not seen
    CompletableFuture<PublishAck> f = p.publish("key", bytes("m1"));
    until(() -> p.stats().refused() == 1, WAIT, "the refusal");
    CompletableFuture<PublishAck> f2 = p.publish("key", bytes("m2"));
    assertEquals(2, p.stats().waiting(), "refused m1 waits for map 3; m2 waits behind it");
    assertEquals(1, a.received().size(), "nothing resent before the map has reached version 3");
    assertFalse(f.isDone());

    setMap(p, map(3, List.of(a, b), owned(0, END, "B", 2)));
    assertEquals("B", f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
    assertEquals("B", f2.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
    assertEquals(List.of(1L, 2L), seqs(b.received()));
    assertEquals(3, b.received().get(0).mapVersion());
  }

  @Test
  void anAbortRoundTripIsNotMistakenForTheSameEntry() throws Exception {
    // S -> T -> S: the owner is A throughout, but the entry changes; a send under SWITCH (to B)
    // that is unsettled must hold back sends under ABORT_SWITCH (to A again).
    setMapForRouter(map(2, List.of(a, b), moving(0, END, "A", 1, "B", HandoverPhase.SWITCH)));
    Producer p = router.producer("p-abort", fast());
    until(() -> p.mapVersion() == 2, WAIT, "the producer's first map");
    b.hold();
    CompletableFuture<PublishAck> f1 = p.publish("key", bytes("m1"));
    b.await(s -> s.requests().size() == 1, WAIT, "m1 at B");
    setMap(p, map(3, List.of(a, b), moving(0, END, "A", 1, "B", HandoverPhase.ABORT_SWITCH)));
    CompletableFuture<PublishAck> f2 = p.publish("key", bytes("m2"));
    assertEquals(1, p.stats().waiting(), "m2 waits: m1 is unsettled under another entry");
    assertTrue(a.received().isEmpty());
    b.setPolicy(i -> b.wrongOwner(i, 3));
    b.release();
    assertEquals("A", f1.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
    assertEquals("A", f2.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
    assertEquals(List.of(1L, 2L), seqs(a.received()));
  }

  private void setMapForRouter(io.plb.core.map.ClusterImage image) throws InterruptedException {
    maps.set(image);
    assertTrue(router.awaitVersion(image.version(), WAIT));
  }

  @Test
  void rangesDoNotWaitForEachOther() throws Exception {
    setMapForRouter(map(2, List.of(a, b), owned(0, MID, "A", 1), owned(MID, END, "B", 1)));
    Producer p = router.producer("p-ranges", fast().withMaxRequestsPerLink(4));
    until(() -> p.mapVersion() == 2, WAIT, "the producer's first map");
    String low = keysIn("low", 0, MID, 1).get(0);
    String high = keysIn("high", MID, END, 1).get(0);
    a.hold();
    p.publish(low, bytes("m1"));
    a.await(s -> s.requests().size() == 1, WAIT, "m1 at A");
    // The low range moves while m1 is unsettled: its next message waits, the high range's not.
    setMap(p, map(3, List.of(a, b), moving(0, MID, "A", 1, "B", HandoverPhase.SWITCH),
        owned(MID, END, "B", 1)));
    CompletableFuture<PublishAck> lowNext = p.publish(low, bytes("m2"));
    CompletableFuture<PublishAck> highNext = p.publish(high, bytes("m3"));
    assertEquals("B", highNext.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
    assertFalse(lowNext.isDone());
    a.release();
    assertEquals("B", lowNext.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).serverId());
  }

  // ---------------------------------------------------------------- outcomes

  @Test
  void rejectedFailsTheFutureAndIsNeverResent() throws Exception {
    Producer p = router.producer("p-rej", fast());
    a.setPolicy(i -> i.payload().equals("bad")
        ? a.result(i, PublishStatus.REJECTED, "payload says bad") : a.accept(i));
    CompletableFuture<PublishAck> f1 = p.publish("key", bytes("good"));
    CompletableFuture<PublishAck> f2 = p.publish("key", bytes("bad"));
    CompletableFuture<PublishAck> f3 = p.publish("key", bytes("good again"));
    assertEquals(1, f1.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).seq());
    ExecutionException e = assertThrows(ExecutionException.class,
        () -> f2.get(WAIT.toMillis(), TimeUnit.MILLISECONDS));
    PublishRejectedException r = assertInstanceOf(PublishRejectedException.class, e.getCause());
    assertEquals(2, r.seq());
    assertEquals("A", r.serverId());
    assertEquals(ErrorCode.INVALID_ARGUMENT, r.code());
    assertTrue(r.getMessage().contains("payload says bad"), r.getMessage());
    assertEquals(3, f3.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).seq());
    assertEquals(List.of(1L, 2L, 3L), seqs(a.received()), "the rejected message is sent once");
    Producer.Stats st = p.stats();
    assertEquals(1, st.rejected());
    assertEquals(0, st.resent());
    assertEquals(0, st.inFlight());
  }

  @Test
  void overloadedBacksOffAndResendsInOrder() throws Exception {
    Producer p = router.producer("p-ovl", fast());
    Set<Long> overloadedOnce = new HashSet<>();
    a.setPolicy(i -> i.seq() == 3 && overloadedOnce.add(i.seq())
        ? a.result(i, PublishStatus.OVERLOADED, "full") : a.accept(i));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("key", bytes("m1")));
    a.await(s -> s.requests().size() == 1, WAIT, "the first request");
    for (int i = 2; i <= 6; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.release(); // request 2 holds m2..m6: m2 accepted, m3..m6 overloaded
    allDone(fs);
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), seqs(a.accepted()));
    Producer.Stats st = p.stats();
    assertEquals(4, st.overloaded());
    assertEquals(4, st.resent());
  }

  @Test
  void anOverloadedMessageTakesBackTheUnsentMessagesBehindIt() throws Exception {
    // m2..m5 wait on the link while m1 is out. When m1 comes back OVERLOADED they must not be
    // written: the server may have room again by then and accept them ahead of m1's resend.
    Producer p = router.producer("p-ovl-queue", fast());
    Set<Long> once = new HashSet<>();
    a.setPolicy(i -> i.seq() == 1 && once.add(i.seq())
        ? a.result(i, PublishStatus.OVERLOADED, "full") : a.accept(i));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("key", bytes("m1")));
    a.await(s -> s.requests().size() == 1, WAIT, "m1's request");
    for (int i = 2; i <= 5; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.release();
    allDone(fs);
    assertEquals(List.of(1L, 1L, 2L, 3L, 4L, 5L), seqs(a.received()),
        "nothing behind m1 went out before m1 was sent again");
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seqs(a.accepted()));
    assertEquals(5, p.stats().resent(), "m1 resent, m2..m5 sent after it");
  }

  @Test
  void pipelinedRequestsTellTheServerHowManyOverloadsTheRouterHasSeen() throws Exception {
    // Two requests out at once: the server answers both OVERLOADED (its overload fence keeps m2
    // from overtaking m1). Every request says how many OVERLOADED answers the router had seen
    // when it built it, so the server can tell a resend from a request sent before the answer.
    Producer p = router.producer("p-ovl-seen", fast().withMaxRequestsPerLink(2));
    Set<Long> once = new HashSet<>();
    a.setPolicy(i -> i.seq() <= 2 && once.add(i.seq())
        ? a.result(i, PublishStatus.OVERLOADED, "full") : a.accept(i));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("key", bytes("m1")));
    a.await(s -> s.requests().size() == 1, WAIT, "m1's request");
    fs.add(p.publish("key", bytes("m2")));
    a.await(s -> s.requests().size() == 2, WAIT, "m2's request, pipelined");
    a.release();
    allDone(fs);
    assertEquals(List.of(1L, 2L), seqs(a.accepted()));
    List<FakeQueueServer.Item> got = a.received();
    assertEquals(List.of(0L, 0L, 2L, 2L), got.stream().map(FakeQueueServer.Item::overloadsSeen)
        .collect(java.util.stream.Collectors.toList()), got.toString());
  }

  @Test
  void aRefusedMessageTakesBackTheUnsentMessagesBehindIt() throws Exception {
    Producer p = router.producer("p-ref-queue", fast());
    Set<Long> once = new HashSet<>();
    // A refusal at the router's own version: nothing newer to wait for, so a backoff, then a
    // resend to the same server.
    a.setPolicy(i -> i.seq() == 1 && once.add(i.seq()) ? a.wrongOwner(i, 1) : a.accept(i));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish("key", bytes("m1")));
    a.await(s -> s.requests().size() == 1, WAIT, "m1's request");
    for (int i = 2; i <= 5; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.release();
    allDone(fs);
    assertEquals(List.of(1L, 1L, 2L, 3L, 4L, 5L), seqs(a.received()));
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seqs(a.accepted()));
    assertEquals(1, p.stats().refused());
  }

  @Test
  void aFailedLinkResendsItsUnsettledItemsInOrder() throws Exception {
    Producer p = router.producer("p-link", fast().withMaxRequestsPerLink(2));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    for (int i = 1; i <= 5; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.await(s -> s.requests().size() == 2, WAIT, "two requests in flight");
    a.setPolicy(a::accept);
    a.killPublishStreams();
    a.release();
    allDone(fs);
    List<FakeQueueServer.Item> second = new ArrayList<>();
    for (FakeQueueServer.Item i : a.received()) {
      if (i.stream() == 2) {
        second.add(i);
      }
    }
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seqs(second), "all five again, in order");
    // The two written ones may have been stored by A (their answers never came); the three
    // that waited on the link were never sent.
    for (FakeQueueServer.Item i : second) {
      assertEquals(i.seq() <= 2 ? List.of("A") : List.of(), i.maybeStoredAt(), i.toString());
    }
    assertEquals(2, a.publishStreamsOpened());
    Producer.Stats st = p.stats();
    assertEquals(1, st.linkFailures());
    assertEquals(5, st.resent());
    assertEquals(5, st.acknowledged());
  }

  @Test
  void aServerThatDiesIsReplacedByTheNewOwner() throws Exception {
    Producer p = router.producer("p-dead", fast().withMaxRequestsPerLink(4));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    for (int i = 1; i <= 3; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    a.await(s -> s.requests().size() == 3, WAIT, "three requests at A");
    a.close();
    maps.set(map(2, List.of(a, b), owned(0, END, "B", 2)));
    allDone(fs);
    assertEquals(List.of(1L, 2L, 3L), seqs(b.accepted()));
    for (FakeQueueServer.Item i : b.accepted()) {
      assertEquals(List.of("A"), i.maybeStoredAt(), "A may have stored it: " + i);
    }
    assertTrue(p.stats().linkFailures() >= 1);
  }

  // ---------------------------------------------------------------- splits and merges

  @Test
  void afterASplitNewRangesWaitForTheOldRangesSends() throws Exception {
    Producer p = router.producer("p-split", fast().withMaxRequestsPerLink(4));
    String low = keysIn("low", 0, MID, 1).get(0);
    String high = keysIn("high", MID, END, 1).get(0);
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish(low, bytes("m1")));
    fs.add(p.publish(high, bytes("m2")));
    a.await(s -> s.requests().size() == 2, WAIT, "m1 and m2 at A");

    setMap(p, map(2, List.of(a, b), owned(0, MID, "A", 1), owned(MID, END, "A", 1)));
    fs.add(p.publish(high, bytes("m3")));
    fs.add(p.publish(low, bytes("m4")));
    assertEquals(2, p.stats().waiting(), "both halves wait for the old range's sends");
    assertEquals(2, a.received().size());
    a.release();
    allDone(fs);
    Map<Long, FakeQueueServer.Item> bySeq = new HashMap<>();
    for (FakeQueueServer.Item i : a.received()) {
      bySeq.put(i.seq(), i);
    }
    assertEquals(MID, bySeq.get(3L).rangeStart());
    assertEquals(0, bySeq.get(4L).rangeStart());
    assertEquals(2, bySeq.get(3L).mapVersion());
    assertAscending(firstAcceptedByKey(a));
  }

  @Test
  void resendsAfterASplitGoWhereTheirKeysNowBelong() throws Exception {
    Producer p = router.producer("p-split-move", fast().withMaxRequestsPerLink(8));
    List<String> lows = keysIn("low", 0, MID, 2);
    List<String> highs = keysIn("high", MID, END, 2);
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish(lows.get(0), bytes("m1")));
    fs.add(p.publish(highs.get(0), bytes("m2")));
    fs.add(p.publish(lows.get(1), bytes("m3")));
    fs.add(p.publish(highs.get(1), bytes("m4")));
    a.await(s -> s.requests().size() == 4, WAIT, "four requests at A");

    // Split, and the upper half is moved to B (as a forced assignment would).
    setMap(p, map(2, List.of(a, b), owned(0, MID, "A", 1), owned(MID, END, "B", 2)));
    fs.add(p.publish(highs.get(0), bytes("m5")));
    fs.add(p.publish(lows.get(0), bytes("m6")));
    a.setVersion(2);
    a.setPolicy(i -> Ring.contains(MID, END, io.plb.core.keyspace.KeyHash.hash(i.key()))
        ? a.wrongOwner(i, 2) : a.accept(i));
    a.release();
    allDone(fs);

    assertEquals(List.of(2L, 4L, 5L), seqs(b.received()), "the upper keys' resends, then m5");
    for (FakeQueueServer.Item i : b.received()) {
      assertEquals(MID, i.rangeStart());
      assertEquals(2, i.mapVersion());
    }
    assertEquals(List.of(1L, 3L, 6L), seqs(a.accepted()));
    assertAscending(firstAcceptedByKey(a, b));
  }

  @Test
  void aMergeWaitsForBothOldRanges() throws Exception {
    setMapForRouter(map(2, List.of(a, b), owned(0, MID, "A", 1), owned(MID, END, "B", 1)));
    Producer p = router.producer("p-merge", fast().withMaxRequestsPerLink(4));
    until(() -> p.mapVersion() == 2, WAIT, "the producer's first map");
    String low = keysIn("low", 0, MID, 1).get(0);
    String high = keysIn("high", MID, END, 1).get(0);
    a.hold();
    b.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    fs.add(p.publish(low, bytes("m1")));
    fs.add(p.publish(high, bytes("m2")));
    a.await(s -> s.requests().size() == 1, WAIT, "m1 at A");
    b.await(s -> s.requests().size() == 1, WAIT, "m2 at B");

    // B's half moved to A and the halves merged; B refuses m2 at the new version.
    setMap(p, map(3, List.of(a, b), owned(0, END, "A", 2)));
    fs.add(p.publish(low, bytes("m3")));
    assertEquals(1, p.stats().waiting());
    a.release(); // m1 accepted; m3 still waits for m2
    fs.get(0).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    assertEquals(1, a.received().size(), "m3 waits while the other old range is unsettled");
    b.setPolicy(i -> b.wrongOwner(i, 3));
    b.release();
    allDone(fs);
    assertEquals(List.of(1L, 2L, 3L), seqs(a.received()));
    assertAscending(firstAcceptedByKey(a));
  }

  // ---------------------------------------------------------------- input, limits, lifecycle

  @Test
  void badInputIsRefusedAtOnce() {
    Producer p = router.producer("p-input", fast().withMaxPayloadBytes(16));
    assertThrows(IllegalArgumentException.class, () -> p.publish((byte[]) null, bytes("x")));
    assertThrows(IllegalArgumentException.class, () -> p.publish(new byte[0], bytes("x")));
    assertThrows(IllegalArgumentException.class, () -> p.publish((String) null, bytes("x")));
    assertThrows(IllegalArgumentException.class, () -> p.publish("", bytes("x")));
    assertThrows(IllegalArgumentException.class, () -> p.publish(new byte[1025], bytes("x")));
    assertThrows(IllegalArgumentException.class, () -> p.publish("k", null));
    assertThrows(IllegalArgumentException.class, () -> p.publish("k", new byte[17]));
    assertEquals(0, p.stats().published());
    assertTrue(a.received().isEmpty());
  }

  @Test
  void publishBlocksWhileTheSessionIsFull() throws Exception {
    Producer p = router.producer("p-full", fast().withMaxOutstanding(3));
    a.hold();
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      fs.add(p.publish("key", bytes("m" + i)));
    }
    AtomicReference<CompletableFuture<PublishAck>> fourth = new AtomicReference<>();
    Thread t = new Thread(() -> fourth.set(p.publish("key", bytes("m4"))));
    t.start();
    until(() -> t.getState() == Thread.State.TIMED_WAITING, WAIT, "the publisher to block");
    assertEquals(3, p.stats().published());
    a.release();
    t.join(WAIT.toMillis());
    assertFalse(t.isAlive());
    fs.add(fourth.get());
    allDone(fs);
    assertEquals(4, p.stats().acknowledged());
  }

  @Test
  void publishGivesUpAfterTheBlockTimeout() throws Exception {
    Producer p = router.producer("p-timeout",
        fast().withMaxOutstanding(1).withBlockTimeout(Duration.ofMillis(50)));
    a.hold();
    CompletableFuture<PublishAck> f1 = p.publish("key", bytes("m1"));
    CompletableFuture<PublishAck> f2 = p.publish("key", bytes("m2"));
    ExecutionException e = assertThrows(ExecutionException.class, () -> f2.get(1, TimeUnit.SECONDS));
    PlbClientException pe = assertInstanceOf(PlbClientException.class, e.getCause());
    assertEquals(ErrorCode.RESOURCE_EXHAUSTED, pe.code());
    a.release();
    assertEquals(1, f1.get(WAIT.toMillis(), TimeUnit.MILLISECONDS).seq());
    assertEquals(1, p.stats().published());
  }

  @Test
  void flushWaitsAndCloseFailsWhatIsLeft() throws Exception {
    Producer p = router.producer("p-close", fast());
    assertTrue(p.flush(Duration.ofMillis(1)), "nothing to wait for");
    p.publish("key", bytes("m1")).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    a.hold();
    CompletableFuture<PublishAck> f = p.publish("key", bytes("m2"));
    assertFalse(p.flush(Duration.ofMillis(20)));
    assertFalse(p.close(Duration.ofMillis(20)));
    ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(1, TimeUnit.SECONDS));
    PlbClientException pe = assertInstanceOf(PlbClientException.class, e.getCause());
    assertEquals(ErrorCode.UNAVAILABLE, pe.code());
    assertThrows(IllegalStateException.class, () -> p.publish("key", bytes("m3")));
    a.release();
  }

  @Test
  void messagesWaitForTheFirstMapAndForAnOwner() throws Exception {
    FakeMapService empty = new FakeMapService();
    try (Router r = Router.start(List.of(empty.address()))) {
      CompletableFuture<PublishAck> f = r.publish("key", bytes("early"));
      assertFalse(f.isDone());
      empty.set(map(1, List.of(a, b), owned(0, END, "", 0)));
      assertTrue(r.awaitVersion(1, WAIT));
      until(() -> r.producer().mapVersion() == 1, WAIT, "the producer's first map");
      assertFalse(f.isDone(), "an unassigned range holds its messages");
      empty.set(map(2, List.of(a, b), owned(0, END, "B", 1)));
      PublishAck ack = f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
      assertEquals("B", ack.serverId());
      assertEquals(2, ack.mapVersion());
    } finally {
      empty.close();
    }
  }

  @Test
  void theRouterPublishesThroughOneDefaultSession() throws Exception {
    PublishAck a1 = router.publish("key", bytes("m1")).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    PublishAck a2 = router.publish(bytes("key"), bytes("m2"))
        .get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    assertEquals(1, a1.seq());
    assertEquals(2, a2.seq());
    assertEquals(a1.producer(), a2.producer());
    assertEquals(router.producer().id(), a1.producer());
    assertEquals(36, a1.producer().length(), "a random UUID");
  }

  /**
   * Many keys through a move with refusals, pipelining and a link failure: every message
   * acknowledged, and each key's first acceptances, source then target, in publish order.
   */
  @Test
  void orderPerKeyHoldsThroughAMoveWithRefusalsAndALinkFailure() throws Exception {
    Producer p = router.producer("p-mix", fast().withMaxRequestsPerLink(3).withMaxBatchItems(7));
    List<String> keys = keysIn("k", 0, END, 12);
    List<CompletableFuture<PublishAck>> fs = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      fs.add(p.publish(keys.get(i % keys.size()), bytes("m" + i)));
    }
    a.hold();
    for (int i = 200; i < 400; i++) {
      fs.add(p.publish(keys.get(i % keys.size()), bytes("m" + i)));
    }
    setMap(p, map(2, List.of(a, b), moving(0, END, "A", 1, "B", HandoverPhase.SWITCH)));
    for (int i = 400; i < 600; i++) {
      fs.add(p.publish(keys.get(i % keys.size()), bytes("m" + i)));
    }
    // A takes every other held request, then refuses everything once sealed.
    a.setVersion(2);
    int[] answered = {0};
    a.setPolicy(i -> (answered[0]++ < 20) ? a.accept(i) : a.wrongOwner(i, 2));
    b.hold();
    a.release();
    b.await(s -> s.requests().size() >= 2, WAIT, "resends at B");
    b.killPublishStreams();
    b.release();
    allDone(fs);
    Map<String, List<Long>> order = firstAcceptedByKey(a, b);
    assertAscending(order);
    int total = 0;
    for (List<Long> l : order.values()) {
      total += l.size();
    }
    assertEquals(600, total, "every message accepted");
    assertEquals(0, p.stats().inFlight());
  }
}
