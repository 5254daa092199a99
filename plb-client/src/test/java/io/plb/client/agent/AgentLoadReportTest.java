package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.plb.core.handover.Participant.Buffer;
import io.plb.proto.v1.AgentServiceGrpc;
import io.plb.proto.v1.LoadReport;
import io.plb.proto.v1.LoadReportResponse;
import io.plb.proto.v1.SliceLoad;
import io.plb.proto.v1.StoredMessage;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The agent's load reports against a leader that is away for a while, then back (a real gRPC
 * server on loopback): reports the leader did not take are sent again in order with their own
 * numbers; beyond the bound the oldest are dropped, and only their intervals' load is lost; a
 * report the leader refuses is not sent again.
 */
class AgentLoadReportTest {
  /** A leader that can be down, refuse, or take reports. */
  static final class FakeLeader extends AgentServiceGrpc.AgentServiceImplBase {
    volatile String mode = "up";
    final List<LoadReport> taken = new CopyOnWriteArrayList<>();

    @Override
    public void reportLoad(LoadReport r, StreamObserver<LoadReportResponse> o) {
      switch (mode) {
        case "down" -> o.onError(Status.UNAVAILABLE.withDescription("no leader").asException());
        case "refuse" -> o.onError(Status.INVALID_ARGUMENT.withDescription("bad").asException());
        default -> {
          taken.add(r);
          o.onNext(LoadReportResponse.getDefaultInstance());
          o.onCompleted();
        }
      }
    }
  }

  /** A store for an agent that takes part in no handover. */
  static class NoStore implements HandoverStore {
    public long backlog(long start, long end) {
      return 0;
    }

    public Chunk readChunk(long r, long e, List<Buffer> b, byte[] cursor, int max,
        long maxBytes) {
      return new Chunk(List.of(), cursor, true);
    }

    public Progress transferProgress(long r, long e, Buffer into) {
      return Progress.NONE;
    }

    public void forgetTransfers(long r, long e) {}

    public void storeChunk(long r, long e, Buffer into, List<StoredMessage> m, Progress p) {}

    public void release(long r, long e, List<Buffer> b) {}

    public void discard(long r, long e, List<Buffer> b) {}

    public List<BufferedHandover> bufferedHandovers() {
      return List.of();
    }

    public List<Held> buffered(long rangeStart, long handoverEpoch, int max,
        long maxBytes) {
      return List.of();
    }

    public List<Held> queued(long start, long end, int max, long maxBytes) {
      return List.of();
    }

    public void drop(List<Held> copies) {}

    public void requeueLate(List<Held> copies) {}

    public void queueLate(List<StoredMessage> m, String fromServer, byte[] receipt) {}

    public byte[] lateReceipt(String fromServer) {
      return new byte[0];
    }

    public java.util.OptionalLong nextQueuedHash(long from) {
      return java.util.OptionalLong.empty();
    }

    public void saveAgentState(byte[] state) {}

    public byte[] loadAgentState() {
      return new byte[0];
    }

    public int markQueuedLate(long start, long end) {
      return 0;
    }

    public List<io.plb.proto.v1.ProducerSequence> sequencesIn(long start, long end) {
      return List.of();
    }

    public void mergeSequences(List<io.plb.proto.v1.ProducerSequence> sequences,
        long rangeStart, long handoverEpoch, Buffer buffer) {}
  }

  private FakeLeader leader;
  private Server server;
  private QueueServerAgent agent;
  private final AtomicLong clock = new AtomicLong(1_000_000);

  @BeforeEach
  void start() throws Exception {
    leader = new FakeLeader();
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(leader).build().start();
    agent = QueueServerAgent.builder("q1", new NoStore())
        .plbEndpoints(List.of("127.0.0.1:" + server.getPort()))
        .telemetry(Duration.ofMillis(50), 8)
        .wallClock(clock::get)
        .loadGauges((now, sink) -> sink.slice(3, 2, 40))
        .build();
    // The first call opens the channel, which may outlast a report's short deadline in a cold
    // JVM: send empty reports until one is taken, then start from a clean slate.
    while (warmSeq < 20 && leader.taken.isEmpty()) {
      agent.reportLoad();
      warmSeq++;
    }
    assertTrue(!leader.taken.isEmpty(), "the fake leader is reachable");
    assertEquals(warmSeq, leader.taken.size(), "every warm-up report arrived");
    assertEquals(0, agent.loadReportsDropped());
    leader.taken.clear();
  }

  /** Reports sent while warming up (their numbers come before the test's). */
  private long warmSeq;

  @AfterEach
  void stop() {
    agent.close();
    server.shutdownNow();
  }

  /** One interval: {@code n} messages of slice 5 in, then a report. */
  private void interval(int n) {
    for (int i = 0; i < n; i++) {
      agent.load().recordIn((5L << 52) | i, 10);
    }
    clock.addAndGet(50);
    agent.reportLoad();
  }

  private static long messagesIn(List<LoadReport> reports) {
    long n = 0;
    for (LoadReport r : reports) {
      for (SliceLoad s : r.getSlicesList()) {
        n += s.getMessagesIn();
      }
    }
    return n;
  }

  @Test
  void reportsWaitForTheLeaderAndOnlyTheOldestAreDropped() {
    interval(1);
    assertEquals(1, leader.taken.size());
    LoadReport first = leader.taken.get(0);
    assertEquals(warmSeq + 1, first.getSeq());
    assertEquals(50, first.getIntervalMillis());
    // The gauges the server samples ride along: slice 3 has 2 queued for 40 ms.
    assertTrue(first.getSlicesList().stream().anyMatch(s -> s.getSlice() == 3
        && s.getQueueDepth() == 2 && s.getOldestAgeMillis() == 40), first.toString());
    assertEquals(1, first.getHotKeys().getKeysCount());

    leader.mode = "down";
    for (int i = 0; i < QueueServerAgent.MAX_PENDING_REPORTS + 2; i++) {
      interval(i + 2); // seq 2..13 with 2..13 messages
    }
    assertEquals(1, leader.taken.size());
    assertEquals(2, agent.loadReportsDropped(), "the two oldest waiting reports");

    leader.mode = "up";
    interval(100); // seq 14: it joins the queue first, which pushes out seq 4 too
    assertEquals(3, agent.loadReportsDropped());
    List<LoadReport> after = leader.taken.subList(1, leader.taken.size());
    assertEquals(QueueServerAgent.MAX_PENDING_REPORTS, after.size());
    for (int i = 0; i < after.size(); i++) {
      assertEquals(warmSeq + 5 + i, after.get(i).getSeq(), "in order, each with its own number");
      assertEquals(first.getSession(), after.get(i).getSession());
    }
    // Reports 2, 3 and 4 (2 + 3 + 4 messages) are what was lost; everything else arrived.
    long published = 1 + (2 + 13) * 12 / 2 + 100;
    assertEquals(published - 9, messagesIn(leader.taken));
  }

  @Test
  void aRefusedReportIsNotSentAgain() {
    leader.mode = "refuse";
    interval(3);
    assertEquals(1, agent.loadReportsDropped());
    leader.mode = "up";
    interval(4);
    assertEquals(1, leader.taken.size());
    assertEquals(warmSeq + 2, leader.taken.get(0).getSeq());
    assertEquals(4, messagesIn(leader.taken));
  }
}
