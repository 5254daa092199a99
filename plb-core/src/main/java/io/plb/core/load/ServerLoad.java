package io.plb.core.load;

import io.plb.core.command.Limits;
import io.plb.core.error.PlbException;
import java.util.List;

/**
 * One queue server's totals over a history bucket: its figures summed over its slices, how many
 * of its load reports the bucket counts, and the last of them ({@code session}, {@code lastSeq}),
 * so that a new leader knows which reports the committed history already holds. Immutable.
 */
public record ServerLoad(String serverId, LoadFigures load, int reports, long session,
    long lastSeq) {

  /** The same server's totals over this bucket and then {@code next}. */
  ServerLoad then(ServerLoad next) {
    return new ServerLoad(serverId, load.then(next.load), saturate(reports + (long) next.reports),
        next.session, next.lastSeq);
  }

  private static int saturate(long n) {
    return (int) Math.min(Integer.MAX_VALUE, n);
  }

  /** What is wrong with a list of server totals, or null. Ids must be distinct and sorted. */
  static String problem(List<ServerLoad> servers) {
    String previous = null;
    for (ServerLoad s : servers) {
      if (s == null || s.load() == null) {
        return "a server entry is empty";
      }
      try {
        Limits.checkServerId(s.serverId());
      } catch (PlbException e) {
        return e.getMessage();
      }
      if (previous != null && previous.compareTo(s.serverId()) >= 0) {
        return "servers must be listed once each, sorted by id; " + s.serverId() + " follows "
            + previous;
      }
      String bad = s.load().problem();
      if (bad != null) {
        return "server " + s.serverId() + ": " + bad;
      }
      if (s.reports() < 1) {
        return "server " + s.serverId() + " is listed with " + s.reports() + " reports";
      }
      if (s.session() < 1 || s.lastSeq() < 1) {
        return "server " + s.serverId() + " has no report session and sequence number";
      }
      previous = s.serverId();
    }
    return null;
  }
}
