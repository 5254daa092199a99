package io.plb.core.handover;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.handover.AgentCore.ChunkDecision;
import io.plb.core.handover.AgentCore.ChunkOutcome;
import io.plb.core.handover.AgentCore.ChunkPosition;
import io.plb.core.handover.AgentCore.ChunkStep;
import io.plb.core.handover.AgentCore.ChunkVerdict;
import io.plb.core.handover.AgentCore.Effect;
import io.plb.core.handover.AgentCore.Progress;
import io.plb.core.handover.AgentCore.ReportKind;
import io.plb.core.handover.Participant.Action;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Direction;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalLong;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The agent core's decisions step by step, against a store kept in memory: what it emits and in
 * which order (store writes, then the save, then reports and transfers), where a chunked
 * transfer resumes, what a received chunk is answered, and what it does with the queued
 * leftovers of a range another server owns. The seeded simulation runs the same class under
 * random schedules and crashes.
 */
class AgentCoreTest {
  private static final long H = 12345; // a hash in the one range [0, 2^64)

  /** A store of queued message hashes and transfer progress; records every effect. */
  private static final class FakeHost implements AgentCore.Host<Long> {
    final TreeMap<Long, Integer> queued = new TreeMap<>(Long::compareUnsigned);
    final TreeMap<String, Progress> progress = new TreeMap<>();
    final List<Effect<Long>> applied = new ArrayList<>();

    @Override
    public long backlog(long start, long end) {
      return queued.values().stream().mapToLong(Integer::longValue).sum();
    }

    @Override
    public List<AgentCore.BufferedHandover> bufferedHandovers() {
      return List.of();
    }

    @Override
    public OptionalLong nextQueuedHash(long from) {
      Long h = queued.ceilingKey(from);
      return h == null ? OptionalLong.empty() : OptionalLong.of(h);
    }

    @Override
    public List<Long> buffered(long rangeStart, long handoverEpoch, int max, long maxBytes) {
      return List.of();
    }

    @Override
    public List<Long> queued(long start, long end, int max, long maxBytes) {
      return new ArrayList<>(queued.keySet());
    }

    @Override
    public Progress transferProgress(long rangeStart, long handoverEpoch, Buffer into) {
      return progress.getOrDefault(rangeStart + "/" + handoverEpoch + "/" + into, Progress.NONE);
    }

    @Override
    public long hashOf(Long copy) {
      return copy;
    }

    @Override
    public String idOf(Long copy) {
      return Long.toString(copy);
    }

    @Override
    public long sizeOf(Long copy) {
      return 1;
    }

    @Override
    public void apply(Effect<Long> effect) {
      applied.add(effect);
    }
  }

  private ClusterImage image;
  private FakeHost host;
  private AgentCore<Long> core;

  private void commit(Command c) {
    image = image.apply(CommandProcessor.process(image, c, image.version() + 1));
  }

  private long epoch() {
    return image.range(0).epoch();
  }

  private AgentCore<Long> core(String id, FakeHost h) {
    return new AgentCore<>(id, new AgentCore.Settings(2, 1 << 20, 1000, 1 << 20), h);
  }

  @BeforeEach
  void setUp() {
    image = ClusterImage.EMPTY;
    commit(new Command.RegisterServer("S", "s:1", 1.0));
    commit(new Command.RegisterServer("T", "t:1", 1.0));
    commit(new Command.AssignRange(0, "S", false));
    host = new FakeHost();
    core = core("S", host);
    core.onMap(image);
  }

  private static <C> List<Class<?>> kinds(List<Effect<C>> effects) {
    List<Class<?>> out = new ArrayList<>();
    for (Effect<C> e : effects) {
      out.add(e.getClass());
    }
    return out;
  }

  @Test
  void producerEntriesStayWhileARangeIsInAHandoverHereOrNoMapIsApplied() {
    assertTrue(AgentCore.inHandover(ClusterImage.EMPTY, "S", H),
        "without a map the server cannot tell: it keeps every entry");
    assertFalse(AgentCore.inHandover(image, "S", H));
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    assertTrue(AgentCore.inHandover(image, "S", H), "the source");
    assertTrue(AgentCore.inHandover(image, "T", H), "the target");
    commit(new Command.RegisterServer("U", "u:1", 1.0));
    assertFalse(AgentCore.inHandover(image, "U", H), "a third server");
  }

