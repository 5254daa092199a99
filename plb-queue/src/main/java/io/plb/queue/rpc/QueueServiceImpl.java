package io.plb.queue.rpc;

import io.plb.core.time.WallClock;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.plb.client.agent.QueueServerAgent;
import io.plb.core.command.Limits;
import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Buffer;
import io.plb.core.handover.Participant.Decision;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.RangeEntry;
import io.plb.core.publish.MaybeStoredAt;
import io.plb.core.publish.ProducerSequences.Verdict;
import io.plb.proto.v1.Acknowledge;
import io.plb.proto.v1.PublishItem;
import io.plb.proto.v1.PublishRequest;
import io.plb.proto.v1.PublishResponse;
import io.plb.proto.v1.PublishResult;
import io.plb.proto.v1.PublishStatus;
import io.plb.proto.v1.QueueServiceGrpc;
import io.plb.proto.v1.QueueStatus;
import io.plb.proto.v1.QueueStatusRequest;
import io.plb.proto.v1.RangeLoad;
import io.plb.proto.v1.StoredMessage;
import io.plb.proto.v1.SubscribeRequest;
import io.plb.proto.v1.SubscribeResponse;
import io.plb.proto.v1.TransferDirection;
import io.plb.proto.v1.TransferHeldRequest;
import io.plb.proto.v1.TransferHeldResponse;
import io.plb.queue.config.QueueConfig;
import io.plb.queue.store.HoldTimes;
import io.plb.queue.store.QueueStore;
import io.plb.queue.store.QueueStore.Placed;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The reference queue server's gRPC API: Publish, Subscribe, TransferHeld and status. A thin
 * adapter between the wire, the {@link QueueServerAgent} (which decides where each message goes)
 * and the {@link QueueStore} (which keeps it).
 *
 * <p>Thread model: each Publish stream is handled one request at a time, in order, on the
 * server's worker pool (the stream asks gRPC for its next request only when the previous one is
 * answered, which is also its back-pressure). Subscribe streams are fed by the
 * {@link Dispatcher}. TransferHeld calls run on the worker pool and may block while this server
 * catches up with the sender's map version. The pool is bounded and has no queue: a request
 * that finds every worker busy is answered RESOURCE_EXHAUSTED (a Publish stream is ended with
 * it, nothing of the request stored, and the router sends it again), so a flood of streams
 * costs neither unbounded threads nor an unbounded queue. Waits for a map version are bounded
 * as well ({@code maxMapWaiters} at once, tags at most {@code maxVersionLead} ahead).
 */
public final class QueueServiceImpl extends QueueServiceGrpc.QueueServiceImplBase {
  private static final Logger LOG = LoggerFactory.getLogger(QueueServiceImpl.class);

  private final String serverId;
  private final QueueServerAgent agent;
  private final QueueStore store;
  private final Dispatcher dispatcher;
  private final ExecutorService workers;
  private final int maxMessageBytes;
  private final long maxQueued;
  private final long maxHeld;
  private final Duration mapWait;
  private final int maxMapWaiters;
  /** Permits of the requests that may wait for a map version at once (publish and transfer). */
  private final Semaphore mapWaiters;
  private final long maxVersionLead;
  private final int maxProducers;
  /** Stamps accepted messages ({@code accepted_at_micros}). */
  private final WallClock clock;
  private final AtomicLong accepted = new AtomicLong();
  private final AtomicLong refused = new AtomicLong();
  private final AtomicLong overloaded = new AtomicLong();
  private final AtomicLong fenced = new AtomicLong();
  private final AtomicLong duplicates = new AtomicLong();
  private final AtomicLong maybeDuplicates = new AtomicLong();
  private final AtomicLong fencedProducers = new AtomicLong();
  private final int maxSequences;
  private final long producerIdleMillis;
  /** When idle producers' sequences were last forgotten (wall clock, milliseconds). */
  private final AtomicLong lastExpiry = new AtomicLong();

