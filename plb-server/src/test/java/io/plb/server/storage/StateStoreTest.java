package io.plb.server.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The RocksDB store gives back exactly the image and history that were written to it. */
class StateStoreTest {
  @TempDir Path dir;

  private static ClusterImage applyAll(ClusterImage image, List<Command> commands, long first,
      StateStore store, List<MapDelta> out) throws Exception {
    long index = first;
    for (Command c : commands) {
      MapDelta d = CommandProcessor.process(image, c, index);
      image = image.apply(d);
      store.writeApplied(1, index, d);
      out.add(d);
      index += 2; // Raft indexes have gaps
    }
    return image;
  }

  @Test
  void serverOnlyChangesSurviveReopen() throws Exception {
    List<MapDelta> deltas = new ArrayList<>();
    ClusterImage image;
    try (StateStore store = StateStore.open(dir)) {
      image = applyAll(ClusterImage.EMPTY, List.of(
          new Command.RegisterServer("a", "127.0.0.1:1", 1.0),
          new Command.RegisterServer("b", "127.0.0.1:2", 2.0)), 3, store, deltas);
      store.writeApplied(1, 9, null); // a rejected entry still advances the applied index
    }
    try (StateStore store = StateStore.open(dir)) {
      assertEquals(image, store.loadImage());
      assertEquals(9, store.appliedIndex());
      assertEquals(deltas, store.loadChanges());
    }
  }

  @Test
  void rangesHistoryAndTrimSurviveReopen() throws Exception {
    List<MapDelta> deltas = new ArrayList<>();
    ClusterImage image;
    try (StateStore store = StateStore.open(dir)) {
      image = applyAll(ClusterImage.EMPTY, List.of(
          new Command.RegisterServer("a", "127.0.0.1:1", 1.0),
          new Command.SplitRange(0, 1L << 62),
          new Command.SplitRange(1L << 62, Long.MIN_VALUE),
          new Command.AssignRange(Long.MIN_VALUE, "a", false),
          new Command.MergeRanges(0, 1L << 62),
          new Command.SetPinned(0, true)), 1, store, deltas);
      store.trimChanges(deltas.get(2).version());
    }
    try (StateStore store = StateStore.open(dir)) {
      assertEquals(image, store.loadImage());
      assertEquals(deltas.subList(2, deltas.size()), store.loadChanges());
    }
  }

  @Test
  void checkpointOpensAsTheSameState() throws Exception {
    List<MapDelta> deltas = new ArrayList<>();
    ClusterImage image;
    Path checkpoint = dir.resolve("ckpt");
    try (StateStore store = StateStore.open(dir.resolve("live"))) {
      image = applyAll(ClusterImage.EMPTY, List.of(
          new Command.RegisterServer("a", "127.0.0.1:1", 1.0),
          new Command.SplitRange(0, 12345L)), 1, store, deltas);
      store.checkpoint(checkpoint);
    }
    try (StateStore copy = StateStore.open(checkpoint)) {
      assertEquals(image, copy.loadImage());
      assertEquals(3, copy.appliedIndex());
    }
  }
}
