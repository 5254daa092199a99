package io.plb.client.router;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.AdminServiceGrpc;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.OpenProducerRequest;
import io.plb.proto.v1.OpenProducerResponse;
import io.plb.proto.v1.WatchMapRequest;
import io.plb.proto.v1.WatchMapResponse;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A PLB node reduced to its watch stream, on a free port: it serves whatever map the test sets,
 * as a full map on subscribe and again on every change (a watcher accepts a newer full map at any
 * time). It also opens producers, with epochs 100, 101, ... Thread-safe.
 */
public final class FakeMapService extends MapServiceGrpc.MapServiceImplBase
    implements AutoCloseable {
  private final Server server;
  private final String address;
  private final List<ServerCallStreamObserver<WatchMapResponse>> watchers = new ArrayList<>();
  private ClusterImage image;
  private int subscriptions;
  private final AtomicLong epochs = new AtomicLong(100);

  public FakeMapService() {
    try {
      server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
          .addService(this)
          .addService(new AdminServiceGrpc.AdminServiceImplBase() {
            @Override
            public void openProducer(OpenProducerRequest r,
                StreamObserver<OpenProducerResponse> o) {
              o.onNext(OpenProducerResponse.newBuilder().setEpoch(epochs.getAndIncrement())
                  .build());
              o.onCompleted();
            }
          })
          .build()
          .start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    address = "127.0.0.1:" + server.getPort();
  }

  public String address() {
    return address;
  }

  /** Publishes a new map to every watcher. */
  public synchronized void set(ClusterImage next) {
    image = next;
    WatchMapResponse r = WatchMapResponse.newBuilder().setFullMap(Wire.toProto(next)).build();
    for (ServerCallStreamObserver<WatchMapResponse> w : watchers) {
      if (!w.isCancelled()) {
        w.onNext(r);
      }
    }
  }

  public synchronized ClusterImage image() {
    return image;
  }

  /** Watch streams opened so far. */
  public synchronized int subscriptions() {
    return subscriptions;
  }

  @Override
  public synchronized void watchMap(WatchMapRequest request,
      StreamObserver<WatchMapResponse> responseObserver) {
    ServerCallStreamObserver<WatchMapResponse> w =
        (ServerCallStreamObserver<WatchMapResponse>) responseObserver;
    w.setOnCancelHandler(() -> {
      synchronized (FakeMapService.this) {
        watchers.remove(w);
      }
    });
    watchers.add(w);
    subscriptions++;
    if (image != null) {
      w.onNext(WatchMapResponse.newBuilder().setFullMap(Wire.toProto(image)).build());
    }
  }

  @Override
  public void close() throws InterruptedException {
    server.shutdownNow();
    server.awaitTermination(5, TimeUnit.SECONDS);
  }
}