  @Test
  void aTargetReportsReadyOnlyAfterItsSideIsSaved() {
    FakeHost th = new FakeHost();
    AgentCore<Long> t = core("T", th);
    t.onMap(image);
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    List<Effect<Long>> out = t.onMap(image);
    assertEquals(List.of(Effect.Save.class, Effect.Report.class), kinds(out));
    assertEquals(ReportKind.READY, ((Effect.Report<Long>) out.get(1)).kind());
    assertEquals(out, th.applied.subList(th.applied.size() - 2, th.applied.size()),
        "every effect reaches the host as it is decided");
    assertEquals(List.of(), t.onMap(image), "nothing changed: nothing saved or sent again");
  }

  @Test
  void aSourceSealsWhenItsBacklogIsGoneAndTransfersAfterTheSave() {
    host.queued.put(H, 1);
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    core.onMap(image);
    commit(new Command.HandoverReady(0, he));
    List<Effect<Long>> out = core.onMap(image);
    assertEquals(List.of(Effect.Save.class), kinds(out), "the backlog holds the seal back");
    assertTrue(core.awaitsBacklog());

    host.queued.clear();
    out = core.onAcked(H);
    assertEquals(List.of(Effect.Sealed.class, Effect.Save.class, Effect.Transfer.class),
        kinds(out), "C1: sealed, the seal saved, then the transfer");
    Effect.Transfer<Long> t = (Effect.Transfer<Long>) out.get(2);
    assertEquals(new Action.Transfer(0, he, Direction.FORWARD, "T", List.of(Buffer.HOLD)),
        t.transfer());
    assertEquals(image.version(), t.tag());
    assertFalse(core.awaitsBacklog());
  }

  @Test
  void aChunkedTransferResumesWhereItsReceiverStandsAndCountsOnlyWhenComplete() {
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    core.onMap(image);
    commit(new Command.HandoverReady(0, he));
    List<Effect<Long>> out = core.onMap(image);
    Action.Transfer t = ((Effect.Transfer<Long>) out.get(out.size() - 1)).transfer();

    assertEquals(1, core.transferStart(t).chunk());
    assertTrue(core.owes(t));
    byte[] c1 = {1};
    ChunkStep step = core.onChunkAnswer(t, ChunkOutcome.STORED, 1, c1, false);
    assertFalse(step.finished(), "one chunk stored is not the transfer");
    assertEquals(2, step.next().chunk());
    assertArrayEquals(c1, step.next().cursor());
    assertEquals(2, core.transferStart(t).chunk(), "a resend after a failed call goes on there");

    // A restarted sender starts at chunk 1; the receiver's answer says where it stands.
    AgentCore<Long> restarted = core("S", host);
    restarted.restore(core.sides());
    restarted.onMap(image);
    assertEquals(ChunkPosition.FIRST.chunk(), restarted.transferStart(t).chunk());
    byte[] c3 = {3};
    step = restarted.onChunkAnswer(t, ChunkOutcome.ALREADY_STORED, 3, c3, false);
    assertEquals(4, step.next().chunk());
    assertArrayEquals(c3, step.next().cursor());

    int before = host.applied.size();
    step = restarted.onChunkAnswer(t, ChunkOutcome.STORED, 4, new byte[] {4}, true);
    assertTrue(step.finished());
    List<Effect<Long>> after = host.applied.subList(before, host.applied.size());
    assertEquals(List.of(Effect.Save.class, Effect.Report.class), kinds(after));
    assertEquals(ReportKind.DRAINED, ((Effect.Report<Long>) after.get(1)).kind(),
        "drained only once the final chunk is stored (C1)");
    assertFalse(restarted.owes(t));
  }

