package io.plb.server.leader;

import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;

/**
 * Queues steps on a leader service's single thread (the handover driver, the telemetry intake,
 * the balancer): a step that throws is logged and does not stop the thread, and a step offered
 * while the node stops is dropped.
 */
final class LeaderLoop {
  private LeaderLoop() {}

  /**
   * Queues {@code step} on {@code loop}; false when the node is stopping (the executor refuses).
   * A {@code RuntimeException} from the step is logged as "{@code what} step failed".
   */
  static boolean submit(Executor loop, Logger log, String what, Runnable step) {
    try {
      loop.execute(() -> {
        try {
          step.run();
        } catch (RuntimeException e) {
          log.error("{} step failed", what, e);
        }
      });
      return true;
    } catch (RejectedExecutionException e) {
      return false;
    }
  }
}
