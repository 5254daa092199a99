package io.plb.server.leader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The bound on requests a leader loop holds: past it a request is refused RESOURCE_EXHAUSTED
 * without reaching the loop, and the loop takes requests again as soon as answers free places.
 */
class RequestLimitTest {
  @Test
  void requestsPastTheBoundAreRefusedUntilAnswersFreePlaces() throws Exception {
    RequestLimit limit = new RequestLimit("the test loop", "leader.maxQueuedRequests", 3);
    ExecutorService loop = Executors.newSingleThreadExecutor();
    CompletableFuture<Void> gate = new CompletableFuture<>();
    AtomicInteger reached = new AtomicInteger();
    try {
      // The loop is stuck behind a slow step; three requests queue up behind it.
      loop.execute(gate::join);
      List<CompletableFuture<Integer>> queued = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        queued.add(limit.submit(() -> CompletableFuture.supplyAsync(
            reached::incrementAndGet, loop)));
      }
      assertEquals(3, limit.inFlight());
      CompletableFuture<Integer> refused = limit.submit(() -> CompletableFuture.supplyAsync(
          reached::incrementAndGet, loop));
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> refused.get(1, TimeUnit.SECONDS));
      PlbException p = (PlbException) e.getCause();
      assertEquals(ErrorCode.RESOURCE_EXHAUSTED, p.code());
      assertTrue(p.getMessage().contains("the test loop")
          && p.getMessage().contains("leader.maxQueuedRequests"), p.getMessage());
      assertEquals(3, limit.inFlight());

      gate.complete(null);
      for (CompletableFuture<Integer> f : queued) {
        f.get(10, TimeUnit.SECONDS);
      }
      assertEquals(3, reached.get(), "the refused request never reached the loop");
      CompletableFuture.runAsync(() -> { }, loop).get(10, TimeUnit.SECONDS);
      assertEquals(0, limit.inFlight());
      assertEquals(4, limit.submit(() -> CompletableFuture.supplyAsync(
          reached::incrementAndGet, loop)).get(10, TimeUnit.SECONDS));
    } finally {
      gate.complete(null);
      loop.shutdownNow();
    }
  }

  @Test
  void aRequestThatFailsToStartGivesItsPlaceBack() {
    RequestLimit limit = new RequestLimit("the test loop", "leader.maxQueuedRequests", 1);
    assertThrows(IllegalStateException.class, () -> limit.submit(() -> {
      throw new IllegalStateException("not leading");
    }));
    assertEquals(0, limit.inFlight());
    assertThrows(IllegalArgumentException.class,
        () -> new RequestLimit("x", "leader.maxQueuedRequests", 0));
  }
}
