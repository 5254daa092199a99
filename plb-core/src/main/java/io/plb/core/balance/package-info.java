/**
 * Cost, imbalance and planning (DESIGN §8): what the balancer decides, as pure functions.
 *
 * <p>{@link io.plb.core.balance.CostModel} turns traffic into cost; a
 * {@link io.plb.core.balance.LoadOutlook} says how much cost each part of the ring is predicted to
 * bring over the horizon; {@link io.plb.core.balance.Planner#plan} turns the map, the servers, the
 * outlook, a {@link io.plb.core.balance.BalancerConfig} and the recent
 * {@link io.plb.core.balance.MoveHistory} into a {@link io.plb.core.balance.Plan} of moves, splits
 * and merges; {@link io.plb.core.balance.PlanApplier} applies a plan to a range list and checks
 * that the result is a valid map. Nothing here reads a clock, does I/O or keeps state between
 * calls: time is a {@code long} of milliseconds passed in, and the same input gives the same plan.
 */
package io.plb.core.balance;
