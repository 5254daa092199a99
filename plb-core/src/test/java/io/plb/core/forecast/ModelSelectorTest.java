package io.plb.core.forecast;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class ModelSelectorTest {
  private static final int DAY = 96; // 15-minute buckets
  private static final int WEEK = 7 * DAY;

  private static ModelSelector selector(ForecasterConfig c) {
    return c.selector();
  }

  @Test
  void picksASeasonalModelOnSeasonalData() {
    ForecasterConfig config = ForecasterConfig.full(DAY, 4);
    assertEquals(5, config.candidates().size());
    double[] y = Synthetic.flights(DAY, 200).series(21, 3 * WEEK);
    ModelSelector.Selection s = selector(config).select(y);
    assertNotEquals("ewma", s.chosen(), s.scores().toString());
    assertFalse(s.reactiveChosen());
    ModelSelector.Score chosen = s.score(s.chosen());
    ModelSelector.Score reactive = s.score("ewma");
    ModelSelector.Score naive = s.score("seasonal-naive/" + DAY);
    assertTrue(chosen.mase() < reactive.mase() * 0.98, s.scores().toString());
    assertTrue(chosen.mase() < naive.mase(), s.scores().toString());
    // Every candidate had enough history and was scored.
    assertEquals(1 + config.candidates().size(), s.scores().size());
    s.scores().forEach(score -> assertTrue(score.available(), score.toString()));
    // The chosen model is positioned at the end of the history, ready to forecast.
    assertEquals(y.length, s.model().time());
    assertEquals(y.length, s.reactive().time());
  }

  @Test
  void picksTheReactiveEstimateOnARandomWalk() {
    ForecasterConfig config = ForecasterConfig.full(DAY, 4);
    for (long seed = 1; seed <= 3; seed++) {
      double[] y = Synthetic.randomWalk(seed, 3 * WEEK, 500, 5);
      ModelSelector.Selection s = selector(config).select(y);
      assertEquals("ewma", s.chosen(), "seed " + seed + ": " + s.scores());
      assertTrue(s.reactiveChosen());
      assertSame(s.model(), s.reactive());
    }
  }

  @Test
  void seasonalNaiveScoresAboutOneMase() {
    // A pure daily cycle (no weekly pattern): seasonal naive is its own scale.
    Synthetic daily = new Synthetic(DAY, 100, 0.5, 4, new double[0], 0, 1,
        new double[] {1, 1, 1, 1, 1, 1, 1}, 0, 0.1, false, 0, 0, 1, 0);
    double[] y = daily.series(4, 3 * WEEK);
    ModelSelector sel =
        new ModelSelector(List.of(new SeasonalNaive(DAY)), Ewma.fitted(DAY), DAY, 1, DAY, 1, 0.02,
            false);
    ModelSelector.Selection s = sel.select(y);
    assertEquals(1.0, s.score("seasonal-naive/" + DAY).mase(), 0.25, s.scores().toString());
  }

  @Test
  void shortHistoryLeavesOnlyTheReactiveEstimate() {
    ForecasterConfig config = ForecasterConfig.defaults(DAY, 4);
    double[] y = Synthetic.flights(DAY, 200).series(2, DAY);
    ModelSelector.Selection s = selector(config).select(y);
    assertEquals("ewma", s.chosen());
    for (ForecastModel m : config.candidates()) {
      // A third of the history is backtested; the rest must cover the model's needs.
      assertEquals(m.minHistory() <= DAY - DAY / 3, s.score(m.name()).available(), m.name());
    }
    // One observation: nothing to backtest, still a usable reactive estimate.
    ModelSelector.Selection one = selector(config).select(new double[] {5});
    assertEquals("ewma", one.chosen());
    assertEquals(5, one.model().forecast(3, 0.8).mean(2), 1e-12);
  }

  @Test
  void selectionIsDeterministic() {
    ForecasterConfig config = ForecasterConfig.defaults(DAY, 4);
    double[] y = Synthetic.flights(DAY, 50).withBursts(0.01, 1, 4).series(8, 3 * WEEK);
    ModelSelector.Selection a = selector(config).select(y);
    ModelSelector.Selection b = selector(config).select(y);
    assertEquals(a.chosen(), b.chosen());
    for (int i = 0; i < a.scores().size(); i++) {
      assertEquals(a.scores().get(i).mae(), b.scores().get(i).mae());
    }
    assertEquals(a.model().forecast(4, 0.8), b.model().forecast(4, 0.8));
  }

  @Test
  void invalidArgumentsAreRejected() {
    ForecastModel ewma = Ewma.fitted(DAY);
    assertThrows(IllegalArgumentException.class,
        () -> new ModelSelector(List.of(Ewma.fitted(10)), ewma, DAY, 4, DAY, 1, 0.02, false));
    assertThrows(IllegalArgumentException.class,
        () -> new ModelSelector(List.of(), ewma, 1, 4, DAY, 1, 0.02, false));
    assertThrows(IllegalArgumentException.class,
        () -> new ModelSelector(List.of(), ewma, DAY, 0, DAY, 1, 0.02, false));
    assertThrows(IllegalArgumentException.class,
        () -> new ModelSelector(List.of(), ewma, DAY, 4, DAY, 1, -0.1, false));
    assertThrows(IllegalArgumentException.class,
        () -> new ModelSelector(List.of(), null, DAY, 4, DAY, 1, 0.02, false));
    ModelSelector sel = new ModelSelector(List.of(), ewma, DAY, 4, DAY, 1, 0.02, false);
    assertThrows(IllegalArgumentException.class, () -> sel.select(new double[0]));
    assertThrows(IllegalArgumentException.class, () -> sel.select(new double[] {1, Double.NaN}));
  }
}
