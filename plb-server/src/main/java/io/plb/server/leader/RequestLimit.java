package io.plb.server.leader;

import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * A bound on the requests one leader loop (the handover driver, the telemetry intake, the
 * balancer) has taken from the API and not yet answered: queued on its single thread, running,
 * or waiting for their proposal to commit. Past {@code max}, a request is refused
 * RESOURCE_EXHAUSTED without being queued, so a flood of reports costs memory and loop time only
 * up to the bound, and a request that gets in is answered no later than its turn.
 *
 * <p>Thread-safe: one atomic counter, taken before a request is handed to the loop and given back
 * when its answer completes.
 */
public final class RequestLimit {
  private final String loop;
  private final String setting;
  private final int max;
  private final AtomicInteger inFlight = new AtomicInteger();

  /**
   * @param loop what the requests go to, for the refusal ("the handover driver")
   * @param setting the setting that sets {@code max}, for the refusal
   */
  public RequestLimit(String loop, String setting, int max) {
    if (max < 1) {
      throw new IllegalArgumentException(setting + " must be at least 1");
    }
    this.loop = loop;
    this.setting = setting;
    this.max = max;
  }

  /**
   * Hands {@code request} to the loop unless {@code max} requests are in flight; the returned
   * future completes as the request's does, or at once with RESOURCE_EXHAUSTED.
   */
  public <T> CompletableFuture<T> submit(Supplier<CompletableFuture<T>> request) {
    if (inFlight.incrementAndGet() > max) {
      inFlight.decrementAndGet();
      return CompletableFuture.failedFuture(new PlbException(ErrorCode.RESOURCE_EXHAUSTED,
          loop + " already has " + max + " requests queued or in progress (" + setting
              + "); try again"));
    }
    CompletableFuture<T> out;
    try {
      out = request.get();
    } catch (RuntimeException e) {
      inFlight.decrementAndGet();
      throw e;
    }
    out.whenComplete((v, e) -> inFlight.decrementAndGet());
    return out;
  }

  /** Requests queued or in progress now. */
  public int inFlight() {
    return inFlight.get();
  }
}
