package io.plb.server.publish;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The kept history is bounded by its range entries as well as by its deltas: a split into
 * thousands of pieces is one delta of thousands of ranges.
 */
class MapPublisherHistoryTest {
  /** Publishes {@code n} splits of 3,000 pieces each (3,001 range entries per delta). */
  private static List<Long> publishSplits(MapPublisher p, int n) {
    ClusterImage image = ClusterImage.EMPTY;
    p.reset(image, List.of(), 0);
    List<Long> versions = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long v = 10L * (i + 1);
      MapDelta d = CommandProcessor.process(image,
          new Command.SplitEvenly(image.range(image.rangeCount() - 1).start(), 3000, 4096), v);
      image = image.apply(d);
      p.publish(image, d, v);
      versions.add(v);
    }
    return versions;
  }

  @Test
  void theOldestChangesGoWhenTheHistoryHoldsTooManyRanges() {
    MapPublisher p = new MapPublisher(100, 10_000);
    List<Long> v = publishSplits(p, 5);
    assertEquals(3, p.historySize(), "3 x 3,001 ranges fit in 10,000, 4 do not");
    assertEquals(v.get(2), p.oldestRetainedVersion());
    // The cursor before the oldest kept change continues by deltas; one further back gets a
    // full map.
    MapPublisher.Deltas d = assertInstanceOf(MapPublisher.Deltas.class, p.next(v.get(1), 10));
    assertEquals(v.subList(2, 5), d.deltas().stream().map(MapDelta::version).toList());
    assertInstanceOf(MapPublisher.FullMap.class, p.next(v.get(0), 10));
    // The count of deltas still bounds it too.
    MapPublisher few = new MapPublisher(2, 1_000_000);
    publishSplits(few, 5);
    assertEquals(2, few.historySize());
  }

  @Test
  void theNewestChangeIsKeptEvenWhenLargerThanTheBound() {
    MapPublisher p = new MapPublisher(100, 1_000);
    List<Long> v = publishSplits(p, 2);
    assertEquals(1, p.historySize());
    MapPublisher.Deltas d = assertInstanceOf(MapPublisher.Deltas.class, p.next(v.get(0), 10));
    assertEquals(List.of(v.get(1)), d.deltas().stream().map(MapDelta::version).toList());
  }
}
