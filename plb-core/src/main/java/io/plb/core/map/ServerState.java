package io.plb.core.map;

/** Lifecycle of a registered queue server. */
public enum ServerState {
  /** Serves ranges and may receive more. */
  ACTIVE,
  /** Being decommissioned: keeps what it has until moved away, receives nothing new. */
  DRAINING,
  /** Declared lost: receives nothing; its ranges are moved by forced handover. */
  DOWN
}