  /** The service of server {@code config.id()}, with the limits {@code config} sets. */
  public QueueServiceImpl(QueueConfig config, QueueServerAgent agent, QueueStore store,
      Dispatcher dispatcher, ExecutorService workers, WallClock clock) {
    this.serverId = config.id();
    this.clock = clock;
    this.agent = agent;
    this.store = store;
    this.dispatcher = dispatcher;
    this.workers = workers;
    this.maxMessageBytes = config.maxMessageBytes();
    this.maxQueued = config.maxQueued();
    this.maxHeld = config.maxHeld();
    this.mapWait = config.mapWait();
    this.maxMapWaiters = config.maxMapWaiters();
    this.mapWaiters = new Semaphore(maxMapWaiters);
    this.maxVersionLead = config.maxVersionLead();
    this.maxProducers = config.maxProducers();
    this.maxSequences = config.maxSequences();
    this.producerIdleMillis = config.producerIdle().toMillis();
  }

  // ------------------------------------------------------------------ Publish

  /**
   * One Publish stream's place in an orderly stop: whether a request is being handled and
   * whether the stream was ended; and the producer sessions it carried, until it is released
   * (ended, its last request handled). Guarded by the stream's call object.
   */
  private static final class PublishStream {
    final ServerCallStreamObserver<PublishResponse> call;
    final Set<String> producers = new HashSet<>();
    boolean handling;
    boolean ended;
    boolean released;

    PublishStream(ServerCallStreamObserver<PublishResponse> call) {
      this.call = call;
    }
  }

  private final Set<PublishStream> publishStreams = ConcurrentHashMap.newKeySet();
  private volatile boolean stopping;
  /**
   * Producer session → how many unreleased Publish streams carried it here. Guarded by itself;
   * the agent's lock is taken inside it (never the other way round).
   */
  private final Map<String, Integer> sessions = new HashMap<>();

  @Override
  public StreamObserver<PublishRequest> publish(StreamObserver<PublishResponse> out) {
    ServerCallStreamObserver<PublishResponse> call = (ServerCallStreamObserver<PublishResponse>) out;
    call.disableAutoRequest();
    PublishStream stream = new PublishStream(call);
    publishStreams.add(stream);
    call.setOnCancelHandler(() -> {
      publishStreams.remove(stream);
      release(stream);
    });
    call.request(1);
    OverloadFence fence = new OverloadFence();
    return new StreamObserver<>() {
      @Override
      public void onNext(PublishRequest req) {
        Runnable step = () -> {
          synchronized (call) {
            if (stopping || stream.ended) {
              endStopping(stream); // nothing of it was stored: the router resends it all
              return;
            }
            if (stream.released) {
              return; // cancelled: the router resends what it has no answer for
            }
            if (!stream.producers.contains(req.getProducer())) {
              if (!openSession(req.getProducer())) {
                // Nothing of it was stored: the router resends it on a new stream.
                endWith(stream, Status.RESOURCE_EXHAUSTED.withDescription("queue server "
                    + serverId + " has publish streams of " + maxProducers + " producer "
                    + "sessions open (maxProducers); try again"));
                return;
              }
              stream.producers.add(req.getProducer());
            }
            stream.handling = true;
          }
          try {
            PublishResponse resp = handle(req, fence);
            synchronized (call) {
              stream.handling = false;
              if (!call.isCancelled() && !stream.ended) {
                call.onNext(resp);
              }
              if (stopping) {
                endStopping(stream);
                call.notifyAll();
                return;
              }
              if (call.isCancelled() || stream.ended) {
                release(stream);
                return;
              }
            }
            call.request(1);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            synchronized (call) {
              stream.handling = false;
              endStopping(stream);
              call.notifyAll();
            }
          } catch (RuntimeException e) {
            LOG.error("{}: publish failed", serverId, e);
            synchronized (call) {
              stream.handling = false;
              call.notifyAll();
              endWith(stream, Status.INTERNAL.withDescription("publish failed: "
                  + e.getMessage()));
            }
          }
        };
        if (!offer(step)) {
          // Nothing of this request was stored: the router resends it all on a new stream.
          synchronized (call) {
            endWith(stream, busy());
          }
        }
      }

      @Override
      public void onError(Throwable t) {
        // the router went away; what it did not get an answer for it will resend
        publishStreams.remove(stream);
        release(stream);
      }

      @Override
      public void onCompleted() {
        Runnable step = () -> {
          synchronized (call) {
            publishStreams.remove(stream);
            if (!call.isCancelled() && !stream.ended) {
              stream.ended = true;
              call.onCompleted();
            }
            release(stream);
          }
        };
        if (!offer(step)) {
          step.run(); // short, and it never blocks
        }
      }
    };
  }

