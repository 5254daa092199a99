package io.plb.queue.testing;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.QueueServiceGrpc;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One raw Publish stream: requests written as given, answers (or the stream's error) read in
 * order. For tests that keep a request open on the server while they do something else.
 */
public final class PublishStream implements AutoCloseable {
  private final LinkedBlockingQueue<Object> answers = new LinkedBlockingQueue<>();
  private final StreamObserver<PublishRequest> requests;

  public PublishStream(Channel channel) {
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

  /** Sends one request of {@code items} from {@code producer}. */
  public PublishStream send(String producer, PublishItem... items) {
    requests.onNext(PublishRequest.newBuilder().setProducer(producer)
        .addAllItems(List.of(items)).build());
    return this;
  }

  /** The next answer's results; fails if the stream ended instead or nothing came in 20 s. */
  public List<PublishResult> results() throws InterruptedException {
    Object r = answers.poll(20, TimeUnit.SECONDS);
    assertTrue(r instanceof PublishResponse, "no answer: " + r);
    return ((PublishResponse) r).getResultsList();
  }

  /** The status the stream ended with; fails if an answer came instead or nothing in 20 s. */
  public Status error() throws InterruptedException {
    Object r = answers.poll(20, TimeUnit.SECONDS);
    assertTrue(r instanceof StatusRuntimeException, "expected the stream to end, got: " + r);
    return ((StatusRuntimeException) r).getStatus();
  }

  @Override
  public void close() {
    try {
      requests.onCompleted();
    } catch (RuntimeException e) {
      // the stream has already ended
    }
  }
}
