package io.plb.core.sim.balance;

import java.util.List;

/** Plain hashing: the initial equal ranges, never moved. Stateless. */
public final class StaticStrategy implements BalanceStrategy {
  @Override
  public String name() {
    return "static";
  }

  @Override
  public void observe(MinuteLoad load) {}

  @Override
  public List<SimAction> plan(PlanContext context) {
    return List.of();
  }
}
