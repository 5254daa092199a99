package io.plb.core.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Runs the seeded handover simulation over many seeds. A failure names its seed; replay one with
 * {@code -Dplb.sim.seed=N} (add {@code -Dplb.sim.trace=true} for a step-by-step story), or run more
 * seeds with {@code -Dplb.sim.count=N}.
 */
class HandoverSimulationTest {
  private static final HandoverSimulation.Config PIPELINED =
      new HandoverSimulation.Config(3, 120, 6, 3, 0.05, 0.2, 8);
  private static final HandoverSimulation.Config SEQUENTIAL =
      new HandoverSimulation.Config(2, 80, 4, 1, 0.08, 0.3, 6);
  /** Many aborts, few keys: reaches the abort-from-SWITCH races that C2 and C3 guard. */
  private static final HandoverSimulation.Config ABORTS =
      new HandoverSimulation.Config(2, 100, 2, 2, 0.3, 0.2, 10);
  /** Reports, transfers and their acknowledgements lost at random; agents send them again. */
  private static final HandoverSimulation.Config LOSSY =
      new HandoverSimulation.Config(2, 100, 4, 2, 0.1, 0.2, 8, 0.25);

  @Test
  void manySeedsKeepEveryMessageInProducerOrder() {
    String only = System.getProperty("plb.sim.seed");
    long first = only == null ? 1 : Long.parseLong(only);
    long last = only == null ? Long.getLong("plb.sim.count", 1000) : first;
    long completed = 0;
    long aborted = 0;
    long refusals = 0;
    for (long seed = first; seed <= last; seed++) {
      HandoverSimulation.Config config = switch ((int) (seed % 4)) {
        case 0 -> PIPELINED;
        case 1 -> SEQUENTIAL;
        case 2 -> ABORTS;
        default -> LOSSY;
      };
      HandoverSimulation.Result r = new HandoverSimulation(seed, config).run();
      completed += r.handoversCompleted();
      aborted += r.handoversAborted();
      refusals += r.refusals();
    }
    if (only == null) {
      // The runs must actually exercise the protocol, or passing means nothing.
      assertTrue(completed > 200, "handovers completed: " + completed);
      assertTrue(aborted > 50, "handovers aborted: " + aborted);
      assertTrue(refusals > 100, "WRONG_OWNER refusals: " + refusals);
    }
  }

  @Test
  void aSeedReplaysExactly() {
    HandoverSimulation.Result a = new HandoverSimulation(42, PIPELINED).run();
    HandoverSimulation.Result b = new HandoverSimulation(42, PIPELINED).run();
    assertEquals(a, b);
  }
}