  /** Ends a Publish stream with {@code status}, and releases it. Under the stream's call lock. */
  private void endWith(PublishStream stream, Status status) {
    publishStreams.remove(stream);
    if (!stream.ended) {
      stream.ended = true;
      try {
        stream.call.onError(status.asRuntimeException());
      } catch (RuntimeException e) {
        // the stream is already gone
      }
    }
    release(stream);
  }

  /**
   * Counts one more stream of producer session {@code producer}; false when it has none here
   * and {@code maxProducers} sessions have (its messages could need refusal fences, and those
   * live as long as the session's streams, so the sessions with streams are what is bounded).
   */
  private boolean openSession(String producer) {
    synchronized (sessions) {
      if (!sessions.containsKey(producer) && sessions.size() >= maxProducers) {
        return false;
      }
      sessions.merge(producer, 1, Integer::sum);
      return true;
    }
  }

  /**
   * Once a stream has ended and its last request is handled (no request of it is taken after
   * that), each producer session it carried has one stream fewer here; a session left with none
   * loses its refusal fences (DESIGN §5): whatever its producer has no answer for comes again
   * on a new stream, in the producer's order. Idempotent.
   */
  private void release(PublishStream stream) {
    List<String> producers;
    synchronized (stream.call) {
      if (stream.released || stream.handling) {
        return; // the worker handling a request releases it when done
      }
      stream.released = true;
      producers = List.copyOf(stream.producers);
    }
    synchronized (sessions) {
      for (String p : producers) {
        if (sessions.merge(p, -1, Integer::sum) <= 0) {
          sessions.remove(p);
          agent.streamsEnded(p);
        }
      }
    }
  }

  /** Producer sessions with unreleased Publish streams here. */
  public int openSessions() {
    synchronized (sessions) {
      return sessions.size();
    }
  }

  /** Runs {@code step} on a free worker; false when every worker is busy (or stopped). */
  private boolean offer(Runnable step) {
    try {
      workers.execute(step);
      return true;
    } catch (RejectedExecutionException e) {
      return false;
    }
  }

  /** The answer to a request that found no free worker. */
  private Status busy() {
    return Status.RESOURCE_EXHAUSTED.withDescription("queue server " + serverId + " is handling "
        + "as many publish requests and transfers as it has workers (maxWorkers); try again");
  }

  /** Ends a Publish stream because the server is stopping. Under the stream's call lock. */
  private void endStopping(PublishStream stream) {
    endWith(stream, Status.UNAVAILABLE.withDescription("queue server " + serverId
        + " is stopping"));
  }

  /**
   * The first step of an orderly stop: every Publish stream finishes the request it is handling,
   * answers it, and is ended with UNAVAILABLE; requests not yet handled are not taken. So a stop
   * loses no answer to a message it stored (a lost answer makes the router send the message
   * again, and a message stored twice is delivered twice). Waits up to {@code timeout} for the
   * requests being handled.
   */
  public void stopPublishing(Duration timeout) throws InterruptedException {
    stopping = true;
    long deadline = System.nanoTime() + timeout.toNanos();
    for (PublishStream stream : List.copyOf(publishStreams)) {
      synchronized (stream.call) {
        while (stream.handling) {
          long left = deadline - System.nanoTime();
          if (left <= 0) {
            LOG.warn("{}: a publish still being handled after {} ms of stopping", serverId,
                timeout.toMillis());
            break;
          }
          TimeUnit.NANOSECONDS.timedWait(stream.call, left);
        }
        if (!stream.handling) {
          endStopping(stream);
        }
      }
    }
  }

