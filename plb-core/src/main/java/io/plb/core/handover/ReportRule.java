package io.plb.core.handover;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.RangeEntry;

/**
 * The leader's rule for a queue server's handover report (READY, DRAINED, REVERSED): a report
 * that would change nothing — late, or a duplicate — is answered "ignored" without a log entry;
 * one that would change the map must come from the participant whose step it is (the target
 * opens its held queue; the source drains, and takes an aborted range back). The leader's
 * {@code HandoverDriver} and the seeded simulation's leader both ask this class. Pure; the map
 * rules themselves stay {@link CommandProcessor}'s (and are checked again when the entry is
 * applied).
 */
public final class ReportRule {
  private ReportRule() {}

  /** What to do with a report. */
  public enum Verdict {
    /** It would change nothing: answer "ignored" (cause in {@link Check#delta}). */
    IGNORED,
    /** Propose it. */
    PROPOSE,
    /** It is another participant's step ({@link Check#expected}): refuse it. */
    NOT_THE_REPORTERS_STEP
  }

  /**
   * @param delta what the report would do to the map now (empty when ignored)
   * @param expected the server whose step the report is (null when ignored)
   */
  public record Check(Verdict verdict, MapDelta delta, String expected) {}

  /**
   * Checks {@code report} of the handover of the range at {@code rangeStart} from
   * {@code reporter} against {@code image}.
   *
   * @throws io.plb.core.error.PlbException as {@link CommandProcessor#process} for a report the
   *     map rules refuse outright
   */
  public static Check check(ClusterImage image, Command report, long rangeStart,
      String reporter) {
    MapDelta d = CommandProcessor.process(image, report, image.version() + 1);
    if (d.isEmpty()) {
      return new Check(Verdict.IGNORED, d, null);
    }
    RangeEntry r = image.range(image.indexOfStart(rangeStart));
    String expected = report instanceof Command.HandoverReady ? r.handover().target() : r.owner();
    return new Check(expected.equals(reporter) ? Verdict.PROPOSE
        : Verdict.NOT_THE_REPORTERS_STEP, d, expected);
  }
}
