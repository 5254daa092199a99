package io.plb.core.check;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Checks a {@link History} against PLB's delivery promise (DESIGN §5; invariants I1–I3 of the
 * reliability notes), in the manner of Jepsen's queue checker.
 *
 * <p><b>Definitions.</b> A message is {@code (producer, seq)}.
 *
 * <ul>
 *   <li><b>published</b>: distinct messages sent (a message acked or failed without a recorded send
 *       counts as sent; its key is then taken from its first delivery). <b>acknowledged</b>:
 *       distinct messages acked. <b>failed</b>: distinct messages failed and never acked.
 *   <li><b>delivered</b>: delivery events, duplicates included. <b>late</b>: delivery events
 *       flagged {@code late}.
 *   <li><b>lost</b> (I1): acknowledged messages never delivered (a late delivery counts as a
 *       delivery). Unacknowledged messages, failed or in flight, may or may not be delivered.
 *   <li><b>duplicates</b> (I3): deliveries of a message that had already been delivered; such a
 *       delivery is <b>explained</b> when it carries {@code redelivered} or {@code late}, otherwise
 *       it counts in <b>unexplainedDuplicates</b>.
 *   <li><b>phantom</b> (I3): deliveries matching no sent message: an unknown {@code (producer,
 *       seq)}, or a known one delivered under a different key.
 *   <li><b>reorderedKeys</b> (I2): distinct (producer, key) pairs in which, taking each message's
 *       first delivery in recording order, some message is delivered after a message with a higher
 *       seq, where <em>neither</em> of the two is late. Duplicates and phantoms take no part.
 *       Inversions that involve a late message are the declared-loss exception: they are not
 *       counted here, and their pairs show up in <b>keysWithLateMessages</b>, the distinct
 *       (producer, key) pairs that received at least one late delivery.
 * </ul>
 *
 * <p>{@link Verdict#ok()} holds when nothing is lost, reordered, duplicated without explanation or
 * phantom. {@link Verdict#examples()} names up to {@value #MAX_EXAMPLES} concrete violations, taken
 * in turn from each kind so that one kind cannot crowd out the others.
 *
 * <p>Pure and deterministic for a given history; runs in time linear in the number of events, with
 * primitive hash tables (a few tens of bytes per message).
 */
public final class HistoryChecker {
  /** The most examples a verdict carries. */
  public static final int MAX_EXAMPLES = 10;

  private HistoryChecker() {}

  /** The outcome of a check; see {@link HistoryChecker} for the definitions of the counts. */
  public record Verdict(
      long published,
      long acknowledged,
      long failed,
      long delivered,
      long lost,
      long duplicates,
      long unexplainedDuplicates,
      long reorderedKeys,
      long late,
      long keysWithLateMessages,
      long phantom,
      List<String> examples) {
    public Verdict {
      examples = List.copyOf(examples);
    }

    /** Nothing lost, no unexplained duplicate, no reordered key, no phantom delivery. */
    public boolean ok() {
      return lost == 0 && reorderedKeys == 0 && unexplainedDuplicates == 0 && phantom == 0;
    }

    /** The counts in a fixed order, with snake_case names, for JSON reports. */
    public Map<String, Object> toJsonFields() {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("ok", ok());
      m.put("published", published);
      m.put("acknowledged", acknowledged);
      m.put("failed", failed);
      m.put("delivered", delivered);
      m.put("lost", lost);
      m.put("duplicates", duplicates);
      m.put("unexplained_duplicates", unexplainedDuplicates);
      m.put("reordered_keys", reorderedKeys);
      m.put("late", late);
      m.put("keys_with_late_messages", keysWithLateMessages);
      m.put("phantom", phantom);
      m.put("examples", examples);
      return Collections.unmodifiableMap(m);
    }

    /** One line: verdict, counts, and the first example if any. */
    @Override
    public String toString() {
      StringBuilder sb = new StringBuilder(ok() ? "OK" : "FAILED");
      sb.append(": published=").append(published)
          .append(" acknowledged=").append(acknowledged)
          .append(" failed=").append(failed)
          .append(" delivered=").append(delivered)
          .append(" lost=").append(lost)
          .append(" duplicates=").append(duplicates)
          .append(" (unexplained=").append(unexplainedDuplicates).append(')')
          .append(" reordered_keys=").append(reorderedKeys)
          .append(" late=").append(late)
          .append(" keys_with_late_messages=").append(keysWithLateMessages)
          .append(" phantom=").append(phantom);
      if (!examples.isEmpty()) {
        sb.append("; e.g. ").append(examples.get(0));
        if (examples.size() > 1) {
          sb.append(" (+").append(examples.size() - 1).append(" more examples)");
        }
      }
      return sb.toString();
    }
  }

  // Message flags.
  private static final byte M_SENT = 1;
  private static final byte M_ACKED = 2;
  private static final byte M_FAILED = 4;
  private static final byte M_DELIVERED = 8;

  // Pair flags.
  private static final byte P_HAS_IN_ORDER = 1;
  private static final byte P_REORDERED = 2;
  private static final byte P_HAS_LATE = 4;

  /** Checks everything recorded in {@code history} so far. */
  public static Verdict check(History history) {
    History.Snapshot h = history.snapshot();
    Messages msgs = new Messages(Math.max(16, Math.min(h.size / 2, 1 << 24)));
    Pairs pairs = new Pairs(64);
    Examples ex = new Examples();

    // Step 1: what was sent, acknowledged, failed. Done before deliveries so that the order in
    // which threads recorded a send and its delivery does not matter.
    for (int i = 0; i < h.size; i++) {
      int kind = h.kind(i) & History.KIND_MASK;
      if (kind == History.DELIVERED) {
        continue;
      }
      int m = msgs.findOrAdd(h.producer(i), h.seq(i));
      switch (kind) {
        case History.SENT -> {
          if (msgs.key[m] < 0) {
            msgs.key[m] = h.ref(i);
          }
          msgs.flags[m] |= M_SENT;
        }
        case History.ACKED -> msgs.flags[m] |= M_SENT | M_ACKED;
        default -> msgs.flags[m] |= M_SENT | M_FAILED;
      }
    }

    // Step 2: deliveries, in recording order.
    long delivered = 0;
    long late = 0;
    long duplicates = 0;
    long unexplained = 0;
    long phantom = 0;
    long reorderedKeys = 0;
    long keysWithLate = 0;
    for (int i = 0; i < h.size; i++) {
      int kind = h.kind(i);
      if ((kind & History.KIND_MASK) != History.DELIVERED) {
        continue;
      }
      delivered++;
      boolean isLate = (kind & History.FLAG_LATE) != 0;
      boolean isRedelivered = (kind & History.FLAG_REDELIVERED) != 0;
      if (isLate) {
        late++;
      }
      int producer = h.producer(i);
      long seq = h.seq(i);
      int key = h.ref(i);
      int m = msgs.find(producer, seq);
      if (m < 0) {
        phantom++;
        ex.phantom.add(
            "phantom: " + describe(h, producer, seq, key) + ": delivered (event #" + i
                + ", consumer " + h.consumerNames[h.consumer(i)] + ") but never sent");
        continue;
      }
      if (msgs.key[m] < 0) {
        msgs.key[m] = key; // acked or failed without a recorded send: the delivery names the key
      } else if (msgs.key[m] != key) {
        phantom++;
        ex.phantom.add(
            "phantom: producer=" + h.producerNames[producer] + " seq=" + seq
                + ": delivered with key=" + quote(h.keyNames[key]) + " (event #" + i
                + ", consumer " + h.consumerNames[h.consumer(i)] + ") but sent with key="
                + quote(h.keyNames[msgs.key[m]]));
        continue;
      }
      int p = pairs.findOrAdd(producer, key);
      if (isLate && (pairs.flags[p] & P_HAS_LATE) == 0) {
        pairs.flags[p] |= P_HAS_LATE;
        keysWithLate++;
      }
      if ((msgs.flags[m] & M_DELIVERED) != 0) {
        duplicates++;
        if (!isRedelivered && !isLate) {
          unexplained++;
          int first = msgs.firstDelivery[m];
          ex.duplicate.add(
              "unexplained duplicate: " + describe(h, producer, seq, key)
                  + ": delivered again (event #" + i + ", consumer "
                  + h.consumerNames[h.consumer(i)]
                  + ") without redelivered or late flag; first delivered at event #" + first
                  + " to consumer " + h.consumerNames[h.consumer(first)]);
        }
        continue;
      }
      msgs.flags[m] |= M_DELIVERED;
      msgs.firstDelivery[m] = i;
      if (isLate) {
        continue; // the declared-loss exception: late messages take no part in the order check
      }
      if ((pairs.flags[p] & P_HAS_IN_ORDER) == 0) {
        pairs.flags[p] |= P_HAS_IN_ORDER;
      } else if (seq < pairs.maxSeq[p]) {
        if ((pairs.flags[p] & P_REORDERED) == 0) {
          pairs.flags[p] |= P_REORDERED;
          reorderedKeys++;
          int at = pairs.maxEvent[p];
          ex.reordered.add(
              "reordered: producer=" + h.producerNames[producer] + " key="
                  + quote(h.keyNames[key]) + ": seq=" + seq + " delivered (event #" + i
                  + ", consumer " + h.consumerNames[h.consumer(i)] + ") after seq="
                  + pairs.maxSeq[p] + " (event #" + at + ", consumer "
                  + h.consumerNames[h.consumer(at)] + ")");
        }
        continue;
      }
      pairs.maxSeq[p] = seq;
      pairs.maxEvent[p] = i;
    }

    // Step 3: totals over messages, and what was acknowledged but never delivered.
    long published = 0;
    long acknowledged = 0;
    long failed = 0;
    long lost = 0;
    for (int m = 0; m < msgs.count; m++) {
      byte f = msgs.flags[m];
      if ((f & M_SENT) != 0) {
        published++;
      }
      if ((f & M_ACKED) != 0) {
        acknowledged++;
        if ((f & M_DELIVERED) == 0) {
          lost++;
          ex.lost.add(
              "lost: " + describe(h, msgs.producer[m], msgs.seq[m], msgs.key[m])
                  + ": acknowledged, never delivered");
        }
      } else if ((f & M_FAILED) != 0) {
        failed++;
      }
    }

    return new Verdict(
        published,
        acknowledged,
        failed,
        delivered,
        lost,
        duplicates,
        unexplained,
        reorderedKeys,
        late,
        keysWithLate,
        phantom,
        ex.merge());
  }

  private static String describe(History.Snapshot h, int producer, long seq, int key) {
    return "producer=" + h.producerNames[producer] + " seq=" + seq
        + (key < 0 ? "" : " key=" + quote(h.keyNames[key]));
  }

  /** A key in double quotes, with quotes, backslashes and non-printable chars escaped. */
  static String quote(String key) {
    StringBuilder sb = new StringBuilder(key.length() + 2).append('"');
    for (int i = 0; i < key.length(); i++) {
      char c = key.charAt(i);
      if (c == '"' || c == '\\') {
        sb.append('\\').append(c);
      } else if (c >= 0x20 && c < 0x7f) {
        sb.append(c);
      } else if (c <= 0xff) {
        sb.append(String.format("\\x%02x", (int) c));
      } else {
        sb.append(String.format("\\u%04x", (int) c));
      }
    }
    return sb.append('"').toString();
  }

  /** Up to {@link #MAX_EXAMPLES} examples of each kind, merged in turn. */
  private static final class Examples {
    final Bounded lost = new Bounded();
    final Bounded reordered = new Bounded();
    final Bounded duplicate = new Bounded();
    final Bounded phantom = new Bounded();

    List<String> merge() {
      List<List<String>> kinds =
          List.of(lost.items, reordered.items, duplicate.items, phantom.items);
      List<String> out = new ArrayList<>(MAX_EXAMPLES);
      for (int round = 0; round < MAX_EXAMPLES && out.size() < MAX_EXAMPLES; round++) {
        for (List<String> k : kinds) {
          if (round < k.size() && out.size() < MAX_EXAMPLES) {
            out.add(k.get(round));
          }
        }
      }
      return out;
    }
  }

  private static final class Bounded {
    final List<String> items = new ArrayList<>();

    void add(String s) {
      if (items.size() < MAX_EXAMPLES) {
        items.add(s);
      }
    }
  }

  private static int mix(long x) {
    x ^= x >>> 33;
    x *= 0xff51afd7ed558ccdL;
    x ^= x >>> 33;
    x *= 0xc4ceb9fe1a85ec53L;
    x ^= x >>> 33;
    return (int) x;
  }

  /**
   * Messages by {@code (producer, seq)}: open addressing over message ids, with the message's
   * columns in parallel arrays indexed by id.
   */
  private static final class Messages {
    int[] slots; // message id + 1; 0 is empty
    int count;
    int[] producer;
    long[] seq;
    int[] key;
    byte[] flags;
    int[] firstDelivery;

    Messages(int expected) {
      slots = new int[tableSize(expected)];
      producer = new int[expected];
      seq = new long[expected];
      key = new int[expected];
      flags = new byte[expected];
      firstDelivery = new int[expected];
    }

    private static int hash(int p, long s) {
      return mix(s * 0x9E3779B97F4A7C15L + p);
    }

    int find(int p, long s) {
      int mask = slots.length - 1;
      for (int i = hash(p, s) & mask; ; i = (i + 1) & mask) {
        int id = slots[i] - 1;
        if (id < 0) {
          return -1;
        }
        if (seq[id] == s && producer[id] == p) {
          return id;
        }
      }
    }

    int findOrAdd(int p, long s) {
      int mask = slots.length - 1;
      int i = hash(p, s) & mask;
      for (; ; i = (i + 1) & mask) {
        int id = slots[i] - 1;
        if (id < 0) {
          break;
        }
        if (seq[id] == s && producer[id] == p) {
          return id;
        }
      }
      int id = count++;
      if (id == producer.length) {
        int n = Math.max(16, id * 2);
        producer = Arrays.copyOf(producer, n);
        seq = Arrays.copyOf(seq, n);
        key = Arrays.copyOf(key, n);
        flags = Arrays.copyOf(flags, n);
        firstDelivery = Arrays.copyOf(firstDelivery, n);
      }
      producer[id] = p;
      seq[id] = s;
      key[id] = -1;
      slots[i] = id + 1;
      if (count * 2 > slots.length) {
        rehash();
      }
      return id;
    }

    private void rehash() {
      int[] t = new int[slots.length * 2];
      int mask = t.length - 1;
      for (int id = 0; id < count; id++) {
        int i = hash(producer[id], seq[id]) & mask;
        while (t[i] != 0) {
          i = (i + 1) & mask;
        }
        t[i] = id + 1;
      }
      slots = t;
    }
  }

  /** (producer, key) pairs with their order-check state. */
  private static final class Pairs {
    int[] slots; // pair id + 1; 0 is empty
    int count;
    long[] pairKey;
    long[] maxSeq; // highest seq delivered in order (not late) so far
    int[] maxEvent; // the event that delivered it
    byte[] flags;

    Pairs(int expected) {
      slots = new int[tableSize(expected)];
      pairKey = new long[expected];
      maxSeq = new long[expected];
      maxEvent = new int[expected];
      flags = new byte[expected];
    }

    int findOrAdd(int producer, int key) {
      long k = ((long) producer << 32) | (key & 0xffffffffL);
      int mask = slots.length - 1;
      int i = mix(k) & mask;
      for (; ; i = (i + 1) & mask) {
        int id = slots[i] - 1;
        if (id < 0) {
          break;
        }
        if (pairKey[id] == k) {
          return id;
        }
      }
      int id = count++;
      if (id == pairKey.length) {
        int n = Math.max(16, id * 2);
        pairKey = Arrays.copyOf(pairKey, n);
        maxSeq = Arrays.copyOf(maxSeq, n);
        maxEvent = Arrays.copyOf(maxEvent, n);
        flags = Arrays.copyOf(flags, n);
      }
      pairKey[id] = k;
      slots[i] = id + 1;
      if (count * 2 > slots.length) {
        int[] t = new int[slots.length * 2];
        int m = t.length - 1;
        for (int j = 0; j < count; j++) {
          int s = mix(pairKey[j]) & m;
          while (t[s] != 0) {
            s = (s + 1) & m;
          }
          t[s] = j + 1;
        }
        slots = t;
      }
      return id;
    }
  }

  /** A power of two at least twice {@code expected}. */
  private static int tableSize(int expected) {
    int e = Math.min(Math.max(8, expected), 1 << 29);
    return Integer.highestOneBit(e * 2 - 1) << 1;
  }
}