  /**
   * The overload fence of one Publish stream: keeps a producer's later messages of a range from
   * being accepted ahead of the resend of one answered OVERLOADED. Requests of one stream are
   * handled one at a time, so it needs no lock.
   *
   * <p>Each OVERLOADED result on the stream gets the next index (0, 1, ...); a request's {@code
   * overloads_seen} is how many of them its sender had received when it built it. An item is
   * fenced when its (producer, range_start) had an OVERLOADED result the sender had not seen —
   * in this request or an earlier one still in flight. The sender's own barrier orders everything
   * it builds after it has seen the answer. Without {@code overloads_seen} only the rest of the
   * request is fenced.
   */
  static final class OverloadFence {
    private long sent;
    /** (producer, range_start) → index of its latest OVERLOADED result on this stream. */
    private final Map<String, Map<Long, Long>> latest = new HashMap<>();

    boolean fenced(PublishRequest req, long firstIndexOfRequest, PublishItem it) {
      Long last = latest.getOrDefault(req.getProducer(), Map.of()).get(it.getRangeStart());
      if (last == null) {
        return false;
      }
      long seen = req.hasOverloadsSeen() ? req.getOverloadsSeen() : firstIndexOfRequest;
      return last >= seen;
    }

    void overloaded(PublishRequest req, PublishItem it) {
      latest.computeIfAbsent(req.getProducer(), p -> new HashMap<>())
          .put(it.getRangeStart(), sent++);
    }

    long sent() {
      return sent;
    }
  }

