package io.plb.core.handover;

import io.plb.core.command.Command;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The PLB leader's queue-server liveness and lease decisions (docs/design.md §5 "Liveness" and
 * "Owner leases"), pure: the leader's handover driver feeds it heartbeats, grants and its clock,
 * and proposes what {@link #check} decides.
 *
 * <p>Rules. A server silent for {@code suspectAfter} is suspect; for {@code downAfter} it is
 * declared DOWN. Silence is measured from the later of this leader's takeover and the moment it
 * first saw the server registered. A DOWN server heard within {@code suspectAfter} is made ACTIVE
 * again. A DOWN owner's ranges are forced (to the handover's target when it was moving and is
 * ACTIVE, else to the ACTIVE server with the fewest ranges; a PREPARE is aborted first) — but only
 * once no lease granted to it may still run: {@code lease + margin} after its last grant, counted
 * from this leader's takeover at the earliest (an earlier leader's grants all came before it). A
 * handover whose target is not ACTIVE is aborted, except from ABORT_SWITCH, where the source waits
 * for the target. A lease is granted only to a registered server that is not DOWN and not being
 * declared DOWN.
 *
 * <p>Invariant: {@link #leaseMayRun} is true for a server from each grant until {@code lease +
 * margin} has passed; no force of its ranges is decided while it is.
 *
 * <p>Times are the leader's monotonic nanos. Not thread-safe: the driver calls it from its one
 * leader-loop thread.
 */
public final class Liveness {
  /** A command to propose, keyed by its subject (at most one in flight per subject). */
  public record Proposal(String subject, Command command, String why) {}

  /** What one check decided: proposals, and servers newly suspect or heard again. */
  public record Round(List<Proposal> proposals, List<String> suspected, List<String> recovered) {}

  private final long suspectAfterNanos;
  private final long downAfterNanos;
  private final long leasePlusMarginNanos;

  private long leadingSince;
  private final Map<String, Long> lastHeard = new HashMap<>();
  private final Map<String, Long> lastGranted = new HashMap<>();
  private final Map<String, Long> firstSeen = new HashMap<>();
  private final Set<String> suspects = new HashSet<>();

  /**
   * @param suspectAfterNanos silence after which a server is suspect
   * @param downAfterNanos silence after which a server is declared DOWN
   * @param leasePlusMarginNanos how long after a grant a lease may still run (lease + margin)
   */
  public Liveness(long suspectAfterNanos, long downAfterNanos, long leasePlusMarginNanos) {
    this.suspectAfterNanos = suspectAfterNanos;
    this.downAfterNanos = downAfterNanos;
    this.leasePlusMarginNanos = leasePlusMarginNanos;
  }

  /** This node took over as leader at {@code now}: every clock starts again there. */
  public void takeOver(long now) {
    leadingSince = now;
    lastHeard.clear();
    lastGranted.clear();
    firstSeen.clear();
    suspects.clear();
  }

  /** A heartbeat of {@code serverId} arrived at {@code now}. */
  public void heard(String serverId, long now) {
    lastHeard.put(serverId, now);
  }

  /** This leader granted {@code serverId} a lease at {@code now}. */
  public void granted(String serverId, long now) {
    lastGranted.put(serverId, now);
  }

  /**
   * Why {@code serverId} may not hold a lease now — not registered, DOWN, or being declared DOWN
   * — or null when it may.
   */
  public static String noLease(ClusterImage image, String serverId, boolean beingDeclaredDown) {
    QueueServerInfo s = image.server(serverId);
    if (s == null) {
      return "queue server " + serverId + " is no longer registered";
    }
    if (s.state() == ServerState.DOWN) {
      return "queue server " + serverId + " is DOWN: no lease until it is ACTIVE again";
    }
    if (beingDeclaredDown) {
      return "queue server " + serverId + " is " + s.state() + " and being declared DOWN: no "
          + "lease until it is ACTIVE again";
    }
    return null;
  }

