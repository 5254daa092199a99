package io.plb.queue.testing;

import io.plb.client.workload.Workload;
import io.plb.core.check.HistoryChecker;
import io.plb.server.testing.TestCluster;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Checked traffic in the background while a test injects faults: a {@link Workload} (producers
 * through a router, consumers on every queue server, every publish and delivery recorded) that
 * runs until {@link #stopAndCheck} ends it, settles and returns the history checker's verdict.
 * Driven from the test thread.
 */
public final class Traffic implements AutoCloseable {
  private final Workload workload;
  private final CompletableFuture<Workload.Result> run;

  private Traffic(Workload.Options options) {
    this.workload = new Workload(options, null);
    this.run = CompletableFuture.supplyAsync(() -> {
      try {
        return workload.run();
      } catch (InterruptedException e) {
        throw new IllegalStateException(e);
      }
    });
  }

  /**
   * Starts {@code producers} producers publishing {@code rate} messages per second over
   * {@code keys} keys, and {@code consumers} consumers; at most 5 minutes of traffic.
   */
  public static Traffic start(List<String> plbEndpoints, int keys, double rate, int producers,
      int consumers) {
    return new Traffic(Workload.Options.defaults(plbEndpoints).withKeys(keys).withRate(rate)
        .withClients(producers, consumers).withDuration(Duration.ofMinutes(5)));
  }

  /** Starts a workload with these options; {@link #stopAndCheck} may end it early. */
  public static Traffic start(Workload.Options options) {
    return new Traffic(options);
  }

  /** The workload, for its history. */
  public Workload workload() {
    return workload;
  }

  public long deliveries() {
    return workload.history().deliveries();
  }

  /** Waits until {@code more} deliveries beyond those seen now have been recorded. */
  public void awaitMoreDeliveries(long more, Duration timeout, String what) {
    long seen = deliveries();
    TestCluster.await(timeout, what + " (" + more + " more deliveries)",
        () -> run.isDone() || deliveries() >= seen + more);
    if (run.isDone()) {
      run.join(); // a failed run throws here
      throw new AssertionError("the traffic ended early while waiting for " + what);
    }
  }

  /** The verdict on the history so far (traffic keeps running). */
  public HistoryChecker.Verdict verdictSoFar() {
    return HistoryChecker.check(workload.history());
  }

  /** Ends the traffic, lets every publish settle and every message arrive, and checks. */
  public Workload.Result stopAndCheck() throws Exception {
    workload.stop();
    return run.get(180, TimeUnit.SECONDS);
  }

  @Override
  public void close() {
    workload.stop();
    try {
      run.get(180, TimeUnit.SECONDS);
    } catch (Exception e) {
      // already reported by stopAndCheck, or the test failed before it
    }
  }
}