  /** Handles one batch, strictly in order; waits for the map a message was routed under (C2). */
  PublishResponse handle(PublishRequest req, OverloadFence fence) throws InterruptedException {
    List<PublishItem> items = req.getItemsList();
    PublishResult[] results = new PublishResult[items.size()];
    String producerError = Limits.producerIdProblem(req.getProducer());
    long requestStart = fence.sent();
    String producer = req.getProducer();
    long epoch = req.getProducerEpoch();
    if (producerError == null && epoch != 0) {
      // Entries of ranges in a handover here stay until their transfer has carried them.
      store.settled(producer, epoch, req.getSettledBelow(), agent::inHandover);
      forgetIdleProducers();
    }
    // Within one request, the last seq of each key placed to be stored (not stored yet).
    Map<ByteString, Long> placedSeqs = new HashMap<>();
    int i = 0;
    while (i < items.size()) {
      List<Placed> batch = new ArrayList<>();
      List<Integer> batchIdx = new ArrayList<>();
      final int from = i;
      int[] next = {from};
      long[] wait = {-1};
      agent.locked(() -> {
        // Queued and held messages have quotas of their own, so a hot range held through a
        // long handover cannot make the server refuse the publishes of every other range.
        long queueRoom = maxQueued - store.queued();
        long heldRoom = maxHeld - store.held();
        boolean leased = agent.holdsLease();
        scan:
        for (int j = from; j < items.size(); j++) {
          PublishItem it = items.get(j);
          String bad = producerError != null ? producerError : checkItem(it);
          if (bad != null) {
            results[j] = result(it, PublishStatus.REJECTED, bad);
            next[0] = j + 1;
            continue;
          }
          if (!leased) {
            // Paused or cut off from PLB for longer than the lease: its ranges may already be
            // someone else's. The router backs off and sends again (docs/design.md §5).
            fenceOut(req, it, fence, results, j);
            next[0] = j + 1;
            continue;
          }
          if (fence.fenced(req, requestStart, it)) {
            // An earlier message of this producer and range was answered OVERLOADED and the
            // router has not seen it yet: taking this one would put it ahead of that resend.
            results[j] = overload(req, it, fence,
                "an earlier message of this range was answered OVERLOADED");
            next[0] = j + 1;
            continue;
          }
          long hash = KeyHash.hash(it.getKey().toByteArray());
          Decision d = agent.place(hash, it.getMapVersion(), req.getProducer());
          switch (d.placement()) {
            case WAIT -> {
              wait[0] = d.version();
              break scan;
            }
            case REFUSE -> {
              refused.incrementAndGet();
              results[j] = PublishResult.newBuilder().setSeq(it.getSeq())
                  .setStatus(PublishStatus.WRONG_OWNER).setMapVersion(d.version()).build();
            }
            default -> {
              Long placedSeq = epoch == 0 ? null : placedSeqs.get(it.getKey());
              Verdict seen = placedSeq != null && it.getSeq() <= placedSeq ? Verdict.DUPLICATE
                  : store.checkSequence(producer, epoch, it.getKey(), it.getSeq());
              if (seen == Verdict.DUPLICATE) {
                // Stored before, here or by the range's earlier owner: its answer was lost.
                duplicates.incrementAndGet();
                results[j] = PublishResult.newBuilder().setSeq(it.getSeq())
                    .setStatus(PublishStatus.ACCEPTED).setMapVersion(agent.version())
                    .setDuplicate(true).build();
                break;
              }
              if (seen == Verdict.FENCED) {
                fencedProducers.incrementAndGet();
                results[j] = result(it, PublishStatus.REJECTED, "producer " + producer
                    + " epoch " + epoch + " was replaced by a newer instance of the producer "
                    + "(a higher epoch stored messages here)");
                break;
              }
              if (placedSeq == null && epoch != 0
                  && store.sequenceCount() + placedSeqs.size() >= maxSequences
                  && store.wouldAddSequence(producer, epoch, it.getKey())) {
                results[j] = overload(req, it, fence, "queue server " + serverId + " keeps "
                    + maxSequences + " producer sequences (idempotence.maxSequences)");
                break;
              }
              boolean held = d.placement() != Participant.Placement.QUEUE;
              if (held ? heldRoom-- <= 0 : queueRoom-- <= 0) {
                results[j] = overload(req, it, fence, held
                    ? "queue server " + serverId + " holds " + maxHeld
                        + " messages in handover buffers (maxHeld)"
                    : "queue server " + serverId + " has " + maxQueued
                        + " messages queued (maxQueued)");
                break;
              }
              StoredMessage.Builder m = StoredMessage.newBuilder().setKey(it.getKey())
                  .setPayload(it.getPayload()).setProducer(req.getProducer())
                  .setSeq(it.getSeq()).setProducerEpoch(epoch)
                  .setAcceptedAtMicros(clock.micros());
              if (MaybeStoredAt.elsewhere(it.getMaybeStoredAtList(), serverId)) {
                // Another server may have stored it (its answer never came), and its sequences
                // may never reach this one (a range forced away from it, a handback after an
                // abort): delivered flagged, so a consumer sees it may have had it before.
                m.setMaybeDuplicate(true);
                maybeDuplicates.incrementAndGet();
              }
              Buffer b = switch (d.placement()) {
                case HOLD -> Buffer.HOLD;
                case HELD -> Buffer.HELD;
                case POST_ABORT -> Buffer.POST_ABORT;
                default -> null;
              };
              batch.add(new Placed(m.build(), hash, b, d.rangeStart(), d.handoverEpoch()));
              batchIdx.add(j);
              if (epoch != 0) {
                placedSeqs.put(it.getKey(), it.getSeq());
              }
            }
          }
          next[0] = j + 1;
        }
        if (!batch.isEmpty() && !agent.holdsLease()) {
          // The lease ran out while the batch was placed: store none of it.
          for (int k = 0; k < batchIdx.size(); k++) {
            fenceOut(req, items.get(batchIdx.get(k)), fence, results, batchIdx.get(k));
          }
          batch.clear();
          batchIdx.clear();
          placedSeqs.clear();
        }
        store.append(batch);
        // Count the accepted load here, where placements are already serialised by the agent's
        // lock: the accumulator's own monitor is then never contended on the publish path.
        for (Placed p : batch) {
          agent.load().recordIn(p.hash(), p.message().getPayload().size());
        }
        return null;
      });
      for (int k = 0; k < batchIdx.size(); k++) {
        PublishItem it = items.get(batchIdx.get(k));
        results[batchIdx.get(k)] = PublishResult.newBuilder().setSeq(it.getSeq())
            .setStatus(PublishStatus.ACCEPTED).setMapVersion(agent.version()).build();
      }
      accepted.addAndGet(batchIdx.size());
      i = next[0];
      long waitFor = wait[0];
      String notReached = waitFor >= 0 ? awaitTag(waitFor) : null;
      if (notReached != null) {
        // This server's watch is behind (or the tag is wrong); the router will send it again.
        results[i] = overload(req, items.get(i), fence, notReached);
        i++;
      }
    }
    PublishResponse.Builder b = PublishResponse.newBuilder();
    for (PublishResult r : results) {
      b.addResults(r);
    }
    return b.build();
  }

