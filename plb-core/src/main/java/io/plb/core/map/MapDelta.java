package io.plb.core.map;

import java.util.List;
import java.util.Objects;

/**
 * What one committed entry changed in the cluster image. The same record is persisted by the
 * state machine, replayed on followers and after snapshot load, and streamed to subscribers:
 * {@link ClusterImage#apply(MapDelta)} is the one replay path.
 *
 * <p>Applying it to the image at {@code prevVersion}: remove {@code removedRangeStarts}, then put
 * {@code upsertedRanges} (replacing any range with the same start); likewise for servers.
 *
 * <p>{@code actionCause} is set when the balancer decided the change (null for an operator's or an
 * agent's command): the criterion, the figures and the forecast behind it.
 */
public record MapDelta(
    long version,
    long prevVersion,
    List<Long> removedRangeStarts,
    List<RangeEntry> upsertedRanges,
    List<String> removedServers,
    List<QueueServerInfo> upsertedServers,
    String cause,
    ActionCause actionCause) {

  /** A change without an automatic cause. */
  public MapDelta(long version, long prevVersion, List<Long> removedRangeStarts,
      List<RangeEntry> upsertedRanges, List<String> removedServers,
      List<QueueServerInfo> upsertedServers, String cause) {
    this(version, prevVersion, removedRangeStarts, upsertedRanges, removedServers,
        upsertedServers, cause, null);
  }

  public MapDelta {
    removedRangeStarts = List.copyOf(removedRangeStarts);
    upsertedRanges = List.copyOf(upsertedRanges);
    removedServers = List.copyOf(removedServers);
    upsertedServers = List.copyOf(upsertedServers);
    Objects.requireNonNull(cause, "cause");
  }

  /**
   * Whether the delta changes nothing: a late or duplicated report, recognised and ignored. Such
   * an entry produces no new map version.
   */
  public boolean isEmpty() {
    return removedRangeStarts.isEmpty() && upsertedRanges.isEmpty() && removedServers.isEmpty()
        && upsertedServers.isEmpty();
  }
}
