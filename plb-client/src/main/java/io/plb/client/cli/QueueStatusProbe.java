package io.plb.client.cli;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.core.map.QueueServerInfo;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.QueueStatus;
import io.plb.proto.v1.QueueStatusRequest;
import io.plb.proto.v1.RangeLoad;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Asks queue servers for their status ({@code QueueService.GetQueueStatus}), all at once, each
 * with a deadline, so {@code plbctl handovers} can show what a handover is waiting for: the
 * source's remaining backlog and the messages held at source and target. A server that does not
 * answer in time is reported as unreachable, not waited for.
 *
 * <p>Used by one thread; {@link #fetch} opens one channel per server and closes them before it
 * returns.
 */
final class QueueStatusProbe {
  /** One server's answer, or why there is none. */
  record Answer(QueueStatus status, String error) {
    /** The per-range figures the server gave for the range starting at {@code start}. */
    RangeLoad range(long start) {
      if (status == null) {
        return null;
      }
      for (RangeLoad r : status.getRangesList()) {
        if (r.getStart() == start) {
          return r;
        }
      }
      return null;
    }
  }

  private QueueStatusProbe() {}

  static Map<String, Answer> fetch(Collection<QueueServerInfo> servers, Duration deadline) {
    Map<String, ManagedChannel> channels = new HashMap<>();
    Map<String, CompletableFuture<Answer>> pending = new HashMap<>();
    try {
      for (QueueServerInfo s : servers) {
        ManagedChannel ch = NettyChannelBuilder.forTarget(s.address()).usePlaintext().build();
        channels.put(s.id(), ch);
        QueueServiceGrpc.QueueServiceBlockingStub stub = QueueServiceGrpc.newBlockingStub(ch)
            .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
        pending.put(s.id(), CompletableFuture.supplyAsync(() -> {
          try {
            return new Answer(stub.getQueueStatus(QueueStatusRequest.getDefaultInstance()), null);
          } catch (StatusRuntimeException e) {
            return new Answer(null, e.getStatus().getCode() + (e.getStatus().getDescription() == null
                ? "" : ": " + e.getStatus().getDescription()));
          }
        }));
      }
      Map<String, Answer> out = new HashMap<>();
      for (Map.Entry<String, CompletableFuture<Answer>> e : pending.entrySet()) {
        out.put(e.getKey(), e.getValue().join());
      }
      return out;
    } finally {
      List<ManagedChannel> all = new ArrayList<>(channels.values());
      all.forEach(ManagedChannel::shutdownNow);
    }
  }
}