  /**
   * Answers an item OVERLOADED: counted, and noted in the stream's overload fence so that no
   * later message of its producer and range is taken ahead of its resend.
   */
  private PublishResult overload(PublishRequest req, PublishItem it, OverloadFence fence,
      String detail) {
    fence.overloaded(req, it);
    overloaded.incrementAndGet();
    return result(it, PublishStatus.OVERLOADED, detail);
  }

  /** Answers an item OVERLOADED because this server holds no ownership lease. */
  private void fenceOut(PublishRequest req, PublishItem it, OverloadFence fence,
      PublishResult[] results, int j) {
    fenced.incrementAndGet();
    results[j] = overload(req, it, fence, "queue server " + serverId
        + " holds no ownership lease now (paused, or cut off from the PLB cluster)");
  }

  /**
   * Waits up to {@code mapWait} for map version {@code tag} (C2), within the bounds: a tag more
   * than {@code maxVersionLead} ahead of this server's version, or one that finds
   * {@code maxMapWaiters} requests waiting already, is not waited for — a wait for a version
   * that may never come would hold a worker for the whole {@code mapWait}. Null once the version
   * is reached, else why not.
   */
  private String awaitTag(long tag) throws InterruptedException {
    String refused = waitRefusal(tag);
    if (refused != null) {
      return refused;
    }
    try {
      if (agent.awaitVersion(tag, mapWait)) {
        return null;
      }
    } finally {
      mapWaiters.release();
    }
    return "queue server " + serverId + " has not reached map version " + tag;
  }

  /**
   * Why a request tagged {@code tag} may not wait for it, or null after taking one of the
   * {@code maxMapWaiters} permits (the caller releases it when done waiting).
   */
  private String waitRefusal(long tag) {
    long have = agent.version();
    // Before its first map a server cannot tell a far tag from a wrong one: it waits, bounded
    // by the number of waiters only.
    if (have > 0 && tag - have > maxVersionLead) {
      return "map version " + tag + " is " + (tag - have) + " versions ahead of queue server "
          + serverId + "'s " + have + " (maxVersionLead " + maxVersionLead + ")";
    }
    if (!mapWaiters.tryAcquire()) {
      return "queue server " + serverId + " already has " + maxMapWaiters
          + " requests waiting for a map version (maxMapWaiters)";
    }
    return null;
  }

  private String checkItem(PublishItem it) {
    if (it.getKey().isEmpty()) {
      return "empty ordering key (seq " + it.getSeq() + ")";
    }
    if (it.getKey().size() > Limits.MAX_KEY_BYTES) {
      return "ordering key of " + it.getKey().size() + " bytes; at most " + Limits.MAX_KEY_BYTES;
    }
    if (it.getMaybeStoredAtCount() > Limits.MAX_MAYBE_STORED_AT) {
      return "maybe_stored_at names " + it.getMaybeStoredAtCount() + " servers; at most "
          + Limits.MAX_MAYBE_STORED_AT;
    }
    if (it.getPayload().size() > maxMessageBytes) {
      return "payload of " + it.getPayload().size() + " bytes; at most " + maxMessageBytes;
    }
    if (it.getMapVersion() == 0) {
      return "map_version must be the map version the message was routed under";
    }
    if (it.getSeq() == 0) {
      return "seq must be at least 1";
    }
    return null;
  }

  /** Forgets idle producers' sequences, at most ten times per idle period. */
  private void forgetIdleProducers() {
    long now = clock.micros() / 1000;
    long last = lastExpiry.get();
    if (now - last >= producerIdleMillis / 10 && lastExpiry.compareAndSet(last, now)) {
      int n = store.expireSequences(producerIdleMillis);
      if (n > 0) {
        LOG.info("forgot {} sequences of producers idle for {} ms", n, producerIdleMillis);
      }
    }
  }

