package io.plb.core.publish;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.core.publish.PublishSession.Action;
import io.plb.core.publish.PublishSession.Request;
import io.plb.core.publish.PublishSession.Result;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PublishSessionTest {
  private static final long MID = 0x8000_0000_0000_0000L;
  /** Two keys in the left half of the ring, one in the right half. */
  private static final long LEFT = 0x10;
  private static final long LEFT2 = 0x20;
  private static final long RIGHT = MID + 0x10;
  private static final long BACKOFF = 100;

  private static PublishSession<String> session(int maxBatchItems, int maxRequestsPerLink) {
    return new PublishSession<>(new PublishSession.Config(7, maxBatchItems, 1 << 20,
        maxRequestsPerLink, (why, attempt) -> BACKOFF * attempt));
  }

  private static List<QueueServerInfo> servers() {
    return List.of(new QueueServerInfo("A", "a:1", 1.0, ServerState.ACTIVE),
        new QueueServerInfo("B", "b:1", 1.0, ServerState.ACTIVE));
  }

  private static ClusterImage whole(long version, String owner, long epoch) {
    return ClusterImage.of(version,
        List.of(new RangeEntry(0, Ring.RING_END, owner, epoch, null, false)), servers());
  }

  private static ClusterImage halves(long version, String left, String right) {
    return ClusterImage.of(version, List.of(new RangeEntry(0, MID, left, 1, null, false),
        new RangeEntry(MID, Ring.RING_END, right, 1, null, false)), servers());
  }

  private static List<Request<String>> writes(List<Action<String>> actions) {
    List<Request<String>> out = new ArrayList<>();
    for (Action<String> a : actions) {
      if (a instanceof Action.Write<String> w) {
        out.add(w.request());
      }
    }
    return out;
  }

  private static List<Long> seqs(List<Request<String>> requests) {
    List<Long> out = new ArrayList<>();
    for (Request<String> r : requests) {
      for (PublishSession.Item<String> i : r.items()) {
        out.add(i.seq());
      }
    }
    return out;
  }

  private static List<Action<String>> outcomes(List<Action<String>> actions) {
    List<Action<String>> out = new ArrayList<>();
    for (Action<String> a : actions) {
      if (a instanceof Action.Acked<String> || a instanceof Action.Rejected<String>) {
        out.add(a);
      }
    }
    return out;
  }

  private static long wake(List<Action<String>> actions) {
    for (Action<String> a : actions) {
      if (a instanceof Action.WakeAt<String> w) {
        return w.at();
      }
    }
    throw new AssertionError("no wake-up in " + actions);
  }

  @Test
  void sendsToTheOwnerWithTagEpochAndSettledBelow() {
    PublishSession<String> s = session(10, 1);
    assertEquals(1, s.publish(LEFT, 10, "m1", 0)); // before any map: waits
    assertTrue(s.drain().isEmpty());
    s.onMap(whole(3, "A", 1), 0);
    List<Action<String>> a = s.drain();
    assertEquals(new Action.Open<String>("A", "a:1", 1), a.get(0));
    Request<String> r = writes(a).get(0);
    assertEquals("A", r.server());
    assertEquals(7, r.epoch());
    assertEquals(1, r.settledBelow());
    assertEquals(3, r.items().get(0).tag());
    assertEquals(0, r.items().get(0).rangeStart());
    // One request unanswered per link: the next two wait and form one batch.
    s.publish(LEFT, 10, "m2", 1);
    s.publish(RIGHT, 10, "m3", 1);
    assertTrue(writes(s.drain()).isEmpty());
    assertNull(s.onResponse(1, List.of(Result.accepted(1, false)), 2));
    a = s.drain();
    assertEquals(List.of(new Action.Acked<String>(1, "m1", "A", 3, false)), outcomes(a));
    assertEquals(List.of(2L, 3L), seqs(writes(a)));
    assertEquals(2, writes(a).get(0).settledBelow());
  }

  @Test
  void aBrokenStreamResendsEverythingUnansweredInPerKeyOrder() {
    PublishSession<String> s = session(1, 2);
    s.onMap(whole(1, "A", 1), 0);
    for (int i = 1; i <= 3; i++) {
      s.publish(LEFT, 1, "m" + i, 0);
    }
    assertEquals(List.of(1L, 2L), seqs(writes(s.drain()))); // m3 waits on the link
    PublishSession.LinkFailure f = s.streamFailed(1, "reset", 10);
    assertNotNull(f);
    assertEquals(3, f.unsettled());
    assertEquals(10 + BACKOFF, f.retryAt());
    // A new message of the key while its earlier ones await their resend: it waits behind them.
    s.publish(LEFT, 1, "m4", 11);
    List<Action<String>> a = s.drain();
    assertTrue(writes(a).isEmpty(), a.toString());
    long at = wake(a);
    assertEquals(10 + BACKOFF, at);
    s.timerFired(at, at - 1); // early: nothing yet, and a new wake-up
    a = s.drain();
    assertTrue(writes(a).isEmpty());
    s.timerFired(wake(a), at);
    a = s.drain();
    assertEquals(new Action.Open<String>("A", "a:1", 2), a.get(0));
    assertEquals(List.of(1L, 2L), seqs(writes(a)));
    // Answers of the broken stream are not read.
    assertNull(s.onResponse(1, List.of(Result.accepted(1, false)), at));
    assertTrue(s.drain().isEmpty());
    s.onResponse(2, List.of(Result.accepted(1, true)), at);
    s.onResponse(2, List.of(Result.accepted(2, false)), at);
    a = s.drain();
    assertEquals(List.of(3L, 4L), seqs(writes(a)));
    assertEquals(3, s.resent());
    assertEquals(1, s.duplicates());
  }

  @Test
  void aSplitWhileASendIsUnsettledWaitsForIt() {
    PublishSession<String> s = session(10, 4);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    assertEquals(List.of(1L), seqs(writes(s.drain())));
    // The range splits; the left half moves to B. m1's slot is stale and overlaps both halves.
    s.onMap(halves(2, "B", "A"), 1);
    s.publish(LEFT2, 1, "m2", 1);
    s.publish(RIGHT, 1, "m3", 1);
    assertTrue(writes(s.drain()).isEmpty(), "C4: nothing goes out under the new ranges yet");
    s.onResponse(1, List.of(Result.accepted(1, false)), 2);
    List<Request<String>> w = writes(s.drain());
    assertEquals(List.of(2L, 3L), seqs(w));
    assertEquals("B", w.get(0).server());
    assertEquals(2, w.get(0).items().get(0).tag());
  }

  @Test
  void aMergeWhileASendIsUnsettledWaitsAndResendsFirst() {
    PublishSession<String> s = session(10, 4);
    s.onMap(halves(1, "A", "B"), 0);
    s.publish(RIGHT, 1, "m1", 0);
    assertEquals(List.of(1L), seqs(writes(s.drain())));
    s.onMap(whole(2, "A", 2), 1);
    s.publish(RIGHT, 1, "m2", 1);
    s.publish(LEFT, 1, "m3", 1);
    assertTrue(writes(s.drain()).isEmpty());
    // B refuses m1 (it knows v2): m1 goes to A under v2 ahead of m2 and m3.
    s.onResponse(1, List.of(Result.wrongOwner(1, 2)), 2);
    List<Request<String>> w = writes(s.drain());
    assertEquals(List.of(1L, 2L, 3L), seqs(w));
    assertEquals("A", w.get(0).server());
  }

  @Test
  void aRefusalWaitsForTheVersionItNamesAndResendsBeforeNewMessages() {
    PublishSession<String> s = session(10, 4);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.drain();
    s.onResponse(1, List.of(Result.wrongOwner(1, 3)), 1);
    s.publish(LEFT, 1, "m2", 1);
    assertTrue(writes(s.drain()).isEmpty(), "the refusal's version is not here yet");
    s.onMap(whole(3, "B", 2), 2);
    List<Request<String>> w = writes(s.drain());
    assertEquals(List.of(1L, 2L), seqs(w));
    assertEquals("B", w.get(0).server());
    assertEquals(3, w.get(0).items().get(0).tag());
    assertEquals(1, s.refused());
  }

  @Test
  void aHandoverInSwitchSendsToTheTargetOnlyOnceTheSourceSendsSettled() {
    PublishSession<String> s = session(10, 4);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.drain();
    s.onMap(ClusterImage.of(2, List.of(new RangeEntry(0, Ring.RING_END, "A", 1,
        new Handover("B", HandoverPhase.SWITCH), false)), servers()), 1);
    s.publish(LEFT, 1, "m2", 1);
    assertTrue(writes(s.drain()).isEmpty(), "C4: m1 went under another entry");
    s.onResponse(1, List.of(Result.accepted(1, false)), 2);
    List<Request<String>> w = writes(s.drain());
    assertEquals(List.of(2L), seqs(w));
    assertEquals("B", w.get(0).server());
  }

  @Test
  void anOverloadBacksOffAndTakesBackTheSlotsUnwrittenMessages() {
    PublishSession<String> s = session(1, 1);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.publish(LEFT, 1, "m2", 0);
    assertEquals(List.of(1L), seqs(writes(s.drain())));
    s.onResponse(1, List.of(Result.overloaded(1)), 5);
    List<Action<String>> a = s.drain();
    assertTrue(writes(a).isEmpty(), "m2 is taken back, not written ahead of m1's resend");
    assertEquals(5 + BACKOFF, wake(a));
    s.timerFired(5 + BACKOFF, 5 + BACKOFF);
    List<Request<String>> w = writes(s.drain());
    assertEquals(List.of(1L), seqs(w));
    assertEquals(1, w.get(0).overloadsSeen());
    s.onResponse(1, List.of(Result.accepted(1, false)), 6 + BACKOFF);
    assertEquals(List.of(2L), seqs(writes(s.drain())));
  }

  @Test
  void duplicateAnswersCompleteAMessageOnce() {
    PublishSession<String> s = session(10, 2);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.drain();
    // The server stored m1, but the answer was lost with the stream.
    s.streamFailed(1, "reset", 1);
    s.timerFired(wake(s.drain()), 1 + BACKOFF);
    assertEquals(List.of(1L), seqs(writes(s.drain())));
    s.onResponse(1, List.of(Result.accepted(1, false)), 2 + BACKOFF); // the old stream's answer
    s.onResponse(2, List.of(Result.accepted(1, true)), 2 + BACKOFF);
    // A second answer on the stream has no request: a protocol error, and no second outcome.
    assertEquals("a response without a request",
        s.onResponse(2, List.of(Result.accepted(1, true)), 3 + BACKOFF));
    List<Action<String>> a = s.drain();
    assertEquals(List.of(new Action.Acked<String>(1, "m1", "A", 1, true)), outcomes(a));
    assertEquals(0, s.unfinished());
    assertEquals(1, s.acknowledged());
    assertEquals(2, s.linkFailures());
  }

  @Test
  void aRejectedMessageIsNeverResent() {
    PublishSession<String> s = session(1, 4);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.publish(LEFT, 1, "m2", 0);
    assertEquals(List.of(1L, 2L), seqs(writes(s.drain())));
    s.onResponse(1, List.of(Result.rejected(1, "bad")), 1);
    List<Action<String>> a = s.drain();
    assertEquals(List.of(new Action.Rejected<String>(1, "m1", "A", "bad")), outcomes(a));
    // The stream breaks with m2 unanswered: m2 is resent, m1 is not.
    s.streamFailed(1, "reset", 2);
    s.onMap(whole(2, "B", 2), 3);
    s.timerFired(wake(s.drain()), 2 + BACKOFF);
    assertEquals(List.of(2L), seqs(writes(s.drain())));
    assertEquals(1, s.rejected());
    assertEquals(1, s.resent());
  }

  @Test
  void aServerLeavingTheMapResendsElsewhereAtOnce() {
    PublishSession<String> s = session(10, 1);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.drain();
    s.onMap(ClusterImage.of(2, List.of(new RangeEntry(0, Ring.RING_END, "B", 2, null, false)),
        List.of(new QueueServerInfo("B", "b:1", 1.0, ServerState.ACTIVE))), 1);
    List<Action<String>> a = s.drain();
    assertEquals(new Action.Cancel<String>("A", 1, "server left the map or moved"), a.get(0));
    List<Request<String>> w = writes(a);
    assertEquals("B", w.get(0).server());
    assertEquals(List.of(1L), seqs(w));
  }

  @Test
  void closeHandsBackWhatIsUnfinished() {
    PublishSession<String> s = session(10, 1);
    s.onMap(whole(1, "A", 1), 0);
    s.publish(LEFT, 1, "m1", 0);
    s.publish(LEFT, 1, "m2", 0);
    s.drain();
    assertEquals(List.of("m1", "m2"), s.close());
    assertEquals(List.of(new Action.Cancel<String>("A", 1, "producer closed")), s.drain());
    assertThrows(IllegalStateException.class, () -> s.publish(LEFT, 1, "m3", 1));
  }

  @Test
  void theSameEventsGiveTheSameActions() {
    assertEquals(script(), script());
  }

  private static List<Action<String>> script() {
    PublishSession<String> s = session(2, 2);
    List<Action<String>> all = new ArrayList<>();
    s.onMap(halves(1, "A", "B"), 0);
    for (int i = 0; i < 20; i++) {
      s.publish(i % 3 == 0 ? RIGHT : LEFT + i, 1, "m" + i, i);
    }
    all.addAll(s.drain());
    s.onMap(whole(2, "B", 2), 20);
    s.streamFailed(1, "reset", 21);
    s.streamFailed(2, "reset", 21);
    all.addAll(s.drain());
    s.timerFired(21 + BACKOFF, 21 + BACKOFF);
    all.addAll(s.drain());
    return all;
  }
}
