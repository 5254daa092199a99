package io.plb.client.router;

/**
 * A message a queue server has accepted: stored durably there, to be delivered (DESIGN §5).
 *
 * @param seq the message's sequence number in its producer session (1, 2, 3, ...)
 * @param producer the producer session's id
 * @param serverId the queue server that accepted it
 * @param mapVersion the map version the accepted send was routed under (its tag)
 * @param latencyNanos from the {@code publish} call to the acknowledgement, resends included
 * @param duplicate the answer to a resend: the server (or the range's earlier owner) had stored
 *     the message already, and stored nothing again
 */
public record PublishAck(
    long seq, String producer, String serverId, long mapVersion, long latencyNanos,
    boolean duplicate) {}