  private static PublishResult result(PublishItem it, PublishStatus status, String detail) {
    return PublishResult.newBuilder().setSeq(it.getSeq()).setStatus(status).setDetail(detail)
        .build();
  }

  // ------------------------------------------------------------------ Subscribe

  @Override
  public StreamObserver<SubscribeRequest> subscribe(StreamObserver<SubscribeResponse> out) {
    ServerCallStreamObserver<SubscribeResponse> call =
        (ServerCallStreamObserver<SubscribeResponse>) out;
    Dispatcher.Session[] session = new Dispatcher.Session[1];
    // Handlers can only be set before this method returns.
    call.setOnReadyHandler(dispatcher::wake);
    call.setOnCancelHandler(() -> {
      Dispatcher.Session s = session[0];
      if (s != null) {
        s.close();
      }
    });
    return new StreamObserver<>() {
      @Override
      public void onNext(SubscribeRequest req) {
        if (req.hasStart()) {
          if (session[0] != null) {
            call.onError(Status.INVALID_ARGUMENT.withDescription("start sent twice")
                .asRuntimeException());
            return;
          }
          int max = req.getStart().getMaxInFlight() == 0 ? 256 : req.getStart().getMaxInFlight();
          if (max > 100_000) {
            call.onError(Status.INVALID_ARGUMENT.withDescription(
                "max_in_flight " + max + " is above 100000").asRuntimeException());
            return;
          }
          session[0] = dispatcher.open(req.getStart().getConsumer(), max, call);
        } else if (req.hasAck()) {
          if (session[0] == null) {
            call.onError(Status.FAILED_PRECONDITION.withDescription(
                "acknowledge before start").asRuntimeException());
            return;
          }
          Acknowledge ack = req.getAck();
          session[0].ack(ack.getDeliveryIdsList());
        }
      }

      @Override
      public void onError(Throwable t) {
        if (session[0] != null) {
          session[0].close();
        }
      }

      @Override
      public void onCompleted() {
        if (session[0] != null) {
          session[0].close();
        }
        call.onCompleted();
      }
    };
  }

  // ------------------------------------------------------------------ TransferHeld

  @Override
  public void transferHeld(TransferHeldRequest req, StreamObserver<TransferHeldResponse> out) {
    String bad = checkTransfer(req);
    if (bad != null) {
      out.onError(Status.INVALID_ARGUMENT.withDescription(bad).asRuntimeException());
      return;
    }
    // Late messages may wait on their sender until there is room; a handover's transfers may
    // not (the handover waits for them), so only LATE is held to maxQueued.
    if (req.getDirection() == TransferDirection.LATE
        && store.queued() + req.getMessagesCount() > maxQueued) {
      out.onError(Status.RESOURCE_EXHAUSTED.withDescription("queue server " + serverId
          + " has " + store.queued() + " messages queued, at most " + maxQueued
          + " (maxQueued): " + req.getMessagesCount() + " late messages wait")
          .asRuntimeException());
      return;
    }
    // A transfer tagged ahead of this server waits for that version (C2): within the bounds.
    boolean waits = req.getMapVersion() > agent.version();
    if (waits) {
      String refused = waitRefusal(req.getMapVersion());
      if (refused != null) {
        out.onError(Status.RESOURCE_EXHAUSTED.withDescription(refused).asRuntimeException());
        return;
      }
    }
    boolean taken = offer(() -> {
      try {
        out.onNext(agent.onTransfer(req));
        out.onCompleted();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        out.onError(Status.UNAVAILABLE.withDescription("queue server stopping")
            .asRuntimeException());
      } catch (RuntimeException e) {
        LOG.error("{}: transfer failed", serverId, e);
        out.onError(Status.INTERNAL.withDescription("transfer failed: " + e.getMessage())
            .asRuntimeException());
      } finally {
        if (waits) {
          mapWaiters.release();
        }
      }
    });
    if (!taken) {
      if (waits) {
        mapWaiters.release();
      }
      out.onError(busy().asRuntimeException()); // the sender sends it again on its timer
    }
  }