  /**
   * Whether a lease granted to {@code serverId} — by this leader, or before its takeover by
   * another — may still run at {@code now}.
   */
  public boolean leaseMayRun(String serverId, long now) {
    long last = Math.max(lastGranted.getOrDefault(serverId, leadingSince), leadingSince);
    return now - last <= leasePlusMarginNanos;
  }

  /** Whether the last check found {@code serverId} suspect (silent, not yet DOWN). */
  public boolean isSuspect(String serverId) {
    return suspects.contains(serverId);
  }

  /** The liveness decisions at {@code now} on {@code image}. */
  public Round check(ClusterImage image, long now) {
    firstSeen.keySet().retainAll(image.servers().keySet());
    lastHeard.keySet().retainAll(image.servers().keySet());
    lastGranted.keySet().retainAll(image.servers().keySet());
    suspects.retainAll(image.servers().keySet());
    List<Proposal> proposals = new ArrayList<>();
    List<String> newlySuspect = new ArrayList<>();
    List<String> recovered = new ArrayList<>();
    for (QueueServerInfo s : image.servers().values()) {
      long since = Math.max(leadingSince, firstSeen.computeIfAbsent(s.id(), id -> now));
      long last = Math.max(lastHeard.getOrDefault(s.id(), since), since);
      long silent = now - last;
      if (s.state() == ServerState.DOWN) {
        if (lastHeard.containsKey(s.id()) && silent < suspectAfterNanos) {
          proposals.add(new Proposal("server:" + s.id(),
              new Command.UpdateServer(s.id(), null, null, ServerState.ACTIVE),
              "queue server " + s.id() + " is heard again: ACTIVE"));
        }
        continue;
      }
      if (silent > downAfterNanos) {
        proposals.add(new Proposal("server:" + s.id(),
            new Command.UpdateServer(s.id(), null, null, ServerState.DOWN),
            "queue server " + s.id() + " silent for " + silent / 1_000_000 + " ms: DOWN"));
      } else if (silent > suspectAfterNanos) {
        if (suspects.add(s.id())) {
          newlySuspect.add(s.id());
        }
      } else if (suspects.remove(s.id())) {
        recovered.add(s.id());
      }
    }
    for (RangeEntry r : image.ranges()) {
      if (!r.isAssigned()) {
        continue;
      }
      QueueServerInfo owner = image.server(r.owner());
      Handover h = r.handover();
      if (owner != null && owner.state() == ServerState.DOWN && !leaseMayRun(owner.id(), now)) {
        if (h != null && h.phase() == HandoverPhase.PREPARE) {
          proposals.add(new Proposal("range:" + r.start(), new Command.AbortHandover(r.start(),
              r.epoch() + 1, "source " + r.owner() + " is DOWN"), "aborting the handover of "
              + r.rangeText() + ": source " + r.owner() + " is DOWN"));
          continue;
        }
        String target = h != null && isActive(image, h.target()) ? h.target()
            : image.leastLoadedActive(r.owner());
        if (target == null) {
          continue; // no ACTIVE server to take it: a later round tries again
        }
        proposals.add(new Proposal("range:" + r.start(), new Command.ForceHandover(r.start(),
            r.epoch(), target), "forced handover of " + r.rangeText() + " off DOWN "
            + r.owner() + " to " + target));
      } else if (h != null && h.phase() != HandoverPhase.ABORT_SWITCH
          && !isActive(image, h.target())) {
        proposals.add(new Proposal("range:" + r.start(), new Command.AbortHandover(r.start(),
            r.epoch() + 1, "target " + h.target() + " is " + stateOf(image, h.target())),
            "aborting the handover of " + r.rangeText() + ": target " + h.target() + " is "
            + stateOf(image, h.target())));
      }
    }
    return new Round(proposals, newlySuspect, recovered);
  }

  private static boolean isActive(ClusterImage image, String id) {
    QueueServerInfo s = image.server(id);
    return s != null && s.state() == ServerState.ACTIVE;
  }

  /** A server's state for a log line: its name, or "gone" when it is not in the map. */
  public static String stateOf(ClusterImage image, String id) {
    QueueServerInfo s = image.server(id);
    return s == null ? "gone" : s.state().name();
  }
}
