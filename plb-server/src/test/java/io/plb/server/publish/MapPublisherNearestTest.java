package io.plb.server.publish;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.ServerState;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A cursor between two versions: a full map, or with {@code nearest} the next change. */
class MapPublisherNearestTest {
  static MapDelta add(long version, long prev, String id) {
    return new MapDelta(version, prev, List.of(), List.of(), List.of(),
        List.of(new QueueServerInfo(id, "h:1", 1, ServerState.ACTIVE)), "register " + id);
  }

  @Test
  void aCursorBetweenVersionsContinuesWithTheNextChangeOnlyWhenAsked() {
    MapPublisher p = new MapPublisher(100, 1_000_000);
    ClusterImage image = ClusterImage.EMPTY;
    p.reset(image, List.of(), 0);
    long prev = 0;
    for (long v : new long[] {3, 7, 12}) {
      MapDelta d = add(v, prev, "q" + v);
      image = image.apply(d);
      p.publish(image, d, v);
      prev = v;
    }
    assertInstanceOf(MapPublisher.FullMap.class, p.next(5, 10));
    assertInstanceOf(MapPublisher.FullMap.class, p.next(5, 10, false));
    MapPublisher.Deltas d = assertInstanceOf(MapPublisher.Deltas.class, p.next(5, 10, true));
    assertEquals(List.of(7L, 12L), d.deltas().stream().map(MapDelta::version).toList());
    d = assertInstanceOf(MapPublisher.Deltas.class, p.next(7, 10, true));
    assertEquals(List.of(12L), d.deltas().stream().map(MapDelta::version).toList());
    assertInstanceOf(MapPublisher.UpToDate.class, p.next(12, 10, true));
  }
}
