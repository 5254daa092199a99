package io.plb.core.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** Defaults, and every bad setting refused with a message naming it and its allowed range. */
class BalancerConfigTest {
  @Test
  void defaults() {
    BalancerConfig c = BalancerConfig.defaults();
    assertEquals(Criterion.MAX_MEAN, c.criterion());
    assertEquals(1.15, c.maxMeanRatio());
    assertEquals(0.8, c.highWater());
    assertEquals(0.9, c.quantile());
    assertEquals(Duration.ofMinutes(10), c.horizon());
    assertEquals(4, c.maxMovesPerRound());
    assertEquals(2, c.maxMovesPerServer());
    assertEquals(4, c.maxMovesPerWindow());
    assertEquals(Duration.ofMinutes(10), c.moveWindow());
    assertEquals(Duration.ofMinutes(10), c.minDwell());
    assertEquals(0.02, c.minGain());
    assertEquals(1.15, c.threshold());
    assertEquals(1.10, c.exitLevel(), 1e-12);
    assertEquals(c, c.toBuilder().build());
  }

  private static void refused(String name, String range, UnaryOperator<BalancerConfig.Builder> b) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> b.apply(BalancerConfig.builder()).build());
    assertTrue(e.getMessage().contains("balancer." + name), e.getMessage());
    assertTrue(e.getMessage().contains(range), e.getMessage());
  }

  @Test
  void badValuesAreRefusedByName() {
    refused("quantile", "(0.5, 1)", b -> b.quantile(0.5));
    refused("quantile", "(0.5, 1)", b -> b.quantile(1.0));
    refused("quantile", "(0.5, 1)", b -> b.quantile(Double.NaN));
    refused("maxMeanRatio", "> 1", b -> b.maxMeanRatio(1.0));
    refused("maxMeanRatio", "> 1", b -> b.maxMeanRatio(Double.POSITIVE_INFINITY));
    refused("highWater", "(0, 10]", b -> b.highWater(0));
    refused("stddevThreshold", "> 0", b -> b.stddevThreshold(-0.1));
    refused("hysteresis", "[0, ", b -> b.hysteresis(-0.01));
    refused("hysteresis", "below the MAX_MEAN threshold minus 1", b -> b.hysteresis(0.15));
    refused("hysteresis", "below the HIGH_WATER threshold",
        b -> b.criterion(Criterion.HIGH_WATER).highWater(0.5).hysteresis(0.5));
    refused("actAbove", ">= 0", b -> b.actAbove(-1));
    refused("lumpAllowance", ">= 0", b -> b.lumpAllowance(-0.5));
    refused("lumpAllowance", ">= 0", b -> b.lumpAllowance(Double.NaN));
    refused("upperCorrelation", "[0, 1]", b -> b.upperCorrelation(1.5));
    refused("horizon", "> 0", b -> b.horizon(Duration.ZERO));
    refused("horizon", "must be set", b -> b.horizon(null));
    refused("moveWindow", "> 0", b -> b.moveWindow(Duration.ofSeconds(-1)));
    refused("minDwell", "> 0", b -> b.minDwell(Duration.ZERO));
    refused("expectedHold", "> 0", b -> b.expectedHold(Duration.ZERO));
    refused("maxMovesPerRound", ">= 0", b -> b.maxMovesPerRound(-1));
    refused("maxMovesPerServer", ">= 0", b -> b.maxMovesPerServer(-1));
    refused("maxMovesPerWindow", ">= 0", b -> b.maxMovesPerWindow(-1));
    refused("maxSplitsPerRound", ">= 0", b -> b.maxSplitsPerRound(-1));
    refused("maxMergesPerRound", ">= 0", b -> b.maxMergesPerRound(-1));
    refused("minGain", "[0, 1)", b -> b.minGain(1));
    refused("disruptionWeight", ">= 0", b -> b.disruptionWeight(-1));
    refused("splitMinLoad", "> 0", b -> b.splitMinLoad(0));
    refused("splitMinLoad", "2 x balancer.mergeMaxLoad", b -> b.mergeMaxLoad(0.04));
    refused("hotKeyShare", "(0, 1]", b -> b.hotKeyShare(0));
    refused("maxRanges", ">= 1", b -> b.maxRanges(0));
    refused("mergeMaxLoad", ">= 0", b -> b.mergeMaxLoad(-0.1));
    refused("minRangesPerServer", ">= 1", b -> b.minRangesPerServer(0));
    refused("maxMergesPerMove", ">= 0", b -> b.maxMergesPerMove(-1));
    assertThrows(NullPointerException.class, () -> BalancerConfig.builder().criterion(null)
        .build());
  }

  @Test
  void budgetsOfZeroAreAllowed() {
    BalancerConfig c = BalancerConfig.builder().maxMovesPerRound(0).maxMovesPerServer(0)
        .maxMovesPerWindow(0).maxSplitsPerRound(0).maxMergesPerRound(0).mergeMaxLoad(0)
        .minGain(0).hysteresis(0).build();
    assertEquals(0, c.maxMovesPerRound());
  }

  @Test
  void costModel() {
    assertEquals(2.0, CostModel.DEFAULT.costOf(1024), 1e-12);
    assertEquals(10 + 5.0, CostModel.DEFAULT.cost(10, 5 * 1024), 1e-12);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new CostModel(-1, 0));
    assertTrue(e.getMessage().contains("cost.perMessage"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new CostModel(0, Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> new CostModel(0, 0));
  }
}
