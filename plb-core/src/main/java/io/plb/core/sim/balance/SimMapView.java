package io.plb.core.sim.balance;

/**
 * A read-only view of a simulated shard map: sorted, slice-aligned ranges covering the whole ring
 * (range i is {@code [startSlice(i), endSlice(i))} in slices, 0..4096), each owned by a server
 * 0..servers-1. Ranges are addressed by index, which changes when ranges split or merge, and by
 * start slice, which does not.
 */
public interface SimMapView {
  int servers();

  int rangeCount();

  int startSlice(int range);

  int endSlice(int range);

  int owner(int range);

  /** When the range last changed owner, or {@link Long#MIN_VALUE} if never. */
  long lastMovedMillis(int range);

  /** The index of the range starting at {@code startSlice}, or -1. */
  int indexOfStart(int startSlice);

  /** The index of the range holding {@code slice}. */
  int indexOfSlice(int slice);

  /** The owner of {@code slice}. */
  int ownerOfSlice(int slice);

  /** The ring position where slice {@code slice} starts; slice 4096 (the ring's end) gives 0. */
  static long hashOfSlice(int slice) {
    return io.plb.core.keyspace.Ring.sliceStart(slice);
  }
}
