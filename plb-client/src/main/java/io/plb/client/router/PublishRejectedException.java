package io.plb.client.router;

import io.plb.client.PlbClientException;
import io.plb.core.error.ErrorCode;

/**
 * A queue server refused a message as bad input ({@code REJECTED}): sending it again would not
 * help, so the producer never resends it. Messages of the same key published after it are not
 * held back by it.
 */
public final class PublishRejectedException extends PlbClientException {
  private static final long serialVersionUID = 1L;
  private final long seq;
  private final String serverId;

  public PublishRejectedException(long seq, String serverId, String detail) {
    super(ErrorCode.INVALID_ARGUMENT,
        "queue server " + serverId + " rejected message " + seq
            + (detail == null || detail.isEmpty() ? "" : ": " + detail),
        null);
    this.seq = seq;
    this.serverId = serverId;
  }

  /** The rejected message's sequence number in its producer session. */
  public long seq() {
    return seq;
  }

  /** The queue server that rejected it. */
  public String serverId() {
    return serverId;
  }
}
