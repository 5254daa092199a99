package io.plb.core.map;

import java.util.Objects;

/** A registered queue server: where it listens, how much it can take, and its lifecycle state. */
public record QueueServerInfo(String id, String address, double capacity, ServerState state) {
  public QueueServerInfo {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(address, "address");
    Objects.requireNonNull(state, "state");
  }
}
