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

  /**
   * One chunk of a transfer to send: up to {@code maxMessages} messages and {@code maxBytes}
   * serialized bytes (at least one message, however large) of these buffers, buffer by buffer in
   * this order and each in the order it was filled, starting after {@code cursor} (empty: from
   * the start). The buffers of a transfer are frozen (sealed) before it is sent, so a cursor means
   * the same position in every read, also after a restart.
   */
  Chunk readChunk(long rangeStart, long handoverEpoch, List<Buffer> buffers, byte[] cursor,
      int maxMessages, long maxBytes);

  /**
   * A chunk read by {@link #readChunk}: its messages, the cursor after its last one, and whether
   * nothing follows it in the buffers.
   */
  record Chunk(List<StoredMessage> messages, byte[] cursor, boolean last) {}

  /**
   * How far a transfer received into buffer {@code into} of a handover is stored: the chunks
   * stored, the sender's cursor after the last of them, whether the final one is among them.
   */
  record Progress(long chunks, byte[] cursor, boolean complete) {
    public static final Progress NONE = new Progress(0, new byte[0], false);
  }

  /** The progress of the transfer received into {@code into} of a handover ({@link Progress#NONE}). */
  Progress transferProgress(long rangeStart, long handoverEpoch, Buffer into);

  /**
   * The handover is over here (the agent no longer keeps a side of it): its transfer progress
   * can go, since no transfer into it is accepted any more. Need not be durable.
   */
  void forgetTransfers(long rangeStart, long handoverEpoch);

  /**
   * Appends a received chunk to buffer {@code into} of the handover and records {@code progress}
   * (its number, the sender's cursor after it, whether it is the final one), in one durable
   * write. The caller stores only the chunk that follows the recorded progress.
   */
  void storeChunk(long rangeStart, long handoverEpoch, Buffer into, List<StoredMessage> messages,
      Progress progress);

  /**
   * Moves these buffers, in this order, to the back of the deliverable queue. A message id
   * {@code (producer, seq)} that appears more than once among them is queued once, at its first
   * place. An implementation may move them in several durable steps to bound its memory; then a
   * call repeated after a crash in the middle must finish the move as if it had not stopped
   * (including the de-duplication), and the caller must let nothing else into the queue before
   * the call returns (the agent calls it under its lock, and repeats it after a restart before
   * it places anything).
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
   * order it was filled; no more than {@code maxBytes} serialized bytes of them (but at least
   * one copy), so what is read stays bounded whatever the buffers hold.
   */
  List<Held> buffered(long rangeStart, long handoverEpoch, int max, long maxBytes);

  /**
   * Up to {@code max} messages of {@code [start, end)} in the deliverable queue, in its order,
   * and no more than {@code maxBytes} serialized bytes of them (but at least one message).
   */
  List<Held> queued(long start, long end, int max, long maxBytes);

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
   * durable write: a resend of that batch is answered from the receipt and stores nothing.
   * Every message is queued, also one this server may have stored before: a late copy can be
   * the only one left (docs/design.md §5 "Idempotent publish"), so it is delivered, marked late.
   */
  void queueLate(List<StoredMessage> messages, String fromServer, byte[] receipt);

  /**
   * Marks the messages of {@code [start, end)} in the deliverable queue late, in durable writes,
   * and returns how many were not marked before. For what a server still holds queued of a
   * range another server owns now: should the range come back to it before it has sent them on,
   * they are delivered as what they are — late — and not as if in order ahead of what the other
   * owner delivered meanwhile.
   */
  int markQueuedLate(long start, long end);

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
