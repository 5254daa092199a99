package io.plb.core.handover;

import java.util.ArrayDeque;
import java.util.Iterator;

/**
 * A queue server's ownership lease, as the server keeps it (docs/design.md §5 "Owner leases").
 * Pure: times are the server's own monotonic nanos, passed in.
 *
 * <p>The server may accept and deliver messages of the ranges its map says it owns only while it
 * holds a lease. A lease is granted by the PLB leader's answer to a heartbeat and runs for the
 * granted length from the moment the server <em>sent</em> that heartbeat, measured on the
 * server's clock: the leader counts a server's silence from when it received the heartbeat, which
 * is later, so the server's lease always ends before the leader may declare it DOWN (given the
 * leader's margin for clock-rate drift). A grant names the leader's map version when it answered;
 * it counts only once the server has applied that version, so a server that returns from a pause
 * or a partition does not resume under the map it had, which may still show ranges that were
 * forced away from it meanwhile.
 *
 * <p>Grants waiting for their version are kept (the newest {@value #MAX_WAITING}) beside the
 * one that counts, so a renewal naming a version the watch has not delivered yet never
 * interrupts a lease that still runs.
 *
 * <p>Thread model: every method is synchronized; the heartbeat thread grants, the publish and
 * delivery paths ask.
 */
public final class OwnerLease {
  /** Grants waiting for their map version are kept up to this many, the newest. */
  static final int MAX_WAITING = 16;

  private long expiresAt;
  private boolean held; // some grant has counted: expiresAt is meaningful
  /** Grants waiting for their map version, oldest first: {expiresAt, version}. */
  private final ArrayDeque<long[]> waiting = new ArrayDeque<>();

  /**
   * The leader granted a lease of {@code lengthNanos} in answer to a heartbeat sent at
   * {@code sentNanos}, at its map version {@code version}.
   */
  public synchronized void granted(long sentNanos, long lengthNanos, long version) {
    if (lengthNanos <= 0) {
      throw new IllegalArgumentException("a lease must have a positive length");
    }
    waiting.addLast(new long[] {sentNanos + lengthNanos, version});
    if (waiting.size() > MAX_WAITING) {
      waiting.removeFirst(); // a newer grant runs longer; it only waits for a later version
    }
  }

  /** Whether the server holds a lease at {@code nowNanos}, having applied {@code version}. */
  public synchronized boolean holds(long nowNanos, long appliedVersion) {
    promote(appliedVersion);
    return held && nowNanos - expiresAt < 0;
  }

  /** Nanos left on the lease at {@code nowNanos} (0 when none is held). */
  public synchronized long remainingNanos(long nowNanos, long appliedVersion) {
    promote(appliedVersion);
    return held ? Math.max(0, expiresAt - nowNanos) : 0;
  }

  /** The highest map version a grant still waits for, or 0. */
  public synchronized long awaitedVersion() {
    long v = 0;
    for (long[] g : waiting) {
      v = Math.max(v, g[1]);
    }
    return v;
  }

  /** Every waiting grant whose version is applied now counts. */
  private void promote(long appliedVersion) {
    for (Iterator<long[]> it = waiting.iterator(); it.hasNext(); ) {
      long[] g = it.next();
      if (g[1] <= appliedVersion) {
        if (!held || g[0] - expiresAt > 0) {
          expiresAt = g[0];
        }
        held = true;
        it.remove();
      }
    }
  }
}
