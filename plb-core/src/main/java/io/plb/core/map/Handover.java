package io.plb.core.map;

import java.util.Objects;

/** The handover slot of a range: where it is going and how far the move has got. */
public record Handover(String target, HandoverPhase phase) {
  public Handover {
    Objects.requireNonNull(target, "target");
    Objects.requireNonNull(phase, "phase");
  }
}
