package io.plb.core.load;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The space-saving sketch of Metwally, Agrawal and El Abbadi ("Efficient computation of frequent
 * and top-k elements in data streams", 2005): the heavy hitters of a stream of key hashes in
 * {@code capacity} counters.
 *
 * <p>Every monitored key has a counter with a count and an error. A key already monitored adds to
 * its count; a new key takes a free counter, or else replaces the key with the smallest count
 * {@code m} and starts at {@code m + weight} with error {@code m}. So, after {@code N} messages:
 *
 * <ul>
 *   <li>a monitored key's true count lies in {@code [count - error, count]};
 *   <li>a key not monitored had at most the smallest count ({@link HotKeys#threshold()} of
 *       {@link #summary()}; 0 while a counter is still free);
 *   <li>the counts sum to {@code N}, so that smallest count is at most {@code N / capacity}: every
 *       key with more than {@code N / capacity} messages is monitored.
 * </ul>
 *
 * <p>Bytes are summed per counter from the moment the key is monitored: a lower bound on its
 * bytes, exact when its error is 0.
 *
 * <p>Deterministic: ties between equal counts are broken by unsigned hash, so the same stream
 * gives the same summary. Each message costs one probe of an open-addressing table and, at most,
 * one sift in a binary min-heap: O(log capacity). Memory is fixed by {@code capacity}.
 *
 * <p>Not thread-safe.
 */
public final class SpaceSaving {
  private final int capacity;
  private final long[] hashes;
  private final long[] counts;
  private final long[] errors;
  private final long[] bytes;
  /** heap[i] = a counter slot; a min-heap by (count, unsigned hash). */
  private final int[] heap;
  /** heapIndex[slot] = where that slot sits in the heap. */
  private final int[] heapIndex;
  /** Open addressing, linear probing: hash → slot + 1 (0 = empty). */
  private final long[] tableHashes;
  private final int[] tableSlots;
  private final int tableShift;
  private int size;
  private long total;

  public SpaceSaving(int capacity) {
    if (capacity < 1 || capacity > HotKeys.MAX_KEYS) {
      throw new IllegalArgumentException(
          "a space-saving sketch has 1.." + HotKeys.MAX_KEYS + " counters, not " + capacity);
    }
    this.capacity = capacity;
    hashes = new long[capacity];
    counts = new long[capacity];
    errors = new long[capacity];
    bytes = new long[capacity];
    heap = new int[capacity];
    heapIndex = new int[capacity];
    int tableSize = Math.max(4, Integer.highestOneBit(capacity * 4 - 1) << 1);
    tableHashes = new long[tableSize];
    tableSlots = new int[tableSize];
    tableShift = 64 - Integer.numberOfTrailingZeros(tableSize);
  }

  public int capacity() {
    return capacity;
  }

  /** Messages offered since the last {@link #clear}. */
  public long total() {
    return total;
  }

  /** One message of the key with this hash, with its payload size. */
  public void offer(long hash, long payloadBytes) {
    add(hash, 1, payloadBytes);
  }

  /** {@code weight} messages of one key with {@code payloadBytes} bytes in all. */
  public void add(long hash, long weight, long payloadBytes) {
    if (weight < 1 || payloadBytes < 0) {
      throw new IllegalArgumentException("weight must be >= 1 and bytes >= 0");
    }
    total = LoadFigures.add(total, weight);
    int slot = lookup(hash);
    if (slot >= 0) {
      counts[slot] = LoadFigures.add(counts[slot], weight);
      bytes[slot] = LoadFigures.add(bytes[slot], payloadBytes);
      siftDown(heapIndex[slot]);
    } else if (size < capacity) {
      slot = size++;
      hashes[slot] = hash;
      counts[slot] = weight;
      errors[slot] = 0;
      bytes[slot] = payloadBytes;
      heap[slot] = slot;
      heapIndex[slot] = slot;
      siftUp(slot);
      insert(hash, slot);
    } else {
      // Replace the key with the smallest count: the newcomer may have had that many before.
      slot = heap[0];
      long min = counts[slot];
      remove(hashes[slot]);
      hashes[slot] = hash;
      counts[slot] = LoadFigures.add(min, weight);
      errors[slot] = min;
      bytes[slot] = payloadBytes;
      insert(hash, slot);
      siftDown(0);
    }
  }

  /** The monitored keys, highest count first, with the threshold for unmonitored keys. */
  public HotKeys summary() {
    List<HotKey> out = new ArrayList<>(size);
    for (int s = 0; s < size; s++) {
      out.add(new HotKey(hashes[s], counts[s], errors[s], bytes[s]));
    }
    return new HotKeys(out, size == capacity ? counts[heap[0]] : 0);
  }

  /** Forgets everything: a new period starts. */
  public void clear() {
    size = 0;
    total = 0;
    Arrays.fill(tableSlots, 0);
  }

  // ------------------------------------------------------------------ heap

  private boolean less(int slotA, int slotB) {
    long ca = counts[slotA];
    long cb = counts[slotB];
    return ca < cb || (ca == cb && Long.compareUnsigned(hashes[slotA], hashes[slotB]) < 0);
  }

  private void siftUp(int i) {
    int slot = heap[i];
    while (i > 0) {
      int parent = (i - 1) >>> 1;
      if (!less(slot, heap[parent])) {
        break;
      }
      place(i, heap[parent]);
      i = parent;
    }
    place(i, slot);
  }

  private void siftDown(int i) {
    int slot = heap[i];
    while (true) {
      int child = 2 * i + 1;
      if (child >= size) {
        break;
      }
      if (child + 1 < size && less(heap[child + 1], heap[child])) {
        child++;
      }
      if (!less(heap[child], slot)) {
        break;
      }
      place(i, heap[child]);
      i = child;
    }
    place(i, slot);
  }

  private void place(int i, int slot) {
    heap[i] = slot;
    heapIndex[slot] = i;
  }

  // ------------------------------------------------------------------ hash → slot

  private int home(long hash) {
    return (int) ((hash * 0x9E3779B97F4A7C15L) >>> tableShift);
  }

  private int lookup(long hash) {
    int mask = tableSlots.length - 1;
    for (int i = home(hash); ; i = (i + 1) & mask) {
      int s = tableSlots[i];
      if (s == 0) {
        return -1;
      }
      if (tableHashes[i] == hash) {
        return s - 1;
      }
    }
  }

  private void insert(long hash, int slot) {
    int mask = tableSlots.length - 1;
    int i = home(hash);
    while (tableSlots[i] != 0) {
      i = (i + 1) & mask;
    }
    tableHashes[i] = hash;
    tableSlots[i] = slot + 1;
  }

  /** Deletes with backward shift, so probe chains stay unbroken without tombstones. */
  private void remove(long hash) {
    int mask = tableSlots.length - 1;
    int i = home(hash);
    while (tableHashes[i] != hash || tableSlots[i] == 0) {
      i = (i + 1) & mask;
    }
    int gap = i;
    for (int j = (gap + 1) & mask; tableSlots[j] != 0; j = (j + 1) & mask) {
      int h = home(tableHashes[j]);
      // Move j into the gap unless its home lies cyclically in (gap, j].
      boolean stays = gap <= j ? (gap < h && h <= j) : (gap < h || h <= j);
      if (!stays) {
        tableHashes[gap] = tableHashes[j];
        tableSlots[gap] = tableSlots[j];
        gap = j;
      }
    }
    tableSlots[gap] = 0;
  }
}
