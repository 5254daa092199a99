package io.plb.client.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.PlbException;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Automatic causes travel with their commands through the log and with their changes. */
class WireCauseTest {
  static final ActionCause CAUSE = new ActionCause("REBALANCE", "MAX_MEAN", 1.4, "q1", 0.9, 0.6,
      "q2", 0.2, 0.5, 30.5, 41.0, "seasonal-level", 1_764_000_000_000L, 3, "q1 above level");

  @Test
  void commandsKeepTheirCauseThroughTheLog() {
    for (Command c : List.of(
        new Command.StartHandover(0, Long.MIN_VALUE, 1, "q2", 2, 8, CAUSE),
        new Command.SplitRange(0, 1L << 40, CAUSE),
        new Command.MergeRanges(0, Long.MIN_VALUE, CAUSE),
        new Command.StartHandover(0, Long.MIN_VALUE, 1, "q2", 2, 8),
        new Command.SetBalancerPaused(true, "ops"))) {
      assertEquals(c, Wire.fromLogEntry(Wire.toLogEntry(c, 4)));
    }
    io.plb.proto.v1.Command forged = Wire.toLogEntry(new Command.RemoveServer("q1")).toBuilder()
        .setCause(Wire.toProto(CAUSE)).build();
    assertThrows(PlbException.class, () -> Wire.fromLogEntry(forged));
  }

  @Test
  void theChangeCarriesTheCauseAndOperatorChangesNone() {
    ClusterImage image = ClusterImage.of(5,
        List.of(new RangeEntry(0, Long.MIN_VALUE, "q1", 1, null, false),
            new RangeEntry(Long.MIN_VALUE, 0, "q1", 1, null, false)),
        List.of(new QueueServerInfo("q1", "h:1", 1, ServerState.ACTIVE),
            new QueueServerInfo("q2", "h:2", 1, ServerState.ACTIVE)));
    MapDelta auto = CommandProcessor.process(image,
        new Command.StartHandover(0, Long.MIN_VALUE, 1, "q2", 2, 8, CAUSE), 6);
    assertEquals(CAUSE, auto.actionCause());
    assertEquals(auto, Wire.fromProto(Wire.toProto(auto)));
    MapDelta manual = CommandProcessor.process(image, new Command.SplitRange(0, 1L << 40), 6);
    assertNull(manual.actionCause());
    assertFalse(Wire.toProto(manual).hasActionCause());
    assertThrows(PlbException.class, () -> CommandProcessor.process(image,
        new Command.SetBalancerPaused(true, ""), 6));
  }
}
