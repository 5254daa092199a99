package io.plb.core.check;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.check.HistoryChecker.Verdict;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Tests of {@link History} and {@link HistoryChecker}: one test per rule of the checker (loss,
 * duplicates, per-(producer, key) order, late messages, phantoms, unacknowledged messages), then
 * recording from many threads, then a history of a million events.
 *
 * <p>Helpers: {@link #sendAck} records a send and its ack; {@link #deliver} records a plain
 * delivery to consumer {@code c1}.
 */
class HistoryCheckerTest {

  private static void sendAck(History h, String producer, long seq, String key) {
    h.publishSent(producer, seq, key);
    h.publishAcked(producer, seq);
  }

  private static void deliver(History h, String producer, long seq, String key) {
    h.delivered("c1", producer, seq, key, false, false);
  }

  private static void assertOnlyExamplesContaining(Verdict v, String... fragments) {
    assertEquals(fragments.length, v.examples().size(), v.examples().toString());
    for (int i = 0; i < fragments.length; i++) {
      assertTrue(v.examples().get(i).contains(fragments[i]), v.examples().get(i));
    }
  }

  // ---- clean histories ----

  @Test
  void emptyHistoryIsOk() {
    Verdict v = HistoryChecker.check(new History());
    assertTrue(v.ok(), v.toString());
    assertEquals(0, v.published());
    assertEquals(0, v.delivered());
    assertTrue(v.examples().isEmpty());
  }

  @Test
  void cleanHistoryIsOk() {
    History h = new History();
    // Two producers, two keys each, sends interleaved across keys; seq is per producer.
    for (int seq = 0; seq < 10; seq++) {
      sendAck(h, "p1", seq, seq % 2 == 0 ? "a" : "b");
      sendAck(h, "p2", seq, seq % 3 == 0 ? "a" : "c");
    }
    for (int seq = 0; seq < 10; seq++) {
      deliver(h, "p1", seq, seq % 2 == 0 ? "a" : "b");
      h.delivered("c2", "p2", seq, seq % 3 == 0 ? "a" : "c", false, false);
    }
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(
        new Verdict(20, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, List.of()), v);
    assertTrue(v.toString().startsWith("OK: published=20 acknowledged=20"), v.toString());
  }

  @Test
  void deliveryMayBeRecordedBeforeItsSend() {
    History h = new History();
    deliver(h, "p1", 0, "k");
    deliver(h, "p1", 1, "k");
    sendAck(h, "p1", 0, "k");
    sendAck(h, "p1", 1, "k");
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(2, v.published());
    assertEquals(0, v.phantom());
  }

  @Test
  void arbitrarySeqValuesAndResendsAreHandled() {
    History h = new History();
    long[] seqs = {Long.MIN_VALUE, -5, 0, 1L << 40, Long.MAX_VALUE};
    for (long s : seqs) {
      h.publishSent("p", s, "k");
      h.publishSent("p", s, "k"); // a resend of the same message
      h.publishAcked("p", s);
    }
    for (long s : seqs) {
      deliver(h, "p", s, "k");
    }
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(5, v.published());
    assertEquals(5, v.acknowledged());
  }

  // ---- loss ----

  @Test
  void acknowledgedButNeverDeliveredIsLost() {
    History h = new History();
    for (int seq = 0; seq < 5; seq++) {
      sendAck(h, "p1", seq, "k");
    }
    deliver(h, "p1", 0, "k");
    deliver(h, "p1", 1, "k");
    deliver(h, "p1", 3, "k"); // 2 and 4 never arrive: lost, and 2 is skipped, not reordered
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(2, v.lost());
    assertEquals(0, v.reorderedKeys());
    assertOnlyExamplesContaining(
        v, "lost: producer=p1 seq=2 key=\"k\"", "lost: producer=p1 seq=4 key=\"k\"");
    assertTrue(v.toString().startsWith("FAILED"), v.toString());
    assertTrue(v.toString().contains("lost=2"), v.toString());
  }

  @Test
  void lateDeliveryIsNotLoss() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    h.delivered("c1", "p1", 0, "k", false, true);
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(0, v.lost());
    assertEquals(1, v.late());
  }

  // ---- unacknowledged messages ----

  @Test
  void unacknowledgedMessagesMayOrMayNotBeDelivered() {
    History h = new History();
    h.publishSent("p1", 0, "k"); // in flight, never delivered
    h.publishSent("p1", 1, "k"); // in flight, delivered
    h.publishSent("p1", 2, "k");
    h.publishFailed("p1", 2, "DEADLINE_EXCEEDED"); // failed, delivered anyway (indeterminate)
    h.publishSent("p1", 3, "k");
    h.publishFailed("p1", 3, null); // failed, never delivered
    h.publishSent("p1", 4, "k");
    h.publishFailed("p1", 4, "UNAVAILABLE"); // failed first, then acked after a retry: acked wins
    h.publishAcked("p1", 4);
    deliver(h, "p1", 1, "k");
    deliver(h, "p1", 2, "k");
    deliver(h, "p1", 4, "k");
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(5, v.published());
    assertEquals(1, v.acknowledged());
    assertEquals(2, v.failed());
    assertEquals(3, v.delivered());
    assertEquals(0, v.lost());
  }

  @Test
  void failedUnacknowledgedMessageStillTakesPartInOrder() {
    History h = new History();
    h.publishSent("p1", 0, "k");
    h.publishFailed("p1", 0, "UNAVAILABLE");
    sendAck(h, "p1", 1, "k");
    deliver(h, "p1", 1, "k");
    deliver(h, "p1", 0, "k");
    Verdict v = HistoryChecker.check(h);
    assertEquals(1, v.reorderedKeys(), v.toString());
  }

  // ---- duplicates ----

  @Test
  void duplicateWithoutFlagIsUnexplained() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    sendAck(h, "p1", 1, "k");
    deliver(h, "p1", 0, "k");
    deliver(h, "p1", 1, "k");
    h.delivered("c2", "p1", 1, "k", false, false);
    h.delivered("c2", "p1", 1, "k", false, false);
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(4, v.delivered());
    assertEquals(2, v.duplicates());
    assertEquals(2, v.unexplainedDuplicates());
    assertEquals(0, v.reorderedKeys());
    assertOnlyExamplesContaining(
        v,
        "unexplained duplicate: producer=p1 seq=1 key=\"k\": delivered again (event #6, consumer"
            + " c2) without redelivered or late flag; first delivered at event #5 to consumer c1",
        "event #7");
  }

  @Test
  void redeliveredOrLateDuplicatesAreExplained() {
    History h = new History();
    for (int seq = 0; seq < 4; seq++) {
      sendAck(h, "p1", seq, "k");
    }
    // c1 receives 0..2, goes away before acking 1 and 2; c2 gets them again, flagged.
    for (int seq = 0; seq < 3; seq++) {
      deliver(h, "p1", seq, "k");
    }
    h.delivered("c2", "p1", 1, "k", true, false);
    h.delivered("c2", "p1", 2, "k", true, false);
    h.delivered("c2", "p1", 3, "k", false, false);
    // A lost server forwards 0 again as a late message.
    h.delivered("c2", "p1", 0, "k", false, true);
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(3, v.duplicates());
    assertEquals(0, v.unexplainedDuplicates());
    // The duplicate deliveries of 1, 2 and 0 after 2 are ignored by the order check.
    assertEquals(0, v.reorderedKeys());
    assertEquals(1, v.late());
    assertEquals(1, v.keysWithLateMessages());
  }

  @Test
  void redeliveredFlagOnAFirstDeliveryIsAPlainDelivery() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    sendAck(h, "p1", 1, "k");
    h.delivered("c2", "p1", 0, "k", true, false); // c1 got it first but never recorded it
    h.delivered("c2", "p1", 1, "k", false, false);
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(0, v.duplicates());
  }

  // ---- order ----

  @Test
  void reorderingWithinAKeyCountsOncePerKey() {
    History h = new History();
    for (int seq = 0; seq < 6; seq++) {
      sendAck(h, "p1", seq, "a");
    }
    for (int seq = 6; seq < 9; seq++) {
      sendAck(h, "p1", seq, "b");
    }
    // Key a: 2, 0, 1, 5, 3, 4: four deliveries arrive after a higher seq, one key.
    for (int seq : new int[] {2, 0, 1, 5, 3, 4}) {
      deliver(h, "p1", seq, "a");
    }
    // Key b: 8, 7, 6.
    for (int seq : new int[] {8, 7, 6}) {
      deliver(h, "p1", seq, "b");
    }
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(2, v.reorderedKeys());
    assertEquals(0, v.lost());
    assertEquals(0, v.duplicates());
    assertOnlyExamplesContaining(
        v,
        "reordered: producer=p1 key=\"a\": seq=0 delivered (event #19, consumer c1) after seq=2"
            + " (event #18, consumer c1)",
        "reordered: producer=p1 key=\"b\": seq=7");
  }

  @Test
  void interleavingAcrossKeysOrProducersIsNotReordering() {
    History h = new History();
    // One producer: seq 0 (key a), 1 (key b), 2 (key a), 3 (key b).
    sendAck(h, "p1", 0, "a");
    sendAck(h, "p1", 1, "b");
    sendAck(h, "p1", 2, "a");
    sendAck(h, "p1", 3, "b");
    // Another producer on the same key, with seqs lower than p1's.
    sendAck(h, "p2", 0, "a");
    sendAck(h, "p2", 1, "a");
    // Key b is delivered entirely before key a; p2's messages are interleaved with p1's.
    deliver(h, "p1", 1, "b");
    deliver(h, "p1", 3, "b");
    deliver(h, "p1", 0, "a");
    deliver(h, "p2", 0, "a");
    deliver(h, "p1", 2, "a");
    deliver(h, "p2", 1, "a");
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(0, v.reorderedKeys());
  }

  // ---- late messages ----

  @Test
  void lateMessagesAreCountedSeparatelyNotAsReordered() {
    History h = new History();
    for (int seq = 0; seq < 6; seq++) {
      sendAck(h, "p1", seq, "a");
    }
    sendAck(h, "p1", 6, "b");
    // Seqs 1 and 2 were stored on a server declared DOWN; the new owner delivered 3..5 first,
    // then the old server came back and forwarded 1 and 2 as late messages.
    deliver(h, "p1", 0, "a");
    deliver(h, "p1", 3, "a");
    deliver(h, "p1", 4, "a");
    h.delivered("c1", "p1", 1, "a", false, true);
    deliver(h, "p1", 5, "a");
    h.delivered("c1", "p1", 2, "a", false, true);
    // A late message that causes no inversion still marks its key.
    h.delivered("c1", "p1", 6, "b", false, true);
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(3, v.late());
    assertEquals(2, v.keysWithLateMessages());
    assertEquals(0, v.reorderedKeys());
    assertEquals(0, v.lost());
    assertTrue(v.examples().isEmpty(), v.examples().toString());
  }

  @Test
  void lateHigherSeqDeliveredFirstIsNotReordered() {
    History h = new History();
    sendAck(h, "p1", 0, "a");
    sendAck(h, "p1", 1, "a");
    h.delivered("c1", "p1", 1, "a", false, true);
    deliver(h, "p1", 0, "a");
    Verdict v = HistoryChecker.check(h);
    assertTrue(v.ok(), v.toString());
    assertEquals(1, v.keysWithLateMessages());
  }

  @Test
  void inversionBetweenTwoInOrderMessagesIsReorderedEvenOnAKeyWithLateMessages() {
    History h = new History();
    for (int seq = 0; seq < 4; seq++) {
      sendAck(h, "p1", seq, "a");
    }
    h.delivered("c1", "p1", 0, "a", false, true);
    deliver(h, "p1", 3, "a");
    deliver(h, "p1", 1, "a"); // neither 3 nor 1 is late: a real reordering
    deliver(h, "p1", 2, "a");
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(1, v.reorderedKeys());
    assertEquals(1, v.keysWithLateMessages());
  }

  // ---- phantoms ----

  @Test
  void deliveryOfANeverSentMessageIsPhantom() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    deliver(h, "p1", 0, "k");
    h.delivered("c9", "p1", 7, "k", false, false); // unknown seq
    h.delivered("c9", "ghost", 0, "k", true, false); // unknown producer
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(2, v.phantom());
    assertEquals(3, v.delivered());
    assertEquals(0, v.duplicates());
    assertOnlyExamplesContaining(
        v,
        "phantom: producer=p1 seq=7 key=\"k\": delivered (event #3, consumer c9) but never sent",
        "phantom: producer=ghost seq=0");
  }

  @Test
  void deliveryUnderAnotherKeyIsPhantom() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    deliver(h, "p1", 0, "other");
    Verdict v = HistoryChecker.check(h);
    assertFalse(v.ok());
    assertEquals(1, v.phantom());
    assertEquals(1, v.lost()); // the real message never arrived
    assertOnlyExamplesContaining(
        v, "lost: producer=p1 seq=0", "delivered with key=\"other\"");
  }

  @Test
  void ackWithoutRecordedSendTakesItsKeyFromTheDelivery() {
    History h = new History();
    h.publishAcked("p1", 0);
    h.publishAcked("p1", 1);
    deliver(h, "p1", 1, "k");
    deliver(h, "p1", 0, "k");
    Verdict v = HistoryChecker.check(h);
    assertEquals(0, v.phantom());
    assertEquals(2, v.published());
    assertEquals(1, v.reorderedKeys(), v.toString());
  }

  // ---- keys, reports ----

  @Test
  void byteKeysAreTheIso88591FormOfStrings() {
    History h = new History();
    byte[] binary = {0, (byte) 0xff, 'x', '"'};
    h.publishSent("p1", 0, binary);
    h.publishAcked("p1", 0);
    h.publishSent("p1", 1, "abc");
    h.publishAcked("p1", 1);
    h.publishSent("p1", 2, binary.clone());
    h.publishAcked("p1", 2);
    h.delivered("c1", "p1", 0, History.keyOf(binary.clone()), false, false);
    h.delivered("c1", "p1", 1, "abc".getBytes(StandardCharsets.ISO_8859_1), false, false);
    Verdict v = HistoryChecker.check(h);
    assertEquals(0, v.phantom(), v.toString());
    assertEquals(1, v.lost());
    assertOnlyExamplesContaining(v, "lost: producer=p1 seq=2 key=\"\\x00\\xffx\\\"\"");
  }

  @Test
  void examplesAreCappedAndShareRoomBetweenKinds() {
    History h = new History();
    for (int i = 0; i < 30; i++) {
      sendAck(h, "p1", i, "k" + i); // never delivered: 30 lost
    }
    for (int i = 0; i < 30; i++) {
      h.delivered("c1", "ghost", i, "k", false, false); // 30 phantoms
    }
    Verdict v = HistoryChecker.check(h);
    assertEquals(30, v.lost());
    assertEquals(30, v.phantom());
    assertEquals(HistoryChecker.MAX_EXAMPLES, v.examples().size());
    assertTrue(v.examples().get(0).startsWith("lost:"));
    assertTrue(v.examples().get(1).startsWith("phantom:"));
    assertTrue(v.toString().contains("(+9 more examples)"), v.toString());
  }

  @Test
  void jsonFieldsAreOrderedAndComplete() {
    History h = new History();
    sendAck(h, "p1", 0, "k");
    deliver(h, "p1", 0, "k");
    Map<String, Object> m = HistoryChecker.check(h).toJsonFields();
    assertEquals(
        List.of(
            "ok",
            "published",
            "acknowledged",
            "failed",
            "delivered",
            "lost",
            "duplicates",
            "unexplained_duplicates",
            "reordered_keys",
            "late",
            "keys_with_late_messages",
            "phantom",
            "examples"),
        new ArrayList<>(m.keySet()));
    assertEquals(true, m.get("ok"));
    assertEquals(1L, m.get("published"));
    assertEquals(1L, m.get("delivered"));
    assertEquals(0L, m.get("reordered_keys"));
    assertEquals(List.of(), m.get("examples"));
  }

  // ---- concurrency ----

  /**
   * Four producer threads and four consumer threads record at once. Each consumer owns a quarter
   * of the keys and delivers each (producer, key) in seq order, so the recorded per-pair order is
   * fixed although the threads interleave; deliveries are often recorded before their sends. The
   * result must be exact. Meanwhile the main thread checks prefixes of the history.
   */
  @Test
  void recordingFromManyThreadsGivesAConsistentResult() throws Exception {
    int producers = 4;
    int consumers = 4;
    int perProducer = 20_000;
    int keys = 16;
    History h = new History();
    ExecutorService pool = Executors.newFixedThreadPool(producers + consumers);
    CountDownLatch start = new CountDownLatch(1);
    List<Future<?>> futures = new ArrayList<>();
    try {
      for (int p = 0; p < producers; p++) {
        String pid = "p" + p;
        futures.add(
            pool.submit(
                () -> {
                  start.await();
                  for (int seq = 0; seq < perProducer; seq++) {
                    h.publishSent(pid, seq, "k" + (seq % keys));
                    if (seq % 100 == 99) {
                      h.publishFailed(pid, seq, "UNAVAILABLE");
                    } else {
                      h.publishAcked(pid, seq);
                    }
                  }
                  return null;
                }));
      }
      for (int c = 0; c < consumers; c++) {
        int cIndex = c;
        String cid = "c" + c;
        futures.add(
            pool.submit(
                () -> {
                  start.await();
                  for (int seq = 0; seq < perProducer; seq++) {
                    if (seq % keys % consumers != cIndex) {
                      continue;
                    }
                    for (int p = 0; p < producers; p++) {
                      String pid = "p" + p;
                      String key = "k" + (seq % keys);
                      if (seq % 1000 == 500 && p == 0) {
                        continue; // 20 acknowledged messages of p0 lost
                      }
                      h.delivered(cid, pid, seq, key, false, false);
                      if (seq % 50 == 0) {
                        h.delivered(cid, pid, seq, key, true, false); // explained duplicate
                      }
                    }
                  }
                  return null;
                }));
      }
      start.countDown();
      for (int i = 0; i < 5; i++) {
        Verdict partial = HistoryChecker.check(h);
        assertEquals(0, partial.reorderedKeys(), partial.toString());
        assertEquals(0, partial.unexplainedDuplicates(), partial.toString());
      }
      for (Future<?> f : futures) {
        f.get(60, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }

    long messages = (long) producers * perProducer;
    long failedCount = (long) producers * (perProducer / 100);
    long lostCount = perProducer / 1000;
    long dupCount = (long) producers * (perProducer / 50) - lostCount; // lost ones: no duplicate
    long deliveredCount = messages - lostCount + dupCount;
    assertEquals(2 * messages + deliveredCount, h.size());
    assertEquals(deliveredCount, h.deliveries());

    Verdict v = HistoryChecker.check(h);
    assertEquals(messages, v.published());
    assertEquals(messages - failedCount, v.acknowledged());
    assertEquals(failedCount, v.failed());
    assertEquals(deliveredCount, v.delivered());
    assertEquals(lostCount, v.lost());
    assertEquals(dupCount, v.duplicates());
    assertEquals(0, v.unexplainedDuplicates());
    assertEquals(0, v.reorderedKeys());
    assertEquals(0, v.phantom());
    assertEquals(HistoryChecker.MAX_EXAMPLES, v.examples().size());
    assertTrue(v.examples().get(0).startsWith("lost: producer=p0 seq=500 "), v.examples().get(0));
    assertEquals(v, HistoryChecker.check(h)); // checking is repeatable
  }

  // ---- scale ----

  /**
   * One million events: 300,000 messages from 50 producers over 500 keys (sent, then acked or
   * failed), their deliveries in a seeded random interleaving of producers (per-producer order
   * kept), 100,006 redeliveries, and planted violations (6 lost, 6 redeliveries without the flag,
   * one reordered key) whose counts must come out exactly. There is no timing assertion; recording
   * and checking take about two seconds together.
   */
  @Test
  void millionEventHistory() {
    int producers = 50;
    int perProducer = 6_000;
    int keys = 500;
    int messages = producers * perProducer;
    Random rnd = new Random(42);
    String[] pid = new String[producers];
    for (int p = 0; p < producers; p++) {
      pid[p] = "producer-" + p;
    }
    String[] keyName = new String[keys];
    for (int k = 0; k < keys; k++) {
      keyName[k] = "key-" + k;
    }
    int[][] keyOf = new int[producers][perProducer];
    History h = new History();

    // Sends and outcomes, producers interleaved round-robin.
    int failedCount = 0;
    for (int seq = 0; seq < perProducer; seq++) {
      for (int p = 0; p < producers; p++) {
        int k = rnd.nextInt(keys);
        keyOf[p][seq] = k;
        h.publishSent(pid[p], seq, keyName[k]);
        if ((seq * producers + p) % 1000 == 999) {
          h.publishFailed(pid[p], seq, "UNAVAILABLE");
          failedCount++;
        } else {
          h.publishAcked(pid[p], seq);
        }
      }
    }

    // Plant one reordering: producer 7's seq 10 swaps places with its next message of the same key.
    int swapP = 7;
    int swapA = 10;
    int swapB = swapA + 1;
    while (keyOf[swapP][swapB] != keyOf[swapP][swapA]) {
      swapB++;
    }

    // Deliveries: pick a random producer, deliver its next message. Six acked messages vanish.
    int[] next = new int[producers];
    int remaining = messages;
    int lostCount = 0;
    while (remaining > 0) {
      int p = rnd.nextInt(producers);
      if (next[p] == perProducer) {
        continue;
      }
      int seq = next[p]++;
      remaining--;
      if (p == 3 && seq >= 3000 && seq % 500 == 123) { // beyond the redeliveries below
        lostCount++;
        continue;
      }
      int s = p == swapP && seq == swapA ? swapB : p == swapP && seq == swapB ? swapA : seq;
      h.delivered("consumer-" + (p % 4), pid[p], s, keyName[keyOf[p][s]], false, false);
    }

    // Redeliveries fill the history up to a million events; six of them lack the flag.
    int redeliveries = 1_000_000 - h.size();
    int unexplained = 0;
    for (int i = 0; i < redeliveries; i++) {
      int p = i % producers;
      int seq = i / producers;
      boolean flagged = i % 20_000 != 0;
      if (!flagged) {
        unexplained++;
      }
      h.delivered("consumer-x", pid[p], seq, keyName[keyOf[p][seq]], flagged, false);
    }
    assertEquals(1_000_000, h.size());
    assertEquals(6, lostCount);
    assertEquals(6, unexplained);

    Verdict v = HistoryChecker.check(h);
    assertEquals(messages, v.published());
    assertEquals(messages - failedCount, v.acknowledged());
    assertEquals(failedCount, v.failed());
    assertEquals(messages - lostCount + redeliveries, v.delivered());
    assertEquals(lostCount, v.lost());
    assertEquals(redeliveries, v.duplicates());
    assertEquals(unexplained, v.unexplainedDuplicates());
    assertEquals(1, v.reorderedKeys());
    assertEquals(0, v.phantom());
    assertFalse(v.ok());
    String reordered =
        "reordered: producer=producer-7 key=\"" + keyName[keyOf[swapP][swapA]] + "\": seq="
            + swapA + " delivered";
    assertTrue(
        v.examples().stream().anyMatch(e -> e.startsWith(reordered)), v.examples().toString());
  }
}
