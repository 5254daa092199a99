package io.plb.core.balance;

import io.plb.core.map.ServerState;
import java.util.Objects;

/**
 * A queue server as the planner sees it. Immutable.
 *
 * @param id the server's id, as in the shard map
 * @param capacity the cost rate (cost units per second, see {@link CostModel}) the server can
 *     sustain; utilisation = predicted cost rate / capacity. Finite and > 0. Servers differ: a
 *     server of capacity 2 takes twice the load of one of capacity 1 at the same utilisation.
 * @param state only {@link ServerState#ACTIVE} servers take part in balancing
 */
public record BalanceServer(String id, double capacity, ServerState state) {
  public BalanceServer {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(state, "state");
    if (id.isEmpty()) {
      throw new IllegalArgumentException("server id is empty");
    }
    if (!(capacity > 0) || Double.isInfinite(capacity)) {
      throw new IllegalArgumentException(
          "server " + id + ": capacity must be a finite number > 0 (got " + capacity + ")");
    }
  }

  public boolean isActive() {
    return state == ServerState.ACTIVE;
  }
}
