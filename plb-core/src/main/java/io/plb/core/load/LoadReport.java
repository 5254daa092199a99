package io.plb.core.load;

import io.plb.core.command.Limits;
import io.plb.core.error.PlbException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * One load report of a queue server's agent (DESIGN §6): the load of its slices since its previous
 * report — counters as deltas, queue depth and oldest age as sampled when the report was made —
 * and its hot keys over the same time.
 *
 * <p>{@code session} identifies the agent's run and {@code seq} numbers its reports 1, 2, ...; a
 * resent report repeats its number, so the leader counts it once.
 *
 * <p>Immutable; slices sorted by slice.
 */
public record LoadReport(
    String serverId,
    long session,
    long seq,
    long intervalMillis,
    List<SliceLoad> slices,
    HotKeys hotKeys) {

  public LoadReport {
    List<SliceLoad> s = new ArrayList<>(slices);
    s.sort(Comparator.comparingInt(SliceLoad::slice));
    slices = List.copyOf(s);
  }

  /**
   * Checks a report from the wire.
   *
   * @throws PlbException INVALID_ARGUMENT naming what is wrong
   */
  public LoadReport check() {
    Limits.checkServerId(serverId);
    String bad = null;
    if (session < 1) {
      bad = "session must be set (>= 1)";
    } else if (seq < 1) {
      bad = "seq must be at least 1";
    } else if (intervalMillis < 0) {
      bad = "interval_millis is negative";
    }
    if (bad == null) {
      bad = SliceLoad.problem(slices);
    }
    if (bad == null) {
      bad = hotKeys == null ? "hot keys missing" : hotKeys.problem(HotKeys.MAX_KEYS);
    }
    if (bad != null) {
      throw PlbException.invalid("load report of " + serverId + " (seq " + seq + "): " + bad);
    }
    return this;
  }

  /** The figures of the whole report: per-slice figures added up ({@link LoadFigures#plus}). */
  public LoadFigures total() {
    LoadFigures t = LoadFigures.ZERO;
    for (SliceLoad s : slices) {
      t = t.plus(s.load());
    }
    return t;
  }
}
