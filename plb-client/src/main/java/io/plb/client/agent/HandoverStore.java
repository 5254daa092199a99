package io.plb.client.agent;

import io.plb.core.handover.Participant.Buffer;
import io.plb.proto.v1.StoredMessage;
import java.util.List;
import java.util.OptionalLong;

/**
 * The durable storage a queue server lends its {@link QueueServerAgent}: the deliverable queue's
 * backlog per range, the handover buffers of each {@code (range, handoverEpoch)}, and the agent's
 * own state. Every method is durable when it returns, and every mutation is idempotent, because
 * the agent repeats an action after a crash rather than risk skipping it.
 *
 * <p>Implementations are thread-safe. The agent calls them while holding its own lock; an
 * implementation must never call back into the agent while holding a lock of its own.
 */
public interface HandoverStore {

  /** Messages of {@code [start, end)} in the deliverable queue not yet acknowledged by consumers. */
  long backlog(long start, long end);

  /** The messages of these buffers, buffer by buffer, each in the order it was filled. */
  List<StoredMessage> read(long rangeStart, long handoverEpoch, List<Buffer> buffers);

  /**
   * Stores a received transfer as buffer {@code into} of the handover, in one durable write. A
   * transfer is stored whole or not at all, so storing into a buffer that already holds messages
   * is a resend and stores nothing.
   */
  void store(long rangeStart, long handoverEpoch, Buffer into, List<StoredMessage> messages);

  /**
   * Moves these buffers, in this order, to the back of the deliverable queue, in one durable
   * write. A message id {@code (producer, seq)} that appears more than once among them is queued
   * once, at its first place.
   */
  void release(long rangeStart, long handoverEpoch, List<Buffer> buffers);

  /** Deletes these buffers in one durable write. */
  void discard(long rangeStart, long handoverEpoch, List<Buffer> buffers);

  /**
   * Takes every message of {@code [start, end)} the server still has — the deliverable queue and
   * the buffers of {@code handoverEpoch} — for sending to the range's new owner as late messages.
   * Nothing is deleted until {@link #dropOrphans} is called with the same arguments.
   */
  List<StoredMessage> orphans(long start, long end, long handoverEpoch);

  /** Deletes what {@link #orphans} returned, after the new owner stored it. */
  void dropOrphans(long start, long end, long handoverEpoch, List<StoredMessage> sent);

  /** Appends late messages (marked late) to the back of the deliverable queue, durably. */
  void queueLate(List<StoredMessage> messages);

  /**
   * The handover epochs of the range starting at {@code rangeStart} that still have messages in
   * any buffer, in increasing order. The agent compares them with its open handovers to find
   * what a crash kept it from handing on.
   */
  List<Long> bufferedHandovers(long rangeStart);

  /**
   * The starts of the ranges with messages in some handover buffer (those whose
   * {@link #bufferedHandovers} is not empty), in any order: with {@link #nextQueuedHash}, what
   * lets the agent look at the few ranges the store holds anything of instead of every range of
   * the map.
   */
  List<Long> bufferedRangeStarts();

  /**
   * The lowest key hash at or above {@code from} (unsigned) of a message in the deliverable
   * queue, or empty: the start of the next stretch of the ring with a {@link #backlog}.
   */
  OptionalLong nextQueuedHash(long from);

  /**
   * Moves every buffer of the handover to the back of the deliverable queue, marked late, in one
   * durable write; a message id repeated among them is queued once. For what a server still held
   * of a range it lost while DOWN and owns again.
   */
  void releaseLate(long rangeStart, long handoverEpoch);

  /** Persists the agent's state (open handover sides and refusal fences). */
  void saveAgentState(byte[] state);

  /** The state last saved, or an empty array. */
  byte[] loadAgentState();
}
