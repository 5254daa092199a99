package io.plb.client.agent;

import io.plb.core.handover.Participant.Buffer;
import io.plb.proto.v1.ProducerSequence;
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
   * One stored copy of a message: in the deliverable queue ({@code buffer} null, handover fields
   * 0) or in a buffer of handover {@code (rangeStart, handoverEpoch)}. {@code hash} is its key's
   * ring position; {@code position} tells the store which copy it is.
   */
  record Held(StoredMessage message, long hash, long rangeStart, long handoverEpoch,
      Buffer buffer, long position) {
    /** The message id as one string ({@link HandoverStore#messageId}). */
    public String id() {
      return messageId(message);
    }
  }

  /** A message's id, {@code (producer, producer_epoch, seq)}, as one string. */
  static String messageId(StoredMessage m) {
    return m.getProducer() + "\u0000" + m.getProducerEpoch() + "\u0000" + m.getSeq();
  }

  /** A handover whose buffers hold messages here. */
  record BufferedHandover(long rangeStart, long handoverEpoch) {}

  /**
   * Every handover that still has messages in any buffer, ordered by range start (unsigned),
   * then epoch. The agent compares them with its open handovers to find what a crash or a lost
   * range kept it from handing on.
   */
  List<BufferedHandover> bufferedHandovers();

  /**
   * The lowest key hash at or above {@code from} (unsigned) of a message in the deliverable
   * queue, or empty: the start of the next stretch of the ring with a {@link #backlog}. With it
   * the agent looks at the few ranges the store holds anything of, not at every range of the
   * map (a map may hold a million).
   */
  OptionalLong nextQueuedHash(long from);

  /**
   * Up to {@code max} copies in the buffers of a handover, buffer by buffer in the order a
   * release would list them ({@code HOLD, PREFIX, RETURNED, HELD, POST_ABORT}), each in the
   * order it was filled.
   */
  List<Held> buffered(long rangeStart, long handoverEpoch, int max);

  /** Up to {@code max} messages of {@code [start, end)} in the deliverable queue, in its order. */
  List<Held> queued(long start, long end, int max);

  /**
   * Deletes these copies (their messages were stored by the owner of their keys) in one durable
   * write. A copy that is gone already (acknowledged by a consumer meanwhile) is skipped.
   */
  void drop(List<Held> copies);

  /**
   * Moves these buffer copies to the back of the deliverable queue, marked late, in this order
   * and in one durable write; a message id repeated among them is queued once, and a copy gone
   * already is skipped. For what a server still held of ranges it lost while DOWN, where the
   * keys are its own again.
   */
  void requeueLate(List<Held> copies);

  /**
   * Appends late messages (marked late) to the back of the deliverable queue and records
   * {@code receipt} as the answer to the last late batch taken from {@code fromServer}, in one
   * durable write: a resend of that batch is answered from the receipt and stores nothing. A
   * message this server stored itself (the last one of its producer and key here) is skipped:
   * the producer's resend reached this server before the late copy did.
   */
  void queueLate(List<StoredMessage> messages, String fromServer, byte[] receipt);

  /** The receipt last recorded for {@code fromServer} by {@link #queueLate}, or an empty array. */
  byte[] lateReceipt(String fromServer);

  /**
   * What the store keeps to recognise producers' resends of the keys in {@code [start, end)}
   * (the last seq stored per producer and key; docs/design.md §5 "Idempotent publish"), to send
   * with the range.
   */
  List<ProducerSequence> sequencesIn(long start, long end);

  /**
   * Takes the sequences that arrived with a range from the server that held it, keeping per
   * producer and key the larger seq, in one durable write. With a handover ({@code buffer} not
   * null), also deletes from that buffer of it — the one this server filled with publishes
   * while the other side had the range's earlier messages — each message the arriving sequences
   * show the other side stored already: a producer's resend of a message whose answer it lost.
   */
  void mergeSequences(List<ProducerSequence> sequences, long rangeStart, long handoverEpoch,
      Buffer buffer);

  /** Persists the agent's state (open handover sides and refusal fences). */
  void saveAgentState(byte[] state);

  /** The state last saved, or an empty array. */
  byte[] loadAgentState();
}