  /** The longest transfer cursor a chunk may carry. */
  static final int MAX_CURSOR_BYTES = 64;

  private static String checkTransfer(TransferHeldRequest req) {
    if (req.getFromServer().isEmpty()) {
      return "from_server must be set";
    }
    if (req.getDirection() == TransferDirection.TRANSFER_DIRECTION_UNSPECIFIED
        || req.getDirection() == TransferDirection.UNRECOGNIZED) {
      return "direction must be FORWARD, REVERSE or LATE";
    }
    // A FORWARD or REVERSE transfer belongs to one handover; a LATE one to none (what a server
    // holds of a range it lost may be only queued messages), so its epoch is not read.
    if (req.getDirection() != TransferDirection.LATE && req.getHandoverEpoch() < 1) {
      return "handover_epoch must be at least 1 for a " + req.getDirection() + " transfer";
    }
    if (req.getDirection() == TransferDirection.LATE
        && (req.getLateSession() < 1 || req.getLateBatch() < 1)) {
      return "late_session and late_batch must be at least 1 for a LATE transfer";
    }
    if (req.getMapVersion() == 0) {
      return "map_version must be the sender's map version";
    }
    // The cursor is stored with a chunk's progress: a sender's own position, a few bytes.
    if (req.getCursor().size() > MAX_CURSOR_BYTES) {
      return "cursor must be at most " + MAX_CURSOR_BYTES + " bytes, not "
          + req.getCursor().size();
    }
    if (req.getChunk() == 0 && (req.getFinalChunk() || !req.getCursor().isEmpty())) {
      return "final_chunk and cursor belong to a chunk (chunk >= 1)";
    }
    for (StoredMessage m : req.getMessagesList()) {
      if (m.getKey().isEmpty() || m.getProducer().isEmpty()) {
        return "every transferred message needs a key and a producer";
      }
    }
    return null;
  }

  // ------------------------------------------------------------------ status

  @Override
  public void getQueueStatus(QueueStatusRequest req, StreamObserver<QueueStatus> out) {
    ClusterImage image = agent.image();
    QueueStatus.Builder b = QueueStatus.newBuilder().setServerId(serverId)
        .setMapVersion(image.version()).setQueued(store.queued()).setHeld(store.held())
        .setInFlight(store.inFlight()).setAcceptedTotal(accepted.get())
        .setDeliveredTotal(dispatcher.delivered()).setRefusedTotal(refused.get())
        .setLateTotal(agent.lateReceived()).setConsumers(dispatcher.sessions())
        .setOverloadedTotal(overloaded.get());
    HoldTimes.Snapshot holds = store.holdTimes().snapshot();
    b.setReleasedTotal(holds.total()).setHoldP50Micros(holds.percentile(50))
        .setHoldP99Micros(holds.percentile(99)).setHoldMaxMicros(holds.max());
    b.setLeaseHeld(agent.holdsLease()).setLeaseRemainingMillis(agent.leaseRemainingMillis())
        .setFencedTotal(fenced.get()).setDuplicatesTotal(duplicates.get())
        .setFencedProducersTotal(fencedProducers.get())
        .setProducerSequences(store.sequenceCount())
        .setMaybeDuplicatesTotal(maybeDuplicates.get());
    Map<Long, String> roles = new LinkedHashMap<>();
    for (RangeEntry r : image.ranges()) {
      if (r.owner().equals(serverId)) {
        roles.put(r.start(), r.handover() == null ? "owner" : "source");
      } else if (r.handover() != null && r.handover().target().equals(serverId)) {
        roles.put(r.start(), "target");
      }
    }
    for (RangeEntry r : image.ranges()) {
      String role = roles.get(r.start());
      if (role == null) {
        continue;
      }
      b.addRanges(RangeLoad.newBuilder().setStart(r.start()).setEnd(r.end())
          .setQueued(store.backlog(r.start(), r.end()))
          .setHeld(r.handover() == null ? 0 : store.held(r.start(), r.epoch() + 1))
          .setRole(role));
    }
    out.onNext(b.build());
    out.onCompleted();
  }

  public long accepted() {
    return accepted.get();
  }
}
