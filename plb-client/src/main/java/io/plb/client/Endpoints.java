package io.plb.client;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.plb.client.wire.MapChunks;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * The PLB nodes a client may talk to, with one long-lived gRPC channel per node, created on first
 * use and shared by every call. Thread-safe.
 */
public final class Endpoints implements AutoCloseable {
  /** The local cluster that {@code deploy/local-cluster.sh} starts. */
  public static final List<String> LOCAL_CLUSTER =
      List.of("127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303");

  private final List<String> addresses;
  private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();

  public Endpoints(List<String> addresses) {
    if (addresses == null || addresses.isEmpty()) {
      throw new IllegalArgumentException("no PLB endpoints given (host:port,...)");
    }
    for (String a : addresses) {
      int colon = a.lastIndexOf(':');
      if (colon <= 0 || colon == a.length() - 1) {
        throw new IllegalArgumentException("endpoint '" + a + "' is not host:port");
      }
    }
    this.addresses = List.copyOf(addresses);
  }

  /** Parses {@code host:port,host:port}. */
  public static Endpoints parse(String text) {
    List<String> list = new ArrayList<>();
    for (String part : text.split(",")) {
      if (!part.isBlank()) {
        list.add(part.strip());
      }
    }
    return new Endpoints(list);
  }

  public List<String> addresses() {
    return addresses;
  }

  public int size() {
    return addresses.size();
  }

  public String get(int i) {
    return addresses.get(Math.floorMod(i, addresses.size()));
  }

  public int indexOf(String address) {
    return addresses.indexOf(address);
  }

  /** The shared channel to {@code address} (which need not be one of the configured ones). */
  public ManagedChannel channel(String address) {
    return channels.computeIfAbsent(
        address,
        a -> NettyChannelBuilder.forTarget(a)
            .usePlaintext()
            // Bounded: full maps come in chunks and deltas are bounded (MapChunks).
            .maxInboundMessageSize(MapChunks.MAX_MESSAGE_BYTES)
            .keepAliveTime(30, TimeUnit.SECONDS)
            .keepAliveWithoutCalls(true)
            .build());
  }

  @Override
  public void close() {
    for (ManagedChannel c : channels.values()) {
      c.shutdownNow();
    }
    for (ManagedChannel c : channels.values()) {
      try {
        c.awaitTermination(2, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }
}
