package io.plb.core.load;

import io.plb.core.command.Command.AppendLoadSamples;
import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The leader's intake of load reports (DESIGN §6): sums the reports of all queue servers over one
 * history bucket and, when the bucket's time is up, turns the sums into one
 * {@link AppendLoadSamples} entry to propose. Pure: time is passed in (wall-clock milliseconds,
 * since buckets are labelled with wall time), no I/O.
 *
 * <p><b>Buckets.</b> A report counts in the bucket during which the leader received it. Only one
 * bucket is open at a time; it closes once {@code now} reaches its end, and the next one opens with
 * the next report. A bucket always starts after the newest one committed or closed before, so a
 * leader whose clock is behind its predecessor's still appends in order (its buckets then carry
 * later labels than its own clock). A bucket with no report produces no entry.
 *
 * <p><b>Sums.</b> Per slice, counters add over all reports; per server the gauges keep their peak
 * over its reports in the bucket, and the peaks of different servers add (depth) or take the
 * larger (age). Hot keys merge with their error bounds ({@link HotKeys#merge}), bounded for an
 * unlisted key by what its slice had in that report.
 *
 * <p><b>Duplicates.</b> A report whose (session, seq) is not above the last one counted for its
 * server — in an open bucket or in the committed history the aggregator started from — is a
 * duplicate and changes nothing. A report of another session (the agent restarted) is counted.
 *
 * <p><b>Memory.</b> One open bucket: four arrays of 4096 counters, per reporting server the peaks
 * of the slices it reported (at most 4096), and a hot-key summary of at most {@code 4 × hotKeys}
 * keys — whatever the number of reports.
 *
 * <p>Not thread-safe: the leader drives it from one thread.
 */
public final class LoadAggregator {
  /** Whether a report was counted. */
  public enum Verdict { COUNTED, DUPLICATE }

  /** The outcome of one report: counted in the bucket starting at {@code bucketStartMillis}. */
  public record Offer(Verdict verdict, long bucketStartMillis) {}

  private final HistoryLayout layout;
  private final long takeoverMillis;
  private final Map<String, long[]> counted = new HashMap<>();
  private final List<AppendLoadSamples> ready = new ArrayList<>();
  private long lastStart;
  private Open open;
  private long reportsCounted;

  /**
   * An aggregator for a leader that took over at {@code nowMillis}, continuing the committed
   * history {@code committed} with buckets laid out as {@code layout}.
   */
  public LoadAggregator(HistoryLayout layout, HistoryState committed, long nowMillis) {
    this.layout = layout.check();
    this.takeoverMillis = nowMillis;
    this.lastStart = committed.lastBucketMillis();
    for (Map.Entry<String, HistoryState.Watermark> e : committed.watermarks().entrySet()) {
      counted.put(e.getKey(), new long[] {e.getValue().session(), e.getValue().seq()});
    }
  }

  public HistoryLayout layout() {
    return layout;
  }

  /**
   * Counts one report received at {@code nowMillis}.
   *
   * @throws io.plb.core.error.PlbException INVALID_ARGUMENT for a malformed report
   */
  public Offer offer(LoadReport report, long nowMillis) {
    report.check();
    roll(nowMillis);
    long[] last = counted.get(report.serverId());
    if (last != null && last[0] == report.session() && report.seq() <= last[1]) {
      return new Offer(Verdict.DUPLICATE, open == null ? lastStart : open.start);
    }
    if (open == null) {
      long aligned = Math.floorDiv(nowMillis, layout.bucketMillis()) * layout.bucketMillis();
      long start = lastStart < 0 ? aligned : Math.max(aligned, lastStart + layout.bucketMillis());
      open = new Open(start);
    }
    open.add(report);
    counted.put(report.serverId(), new long[] {report.session(), report.seq()});
    reportsCounted++;
    return new Offer(Verdict.COUNTED, open.start);
  }

  /** The entries of every bucket whose time is up at {@code nowMillis}, oldest first. */
  public List<AppendLoadSamples> due(long nowMillis) {
    roll(nowMillis);
    List<AppendLoadSamples> out = new ArrayList<>(ready);
    ready.clear();
    return out;
  }

  /** Reports counted by this aggregator so far. */
  public long reportsCounted() {
    return reportsCounted;
  }

  /** Reports in the bucket still open (lost if leadership ends now). */
  public int openReports() {
    return open == null ? 0 : open.reports;
  }

  private void roll(long nowMillis) {
    if (open != null && nowMillis >= open.start + layout.bucketMillis()) {
      ready.add(open.close());
      lastStart = open.start;
      open = null;
    }
  }

  /** What one server reported in the open bucket. */
  private static final class ServerPart {
    LoadFigures totals;
    int reports;
    long session;
    long seq;
    /** slice → {peak depth, peak age}. */
    final Map<Integer, long[]> peaks = new HashMap<>();
  }

  /** The bucket being filled. */
  private final class Open {
    final long start;
    final long[] in = new long[Ring.SLICES];
    final long[] inBytes = new long[Ring.SLICES];
    final long[] out = new long[Ring.SLICES];
    final long[] outBytes = new long[Ring.SLICES];
    final BitSet touched = new BitSet(Ring.SLICES);
    final TreeMap<String, ServerPart> servers = new TreeMap<>();
    HotKeys hot = HotKeys.EMPTY;
    int reports;

    Open(long start) {
      this.start = start;
    }

    void add(LoadReport r) {
      // Hot keys first: the bucket's part is bounded by its slice counts before this report.
      hot = HotKeys.merge(List.of(hot.part(s -> in[s]), r.hotKeys().part(r.slices())),
          4 * layout.hotKeys());
      ServerPart p = servers.computeIfAbsent(r.serverId(), id -> new ServerPart());
      long depth = 0;
      long age = 0;
      for (SliceLoad s : r.slices()) {
        int i = s.slice();
        LoadFigures f = s.load();
        in[i] = LoadFigures.add(in[i], f.messagesIn());
        inBytes[i] = LoadFigures.add(inBytes[i], f.bytesIn());
        out[i] = LoadFigures.add(out[i], f.messagesOut());
        outBytes[i] = LoadFigures.add(outBytes[i], f.bytesOut());
        touched.set(i);
        if (f.queueDepth() > 0 || f.oldestAgeMillis() > 0) {
          long[] peak = p.peaks.computeIfAbsent(i, k -> new long[2]);
          peak[0] = Math.max(peak[0], f.queueDepth());
          peak[1] = Math.max(peak[1], f.oldestAgeMillis());
        }
        depth = LoadFigures.add(depth, f.queueDepth());
        age = Math.max(age, f.oldestAgeMillis());
      }
      LoadFigures t = r.total();
      LoadFigures figures = new LoadFigures(t.messagesIn(), t.bytesIn(), t.messagesOut(),
          t.bytesOut(), depth, age);
      p.totals = p.totals == null ? figures : p.totals.then(figures);
      p.reports++;
      p.session = r.session();
      p.seq = r.seq();
      reports++;
    }

    AppendLoadSamples close() {
      long[] depth = new long[Ring.SLICES];
      long[] age = new long[Ring.SLICES];
      List<ServerLoad> serverLoads = new ArrayList<>(servers.size());
      for (Map.Entry<String, ServerPart> e : servers.entrySet()) {
        ServerPart p = e.getValue();
        for (Map.Entry<Integer, long[]> peak : p.peaks.entrySet()) {
          int s = peak.getKey();
          depth[s] = LoadFigures.add(depth[s], peak.getValue()[0]);
          age[s] = Math.max(age[s], peak.getValue()[1]);
        }
        serverLoads.add(new ServerLoad(e.getKey(), p.totals, p.reports, p.session, p.seq));
      }
      List<SliceLoad> slices = new ArrayList<>();
      for (int s = touched.nextSetBit(0); s >= 0; s = touched.nextSetBit(s + 1)) {
        LoadFigures f = new LoadFigures(in[s], inBytes[s], out[s], outBytes[s], depth[s], age[s]);
        if (!f.isZero()) {
          slices.add(new SliceLoad(s, f));
        }
      }
      long end = start + layout.bucketMillis();
      long covered = Math.min(layout.bucketMillis(), end - Math.max(start, takeoverMillis));
      HotKeys top = HotKeys.merge(List.of(hot.part()), layout.hotKeys());
      LoadBucket bucket = new LoadBucket(Resolution.FINE, start, layout.bucketMillis(),
          Math.max(1, covered), 1, slices, top, serverLoads);
      return new AppendLoadSamples(layout, bucket);
    }
  }
}
