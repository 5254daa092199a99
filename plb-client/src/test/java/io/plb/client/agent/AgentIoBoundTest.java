package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The agent's I/O pool (handover reports, transfers, the late sender) is bounded in threads and
 * queue ({@code agentIo.threads}, {@code agentIo.queue}): with every thread busy and the queue
 * full, a further send is dropped at once — its in-flight mark undone by its drop action, the
 * drop counted — instead of starting a thread or growing a queue; the pool works on when the
 * threads come free.
 */
class AgentIoBoundTest {
  private QueueServerAgent agent;

  @AfterEach
  void stop() {
    if (agent != null) {
      agent.close();
    }
  }

  @Test
  void aFullPoolDropsTheSendAndRunsItsDropAction() throws Exception {
    // Never started: only the pool is exercised; its PLB endpoint is never called.
    agent = QueueServerAgent.builder("q1", new AgentLoadReportTest.NoStore())
        .plbEndpoints(List.of("127.0.0.1:1"))
        .io(2, 1)
        .build();
    CountDownLatch release = new CountDownLatch(1);
    CountDownLatch running = new CountDownLatch(2);
    Set<String> threads = ConcurrentHashMap.newKeySet();
    AtomicInteger dropped = new AtomicInteger();
    Runnable blocked = () -> {
      threads.add(Thread.currentThread().getName());
      running.countDown();
      try {
        release.await(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    };
    agent.submitIo(blocked, dropped::incrementAndGet);
    agent.submitIo(blocked, dropped::incrementAndGet);
    assertTrue(running.await(30, TimeUnit.SECONDS), "both threads busy");
    CountDownLatch queuedRan = new CountDownLatch(1);
    agent.submitIo(() -> {
      threads.add(Thread.currentThread().getName());
      queuedRan.countDown();
    }, dropped::incrementAndGet); // waits in the queue (1)
    assertEquals(0, dropped.get());

    AtomicInteger ranAnyway = new AtomicInteger();
    agent.submitIo(ranAnyway::incrementAndGet, dropped::incrementAndGet);
    assertEquals(1, dropped.get(), "a send past the bound is dropped at once");
    assertEquals(1, agent.ioDropped());

    release.countDown();
    assertTrue(queuedRan.await(30, TimeUnit.SECONDS), "the queued send runs");
    CountDownLatch later = new CountDownLatch(1);
    agent.submitIo(later::countDown, dropped::incrementAndGet);
    assertTrue(later.await(30, TimeUnit.SECONDS), "the pool takes sends again");
    assertEquals(0, ranAnyway.get(), "the dropped send never ran");
    assertEquals(1, dropped.get());
    assertTrue(threads.size() <= 2, "at most agentIo.threads threads: " + threads);
  }

  @Test
  void boundsAreValidated() {
    QueueServerAgent.Builder b = QueueServerAgent.builder("q1", new AgentLoadReportTest.NoStore());
    for (long[] bad : new long[][] {{1, 10}, {1025, 10}, {4, 0}, {4, 1_000_001}}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> b.io(bad[0], bad[1]));
      assertTrue(e.getMessage().contains(bad[0] < 2 || bad[0] > 1024 ? "agentIo.threads"
          : "agentIo.queue"), e.getMessage());
    }
    assertFalse(b.io(2, 1) == null);
  }
}
