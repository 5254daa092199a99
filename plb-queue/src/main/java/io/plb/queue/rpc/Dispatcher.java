package io.plb.queue.rpc;

import com.google.protobuf.ByteString;
import io.grpc.stub.ServerCallStreamObserver;
import io.plb.core.load.SliceLoadAccumulator;
import io.plb.proto.v1.Delivery;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.queue.store.QueueStore;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.LongPredicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hands deliverable messages to consumer sessions: one dispatcher thread takes key heads from the
 * {@link QueueStore} (at most one outstanding message per key across all sessions, so each key is
 * delivered in order) and sends them to sessions with credit, round-robin. A session's credit is
 * its {@code max_in_flight} minus its unacknowledged deliveries. When a session ends, what it
 * held is delivered again, marked redelivered (at-least-once).
 *
 * <p>Nothing is delivered while {@code mayDeliver} says no — the server holds no ownership lease
 * (docs/design.md §5 "Owner leases"); consumers then simply receive nothing, and the agent wakes
 * the dispatcher when the lease is held again. Nor is anything of a range the server's map says
 * it does not own: what a server still has queued of a range that was forced away from it goes
 * to the owner as late messages, never to this server's consumers.
 *
 * <p>Thread model: {@link #wake} may be called from any thread; only the dispatcher thread sends
 * on a session's stream, so stream writes never race. Session state is guarded by the session.
 * A round that fails unexpectedly is logged and tried again {@value #RETRY_MILLIS} ms later: the
 * wake-up it consumed may have been the only one for what is queued, and the thread never ends
 * but on {@link #close}.
 */
public final class Dispatcher implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Dispatcher.class);
  /** How long after a failed round the dispatcher tries again (no spinning on a fault). */
  static final long RETRY_MILLIS = 100;

  /** Test hook, null outside tests: a round starts by running it (it may throw). */
  static volatile Runnable failRound;

  private final QueueStore store;
  private final SliceLoadAccumulator load;
  private final BooleanSupplier mayDeliver;
  private final LongPredicate owned;
  private final List<Session> sessions = new CopyOnWriteArrayList<>();
  private final AtomicLong delivered = new AtomicLong();
  private final Object signal = new Object();
  private final Thread thread;
  private boolean pending;
  private volatile boolean closed;
  private int nextSession;

  /**
   * @param load where deliveries are counted for the load reports (DESIGN §6)
   * @param mayDeliver whether delivering is allowed now (the server holds its lease)
   * @param owned whether the key at a ring position is in a range this server owns now
   */
  public Dispatcher(QueueStore store, String serverId, SliceLoadAccumulator load,
      BooleanSupplier mayDeliver, LongPredicate owned) {
    this.store = store;
    this.load = load;
    this.mayDeliver = mayDeliver;
    this.owned = owned;
    this.thread = new Thread(this::loop, "plb-dispatch-" + serverId);
    this.thread.setDaemon(true);
    this.thread.start();
  }

  /** A consumer's stream. */
  public final class Session {
    final String consumer;
    final int maxInFlight;
    final ServerCallStreamObserver<SubscribeResponse> stream;
    /** Unacknowledged deliveries: lsn → key. */
    final Map<Long, ByteString> outstanding = new HashMap<>();
    boolean ended;

    Session(String consumer, int maxInFlight, ServerCallStreamObserver<SubscribeResponse> stream) {
      this.consumer = consumer;
      this.maxInFlight = maxInFlight;
      this.stream = stream;
    }

    synchronized int credit() {
      return ended || !stream.isReady() ? 0 : maxInFlight - outstanding.size();
    }

    /** The consumer acknowledged these deliveries. */
    public void ack(List<Long> ids) {
      for (long id : ids) {
        ByteString key;
        synchronized (this) {
          key = outstanding.remove(id);
        }
        if (key != null) {
          store.ack(this, id, key);
        }
      }
      wake();
    }

    /** The stream ended: what the consumer held goes back. */
    public void close() {
      List<Long> lsns;
      List<ByteString> keys;
      synchronized (this) {
        if (ended) {
          return;
        }
        ended = true;
        lsns = new ArrayList<>(outstanding.keySet());
        keys = new ArrayList<>(outstanding.values());
        outstanding.clear();
      }
      sessions.remove(this);
      store.releaseHolder(this, lsns, keys);
      if (!lsns.isEmpty()) {
        LOG.info("consumer {} went away holding {} message(s); they will be redelivered",
            consumer, lsns.size());
      }
      wake();
    }
  }

  /** Opens a session for a consumer stream. */
  public Session open(String consumer, int maxInFlight,
      ServerCallStreamObserver<SubscribeResponse> stream) {
    Session s = new Session(consumer, maxInFlight, stream);
    sessions.add(s);
    wake();
    return s;
  }

  /** Something may be deliverable, or a session may have room. */
  public void wake() {
    synchronized (signal) {
      pending = true;
      signal.notifyAll();
    }
  }

  public long delivered() {
    return delivered.get();
  }

  public int sessions() {
    return sessions.size();
  }

  private void loop() {
    while (!closed) {
      synchronized (signal) {
        while (!pending && !closed) {
          try {
            signal.wait();
          } catch (InterruptedException e) {
            return;
          }
        }
        pending = false;
      }
      try {
        dispatchRound();
      } catch (RuntimeException e) {
        LOG.error("dispatch round failed; trying again in {} ms", RETRY_MILLIS, e);
        synchronized (signal) {
          pending = true;
          try {
            signal.wait(RETRY_MILLIS); // a wake() ends the pause early; pending is set either way
          } catch (InterruptedException ie) {
            return;
          }
        }
      }
    }
  }

  /** Gives every session with credit what is deliverable, until nothing more can go. */
  private void dispatchRound() {
    Runnable fail = failRound;
    if (fail != null) {
      fail.run();
    }
    boolean progress = true;
    while (progress && !closed) {
      progress = false;
      List<Session> list = new ArrayList<>(sessions);
      if (list.isEmpty()) {
        return;
      }
      int first = nextSession;
      for (int n = 0; n < list.size(); n++) {
        int at = Math.floorMod(first + n, list.size());
        Session s = list.get(at);
        int credit = s.credit();
        if (credit <= 0) {
          continue;
        }
        if (!mayDeliver.getAsBoolean()) {
          return; // woken again when the lease is held
        }
        List<QueueStore.Delivered> batch = store.take(s, Math.min(credit, 128), owned);
        if (batch.isEmpty()) {
          return;
        }
        // The turn passes to the session after the one served, never further: when messages
        // arrive one at a time, skipping over a session that found nothing would starve every
        // other session of an even-sized set.
        nextSession = at + 1;
        SubscribeResponse.Builder resp = SubscribeResponse.newBuilder();
        boolean alive;
        synchronized (s) {
          alive = !s.ended;
          if (alive) {
            for (QueueStore.Delivered d : batch) {
              s.outstanding.put(d.lsn(), d.message().getKey());
            }
          }
        }
        if (!alive) {
          List<Long> lsns = new ArrayList<>();
          List<ByteString> keys = new ArrayList<>();
          for (QueueStore.Delivered d : batch) {
            lsns.add(d.lsn());
            keys.add(d.message().getKey());
          }
          store.releaseHolder(s, lsns, keys);
          continue;
        }
        for (QueueStore.Delivered d : batch) {
          StoredMessage m = d.message();
          resp.addDeliveries(Delivery.newBuilder().setDeliveryId(d.lsn()).setKey(m.getKey())
              .setPayload(m.getPayload()).setProducer(m.getProducer()).setSeq(m.getSeq())
              .setRedelivered(d.redelivered() || m.getMaybeDuplicate()).setLate(m.getLate())
              .setAcceptedAtMicros(m.getAcceptedAtMicros()));
        }
        try {
          s.stream.onNext(resp.build());
          delivered.addAndGet(batch.size());
          for (QueueStore.Delivered d : batch) {
            load.recordOut(d.hash(), d.message().getPayload().size());
          }
          progress = true;
        } catch (RuntimeException e) {
          s.close();
        }
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    wake();
    for (Session s : sessions) {
      try {
        s.stream.onCompleted();
      } catch (RuntimeException e) {
        // already gone
      }
    }
    thread.interrupt();
  }
}
