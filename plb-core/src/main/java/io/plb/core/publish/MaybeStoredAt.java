package io.plb.core.publish;

import io.plb.core.command.Limits;
import java.util.ArrayList;
import java.util.List;

/**
 * The rule of {@code PublishItem.maybe_stored_at} (docs/design.md §5 "Idempotent publish"): the
 * queue servers an earlier attempt of a message was written to whose answer never came. The
 * producer adds a server when a stream to it breaks with the message unanswered
 * ({@link #with}); a server that stores a resend naming another server cannot tell whether that
 * one stored it too, and stores it flagged ({@link #elsewhere}). Pure and stateless; the lists
 * are immutable.
 */
public final class MaybeStoredAt {
  private MaybeStoredAt() {}

  /**
   * {@code servers} with {@code server} added, unless it is there already or the list holds
   * {@link Limits#MAX_MAYBE_STORED_AT} (two distinct servers already make every server flag it,
   * so a longer list would tell none of them more).
   */
  public static List<String> with(List<String> servers, String server) {
    if (servers.contains(server) || servers.size() >= Limits.MAX_MAYBE_STORED_AT) {
      return servers;
    }
    List<String> out = new ArrayList<>(servers);
    out.add(server);
    return List.copyOf(out);
  }

  /** Whether a server other than {@code me} may have stored the message. */
  public static boolean elsewhere(List<String> servers, String me) {
    for (String s : servers) {
      if (!s.equals(me)) {
        return true;
      }
    }
    return false;
  }
}
