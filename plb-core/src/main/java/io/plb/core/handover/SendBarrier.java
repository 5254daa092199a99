package io.plb.core.handover;

import io.plb.core.map.Handover;
import io.plb.core.map.RangeEntry;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The router's per-range barrier (DESIGN §5, rule C4), for one producer session. While any send
 * of a range is unsettled (neither acknowledged nor refused), the range is sent only under the
 * same map entry (owner, epoch, handover) as that send. A refused message is resent — once the
 * router's map has reached the refusal's version and every send of the range has settled — in
 * its original order, before any new message of the range.
 *
 * <p>Pure; not thread-safe (a router calls it under its own lock). Messages are identified by the
 * producer's sequence number, which grows with every new message.
 *
 * @param <M> the router's message type
 */
public final class SendBarrier<M> {
  /** The map entry of a range that a send was routed under. */
  public record Entry(String owner, long epoch, Handover handover) {
    public static Entry of(RangeEntry r) {
      return new Entry(r.owner(), r.epoch(), r.handover());
    }

    /** Where a message sent under this entry goes: the target once the move has switched. */
    public String destination() {
      if (handover != null && handover.phase() == io.plb.core.map.HandoverPhase.SWITCH) {
        return handover.target();
      }
      return owner;
    }
  }

  private static final class RangeState<M> {
    final Map<Long, Entry> unsettled = new LinkedHashMap<>();
    final Map<Long, M> refused = new HashMap<>();
    long refusalVersion;
  }

  private final Map<Long, RangeState<M>> ranges = new HashMap<>();

  private RangeState<M> state(long rangeStart) {
    return ranges.computeIfAbsent(rangeStart, k -> new RangeState<>());
  }

  /**
   * Whether a new message of the range may be sent now under {@code current}: nothing refused is
   * waiting to be resent, and every unsettled send went under the same entry.
   */
  public boolean maySend(long rangeStart, Entry current) {
    RangeState<M> s = ranges.get(rangeStart);
    if (s == null) {
      return true;
    }
    if (!s.refused.isEmpty()) {
      return false;
    }
    for (Entry e : s.unsettled.values()) {
      if (!e.equals(current)) {
        return false;
      }
    }
    return true;
  }

  /** Records a send of message {@code seq} under {@code entry}. */
  public void sent(long rangeStart, long seq, Entry entry) {
    state(rangeStart).unsettled.put(seq, Objects.requireNonNull(entry));
  }

  /** The message was acknowledged. */
  public void acked(long rangeStart, long seq) {
    RangeState<M> s = ranges.get(rangeStart);
    if (s != null) {
      s.unsettled.remove(seq);
      cleanup(rangeStart, s);
    }
  }

  /** The message was refused with WRONG_OWNER at {@code version}; it will be resent. */
  public void refused(long rangeStart, long seq, M message, long version) {
    RangeState<M> s = state(rangeStart);
    s.unsettled.remove(seq);
    s.refused.put(seq, message);
    s.refusalVersion = Math.max(s.refusalVersion, version);
  }

  /**
   * The refused messages to resend now, in their original order — once every send of the range
   * has settled and the router's map is at least at the refusal's version — or an empty list. The
   * caller sends them (recording each with {@link #sent}) before any new message of the range.
   */
  public List<M> takeResends(long rangeStart, long routerVersion) {
    RangeState<M> s = ranges.get(rangeStart);
    if (s == null || s.refused.isEmpty() || !s.unsettled.isEmpty()
        || routerVersion < s.refusalVersion) {
      return List.of();
    }
    List<Map.Entry<Long, M>> list = new ArrayList<>(s.refused.entrySet());
    list.sort(Comparator.comparingLong(Map.Entry::getKey));
    s.refused.clear();
    List<M> out = new ArrayList<>(list.size());
    for (Map.Entry<Long, M> e : list) {
      out.add(e.getValue());
    }
    return out;
  }

  /** The version the router must reach before the range's refused messages can be resent. */
  public long refusalVersion(long rangeStart) {
    RangeState<M> s = ranges.get(rangeStart);
    return s == null ? 0 : s.refusalVersion;
  }

  /** Sends of the range that are neither acknowledged nor refused. */
  public int unsettled(long rangeStart) {
    RangeState<M> s = ranges.get(rangeStart);
    return s == null ? 0 : s.unsettled.size();
  }

  /** Whether nothing of any range is unsettled or waiting to be resent. */
  public boolean idle() {
    for (Iterator<RangeState<M>> it = ranges.values().iterator(); it.hasNext(); ) {
      RangeState<M> s = it.next();
      if (!s.unsettled.isEmpty() || !s.refused.isEmpty()) {
        return false;
      }
    }
    return true;
  }

  private void cleanup(long rangeStart, RangeState<M> s) {
    if (s.unsettled.isEmpty() && s.refused.isEmpty()) {
      ranges.remove(rangeStart);
    }
  }
}