  @Test
  void aReceiverStoresOnlyTheNextChunk() {
    FakeHost th = new FakeHost();
    AgentCore<Long> t = core("T", th);
    commit(new Command.StartHandover(0, 0, epoch(), "T", 2, 4));
    long he = epoch() + 1;
    t.onMap(image);
    commit(new Command.HandoverReady(0, he));
    t.onMap(image);
    long tag = image.version();

    assertEquals(ChunkVerdict.WAIT,
        t.receiveChunk(0, he, Direction.FORWARD, tag + 1, 1, false, new byte[0]).verdict(),
        "C2: a chunk sent under a newer map waits for it");
    ChunkDecision d = t.receiveChunk(0, he, Direction.FORWARD, tag, 2, false, new byte[] {2});
    assertEquals(ChunkVerdict.OUT_OF_ORDER, d.verdict());
    d = t.receiveChunk(0, he, Direction.FORWARD, tag, 1, false, new byte[] {1});
    assertEquals(ChunkVerdict.STORE, d.verdict());
    assertEquals(new Progress(1, new byte[] {1}, false), d.progress());
    th.progress.put(0 + "/" + he + "/" + Buffer.PREFIX, d.progress());
    assertEquals(List.of(), t.onChunkStored(0, he, Direction.FORWARD, false),
        "the participant hears nothing of a chunk that is not the final one");
    assertEquals(ChunkVerdict.ALREADY_STORED,
        t.receiveChunk(0, he, Direction.FORWARD, tag, 1, false, new byte[] {1}).verdict());
    d = t.receiveChunk(0, he, Direction.FORWARD, tag, 2, true, new byte[] {2});
    assertEquals(ChunkVerdict.STORE, d.verdict());
    th.progress.put(0 + "/" + he + "/" + Buffer.PREFIX, d.progress());
    assertEquals(List.of(Effect.Save.class), kinds(t.onChunkStored(0, he, Direction.FORWARD,
        true)), "the prefix is stored: the side says so");
    d = t.receiveChunk(0, he, Direction.FORWARD, tag, 2, true, new byte[] {2});
    assertEquals(ChunkVerdict.ALREADY_STORED, d.verdict());
    assertTrue(d.progress().complete(), "a resend of the final chunk is answered complete");
  }

  @Test
  void queuedLeftoversOfAnotherServersRangeAreMarkedLateOncePerStretch() {
    host.queued.put(H, 1);
    commit(new Command.UpdateServer("S", null, null, ServerState.DOWN));
    commit(new Command.ForceHandover(0, epoch(), "T"));
    List<Effect<Long>> out = core.onMap(image);
    assertTrue(out.stream().anyMatch(e -> e instanceof Effect.MarkQueuedLate<Long> m
        && m.owner().equals("T")), out.toString());
    assertTrue(out.stream().anyMatch(e -> e instanceof Effect.KickLate), out.toString());
    out = core.onResendTimer();
    assertFalse(out.stream().anyMatch(e -> e instanceof Effect.MarkQueuedLate),
        "marked once while the range stays another's: " + out);
    AgentCore.LateBatch<Long> b = core.nextLateBatch(new HashSet<>());
    assertEquals("T", b.to());
    assertEquals(List.of(List.of(H)), b.copies());
    assertNull(core.nextLateBatch(new HashSet<>()), "its copies are in flight");
    core.lateBatchDone(b);
    assertEquals("T", core.nextLateBatch(new HashSet<>()).to(), "unanswered: sent again");
  }

  /**
   * A server that was DOWN while its range was forced away comes back to find the range on its
   * way back to it (it is the target of a handover from the new owner). What it still holds
   * queued of the range is older than what the new owner delivered meanwhile: it must be marked
   * late now, or it is delivered unmarked, ahead of the prefix, once the handover completes.
   */
  @Test
  void leftoversOfARangeComingBackInAHandoverAreMarkedLateToo() {
    host.queued.put(H, 1);
    commit(new Command.UpdateServer("S", null, null, ServerState.DOWN));
    commit(new Command.ForceHandover(0, epoch(), "T"));
    commit(new Command.UpdateServer("S", null, null, ServerState.ACTIVE));
    commit(new Command.StartHandover(0, 0, epoch(), "S", 2, 4));
    AgentCore<Long> restarted = core("S", host);
    restarted.restore(List.of());
    List<Effect<Long>> out = restarted.onMap(image);
    assertTrue(out.stream().anyMatch(e -> e instanceof Effect.MarkQueuedLate<Long> m
        && m.owner().equals("T")), out.toString());
    assertTrue(out.stream().anyMatch(e -> e instanceof Effect.Report<Long> r
        && r.kind() == ReportKind.READY), out.toString());
    assertNull(restarted.nextLateBatch(new HashSet<>()),
        "not sent while the range is in a handover with this server");
  }
}
