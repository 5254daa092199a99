package io.plb.server.watch;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.plb.client.wire.MapChunks;
import io.plb.client.wire.Wire;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.proto.v1.MapServiceGrpc;
import io.plb.proto.v1.WatchMapRequest;
import io.plb.proto.v1.WatchMapResponse;
import io.plb.server.testing.TestCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * Records the events of one raw {@code WatchMap} stream and checks them against the guarantees of
 * docs/watch-contract.md, each by name. A check reports the first violation with the index of the
 * event (0-based, in arrival order) that broke it.
 *
 * <p>The recorder builds the subscriber's image as it goes: a full map replaces it, a delta is
 * applied with {@link ClusterImage#apply} (the one replay path), so tests can compare what a
 * subscriber holds with what the node holds. The stream runs on its own channel, so closing the
 * checker cancels exactly this stream.
 *
 * <p>Thread-safe: gRPC delivers events on its threads; readers lock on the checker.
 */
public final class WatchChecker implements AutoCloseable {
  /** The guarantees, by the names docs/watch-contract.md gives them. */
  public static final String ORDERED = "Ordered";
  public static final String NO_GAPS = "No gaps";
  public static final String ATOMIC = "Atomic";
  public static final String RESUMABLE = "Resumable";
  public static final String ONE_FULL_MAP = "One full map after a gap";
  public static final String BOOKMARKS = "Bookmarks";

  /** One event as it arrived. {@code prevVersion} is -1 unless the event is a delta. */
  public record Event(int index, WatchMapResponse.EventCase kind, long version, long prevVersion,
      long appliedIndex, WatchMapResponse raw) {
    boolean isMap() {
      return kind == WatchMapResponse.EventCase.FULL_MAP
          || kind == WatchMapResponse.EventCase.DELTA;
    }

    @Override
    public String toString() {
      return "#" + index + " " + kind
          + (kind == WatchMapResponse.EventCase.DELTA ? " " + prevVersion + "->" + version
              : " @" + version);
    }
  }

  /** A broken guarantee: which one, at which event, and how. */
  public record Violation(String guarantee, int eventIndex, String detail) {
    @Override
    public String toString() {
      return guarantee + " violated at event #" + eventIndex + ": " + detail;
    }
  }

  private final String address;
  private final long afterVersion;
  private final ManagedChannel channel;
  private final List<Event> events = new ArrayList<>();
  private final List<Violation> applyFailures = new ArrayList<>();
  private final Map<Long, ClusterImage> images = new HashMap<>();
  private final MapChunks.Assembly chunks = new MapChunks.Assembly();
  private ClusterImage image;
  private Status terminal;
  private ClientCallStreamObserver<WatchMapRequest> requestStream;

  private WatchChecker(String address, long afterVersion, ClusterImage base, int flowWindow) {
    this.address = address;
    this.afterVersion = afterVersion;
    this.image = base;
    if (base != null) {
      images.put(base.version(), base);
    }
    if (address == null) {
      this.channel = null;
      return;
    }
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(address).usePlaintext();
    if (flowWindow > 0) {
      b.flowControlWindow(flowWindow);
    }
    this.channel = b.build();
  }

  /**
   * A checker of events recorded elsewhere (no stream): as if a stream opened with
   * {@code afterVersion} on a subscriber holding {@code base} had received {@code responses}.
   */
  public static WatchChecker replay(long afterVersion, ClusterImage base,
      List<WatchMapResponse> responses) {
    WatchChecker c = new WatchChecker(null, afterVersion, base, 0);
    responses.forEach(c::record);
    return c;
  }

  /** Opens a stream that reads everything as it comes. */
  public static WatchChecker open(String address, long afterVersion) {
    return open(address, afterVersion, null);
  }

  /**
   * Opens a stream that reads everything as it comes; {@code base} is the image at
   * {@code afterVersion} when the subscriber resumes (so deltas can be applied), or null.
   */
  public static WatchChecker open(String address, long afterVersion, ClusterImage base) {
    WatchChecker c = new WatchChecker(address, afterVersion, base, 0);
    c.start(0);
    return c;
  }

  /**
   * Opens a stream that asks for {@code initial} messages only, with an HTTP/2 flow-control window
   * of {@code flowWindow} bytes (0: gRPC's default): the slow subscriber of the back-pressure test.
   * Call {@link #request} for more.
   */
  public static WatchChecker openSlow(String address, long afterVersion, int initial,
      int flowWindow) {
    WatchChecker c = new WatchChecker(address, afterVersion, null, flowWindow);
    c.start(initial);
    return c;
  }

  private void start(int initial) {
    WatchMapRequest request = WatchMapRequest.newBuilder().setAfterVersion(afterVersion).build();
    MapServiceGrpc.newStub(channel).watchMap(request,
        new ClientResponseObserver<WatchMapRequest, WatchMapResponse>() {
          @Override
          public void beforeStart(ClientCallStreamObserver<WatchMapRequest> rs) {
            synchronized (WatchChecker.this) {
              requestStream = rs;
            }
            if (initial > 0) {
              rs.disableAutoRequestWithInitial(initial);
            }
          }

          @Override
          public void onNext(WatchMapResponse r) {
            record(r);
          }

          @Override
          public void onError(Throwable t) {
            synchronized (WatchChecker.this) {
              terminal = Status.fromThrowable(t);
            }
          }

          @Override
          public void onCompleted() {
            synchronized (WatchChecker.this) {
              terminal = Status.OK.withDescription("completed by server");
            }
          }
        });
  }

  /** Asks the server for {@code n} more messages (slow streams only). */
  public void request(int n) {
    ClientCallStreamObserver<WatchMapRequest> rs;
    synchronized (this) {
      rs = requestStream;
    }
    rs.request(n);
  }

  private synchronized void record(WatchMapResponse r) {
    int index = events.size();
    if (chunks.inProgress() && r.getEventCase() != WatchMapResponse.EventCase.FULL_MAP) {
      applyFailures.add(new Violation(ATOMIC, index, r.getEventCase() + " between the chunks of "
          + "a full map"));
      chunks.reset();
    }
    switch (r.getEventCase()) {
      case FULL_MAP -> {
        ClusterImage next;
        try {
          next = chunks.add(r.getFullMap());
        } catch (IllegalStateException e) {
          applyFailures.add(new Violation(ATOMIC, index, "a broken full map: " + e.getMessage()));
          return;
        }
        if (next == null) {
          return; // a full map is one event, recorded with its last chunk
        }
        events.add(new Event(index, r.getEventCase(), next.version(), -1, 0, r));
        image = next;
        images.put(next.version(), next);
      }
      case DELTA -> {
        MapDelta d = Wire.fromProto(r.getDelta());
        events.add(new Event(index, r.getEventCase(), d.version(), d.prevVersion(), 0, r));
        if (image != null) {
          try {
            image = image.apply(d);
            images.put(image.version(), image);
          } catch (IllegalStateException e) {
            applyFailures.add(new Violation(NO_GAPS, index, "delta does not apply to the "
                + "subscriber's image: " + e.getMessage()));
            image = null;
          }
        }
      }
      case PROGRESS -> events.add(new Event(index, r.getEventCase(),
          r.getProgress().getVersion(), -1, r.getProgress().getAppliedIndex(), r));
      default -> events.add(new Event(index, r.getEventCase(), -1, -1, 0, r));
    }
    notifyAll();
  }

  // ------------------------------------------------------------------ what was seen

  public String address() {
    return address;
  }

  public synchronized List<Event> events() {
    return List.copyOf(events);
  }

  public synchronized List<Event> mapEvents() {
    return events.stream().filter(Event::isMap).toList();
  }

  public synchronized int fullMaps() {
    return (int) events.stream()
        .filter(e -> e.kind() == WatchMapResponse.EventCase.FULL_MAP).count();
  }

  /** The subscriber's image (null before the first map, or when it could not be built). */
  public synchronized ClusterImage image() {
    return image;
  }

  /** The image the subscriber held at {@code version}, if it passed through it. */
  public synchronized ClusterImage imageAt(long version) {
    return images.get(version);
  }

  /** The last map version received (full map or delta), or the cursor it was opened with. */
  public synchronized long lastVersion() {
    long v = afterVersion;
    for (Event e : events) {
      if (e.isMap()) {
        v = e.version();
      }
    }
    return v;
  }

  /** How the stream ended, or null while it is open. */
  public synchronized Status terminal() {
    return terminal;
  }

  // ------------------------------------------------------------------ waiting

  /** Waits until an event matching {@code p} has arrived; returns it. */
  public Event awaitEvent(Duration timeout, String what, Predicate<Event> p) {
    Event[] found = {null};
    TestCluster.await(timeout, what + " on the stream to " + address + " (events: "
        + summary() + ")", () -> {
          synchronized (this) {
            for (Event e : events) {
              if (p.test(e)) {
                found[0] = e;
                return true;
              }
            }
            return terminal != null && fail(what);
          }
        });
    return found[0];
  }

  private boolean fail(String what) {
    throw new AssertionError("stream to " + address + " ended with " + terminal
        + " while waiting for " + what);
  }

  /** Waits until the subscriber has a map at {@code version} or later. */
  public void awaitVersion(long version, Duration timeout) {
    awaitEvent(timeout, "map version " + version, e -> e.isMap() && e.version() >= version);
  }

  /** Waits until the stream has ended; returns how. */
  public Status awaitTerminal(Duration timeout) {
    TestCluster.await(timeout, "the end of the stream to " + address, () -> terminal() != null);
    return terminal();
  }

  /** A short description of the events, for failure messages. */
  public synchronized String summary() {
    int n = events.size();
    List<Event> shown = n <= 12 ? events : events.subList(n - 12, n);
    return n + " events" + (n > 12 ? ", last: " : ": ") + shown
        + (terminal == null ? "" : ", ended " + terminal);
  }

  // ------------------------------------------------------------------ the guarantees

  /** Ordered: map versions strictly increase; a bookmark never names a version below one seen. */
  public synchronized Violation checkOrdered() {
    long last = afterVersion;
    boolean seenMap = false;
    for (Event e : events) {
      if (e.isMap()) {
        // The one exception: a new subscriber of a new cluster gets the full map at version 0.
        boolean newClusterMap = !seenMap && afterVersion == 0 && e.version() == 0
            && e.kind() == WatchMapResponse.EventCase.FULL_MAP;
        if (e.version() <= last && !newClusterMap) {
          return new Violation(ORDERED, e.index(),
              e + " does not exceed the version already seen, " + last);
        }
        last = e.version();
        seenMap = true;
      } else if (e.kind() == WatchMapResponse.EventCase.PROGRESS && e.version() < last) {
        return new Violation(ORDERED, e.index(),
            "bookmark " + e.version() + " is older than the version already seen, " + last);
      }
    }
    return null;
  }

  /**
   * No gaps / Reliable: every delta's prev_version equals the last version the subscriber saw
   * (the stream's after_version before any map), no delta arrives before the subscriber has a base
   * to apply it to, and every delta applies to the subscriber's image.
   */
  public synchronized Violation checkNoGaps() {
    long last = afterVersion;
    boolean seenMap = false;
    for (Event e : events) {
      if (e.kind() == WatchMapResponse.EventCase.DELTA) {
        if (afterVersion == 0 && !seenMap) {
          return new Violation(NO_GAPS, e.index(),
              e + " arrived before any full map on a stream opened from version 0");
        }
        if (e.prevVersion() != last) {
          return new Violation(NO_GAPS, e.index(),
              e + " follows " + e.prevVersion() + " but the subscriber is at " + last);
        }
      }
      if (e.isMap()) {
        last = e.version();
        seenMap = true;
      }
    }
    return applyFailures.isEmpty() ? null : applyFailures.get(0);
  }

  /**
   * Atomic: each committed write is exactly one delta. Every version in {@code writes} after the
   * first map event's version must appear as one delta, and every delta must be one of them (or
   * newer than the last of them, when other writers are about), with a non-empty change.
   */
  public synchronized Violation checkAtomic(Collection<Long> writes) {
    TreeSet<Long> expected = new TreeSet<>(writes);
    Map<Long, Integer> seen = new HashMap<>();
    long floor = Long.MAX_VALUE;
    for (Event e : events) {
      if (e.isMap()) {
        floor = Math.min(floor, e.kind() == WatchMapResponse.EventCase.DELTA
            ? e.prevVersion() : e.version());
      }
      if (e.kind() == WatchMapResponse.EventCase.DELTA) {
        var d = e.raw().getDelta();
        if (d.getRemovedRangeStartsCount() + d.getUpsertedRangesCount()
            + d.getRemovedServersCount() + d.getUpsertedServersCount() == 0) {
          return new Violation(ATOMIC, e.index(), e + " changes nothing");
        }
        if (seen.merge(e.version(), 1, Integer::sum) > 1) {
          return new Violation(ATOMIC, e.index(), "version " + e.version()
              + " arrived as more than one delta");
        }
        if (!expected.isEmpty() && !expected.contains(e.version())
            && e.version() <= expected.last()) {
          return new Violation(ATOMIC, e.index(),
              e + " is not one of the committed writes " + expected);
        }
      }
    }
    long lastSeen = lastVersion();
    for (long w : expected) {
      if (w > floor && w <= lastSeen && !seen.containsKey(w)) {
        return new Violation(ATOMIC, events.size(),
            "write at version " + w + " never arrived as a delta (stream covered " + floor
                + ".." + lastSeen + ")");
      }
    }
    return null;
  }

  /**
   * Resumable: a stream opened with after_version V begins with the delta whose prev_version is V
   * (no full map), and continues by the chain.
   */
  public synchronized Violation checkResumable() {
    for (Event e : events) {
      if (e.isMap()) {
        if (e.kind() != WatchMapResponse.EventCase.DELTA) {
          return new Violation(RESUMABLE, e.index(),
              "the first map event after " + afterVersion + " is " + e + ", not a delta");
        }
        if (e.prevVersion() != afterVersion) {
          return new Violation(RESUMABLE, e.index(),
              "the first delta " + e + " does not follow the cursor " + afterVersion);
        }
        return checkNoGaps();
      }
    }
    return null;
  }

  /**
   * One full map after a gap: the first map event is one full map at {@code atVersion} (when
   * positive, else any version), and no other full map follows; after it, deltas chain.
   */
  public synchronized Violation checkOneFullMap(long atVersion) {
    boolean first = true;
    for (Event e : events) {
      if (!e.isMap()) {
        continue;
      }
      if (first) {
        if (e.kind() != WatchMapResponse.EventCase.FULL_MAP) {
          return new Violation(ONE_FULL_MAP, e.index(), "the first map event is " + e
              + ", not a full map");
        }
        if (atVersion > 0 && e.version() != atVersion) {
          return new Violation(ONE_FULL_MAP, e.index(), "the full map is at " + e.version()
              + ", not at the node's current version " + atVersion);
        }
        first = false;
      } else if (e.kind() == WatchMapResponse.EventCase.FULL_MAP) {
        return new Violation(ONE_FULL_MAP, e.index(), "a second full map " + e);
      }
    }
    return checkNoGaps();
  }

  /**
   * Bookmarks: every progress event names the version the subscriber has (the stream's cursor),
   * and carries an applied index at least that high unless the subscriber is ahead of the node.
   */
  public synchronized Violation checkBookmarks() {
    long last = afterVersion;
    for (Event e : events) {
      if (e.isMap()) {
        last = e.version();
      } else if (e.kind() == WatchMapResponse.EventCase.PROGRESS) {
        if (e.version() != last) {
          return new Violation(BOOKMARKS, e.index(),
              "bookmark names " + e.version() + " but the subscriber is at " + last);
        }
      } else {
        return new Violation(BOOKMARKS, e.index(), "an event of no known kind: " + e.raw());
      }
    }
    return null;
  }

  /** The first violation of Ordered, No gaps and Bookmarks: the checks every stream must pass. */
  public synchronized Violation firstViolation() {
    Violation first = null;
    for (Violation v : new Violation[] {checkOrdered(), checkNoGaps(), checkBookmarks()}) {
      if (v != null && (first == null || v.eventIndex() < first.eventIndex())) {
        first = v;
      }
    }
    return first;
  }

  /** Fails with the violation, if any, and the stream's events. */
  public void assertHolds(Violation v) {
    if (v != null) {
      throw new AssertionError(v + " — stream to " + address + " after " + afterVersion + ": "
          + summary());
    }
  }

  /** Asserts the checks every stream must pass (see {@link #firstViolation}). */
  public void assertContract() {
    assertHolds(firstViolation());
  }

  @Override
  public void close() {
    if (channel == null) {
      return;
    }
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
