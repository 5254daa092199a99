package io.plb.core.publish;

import io.plb.core.keyspace.Ring;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.LongPredicate;

/**
 * What a queue server keeps to store a producer's resend at most once (docs/design.md §5
 * "Idempotent publish"), in the manner of Kafka's idempotent producer (KIP-98), but per key.
 *
 * <p>A producer instance is named by its id and its epoch; its sequence numbers are unique and
 * grow across its keys. For each producer id this keeps the highest epoch stored here, and for
 * each (producer, key) the last seq stored under that epoch. The rule rests on PLB's own promise:
 * a producer's messages of one key are stored in seq order (a later one is only ever stored once
 * every earlier one was), so a message whose seq is at most the last one stored of its key was
 * stored already — here, or wherever the key lived before, since the entries of a range travel
 * with it in every transfer and merge by taking the larger seq. A message of an epoch below the
 * producer's highest is from an instance a newer one replaced: {@link Verdict#FENCED}.
 *
 * <p>Late messages (from a server that lost their range while DOWN) are the exception to the
 * order rule: a late message's seq may be below the key's last one without having been stored
 * here, so its verdict comes from {@link #storedExactly}, never from {@link #check}. That
 * verdict holds only for an entry this server stored itself: an entry that arrived with a range
 * ({@link #merge}) says another server stored the message, and the late copy may be the only
 * one left of it (the server that stored it lost the range while DOWN, and later handed its
 * entries on with another transfer of the range).
 *
 * <p><b>Forgetting.</b> An entry is useful only while its producer may still resend the message:
 * a producer tells which seqs it has settled ({@link #settled}), and a producer silent for long
 * is forgotten whole ({@link #expire}). Epoch 0 means "not idempotent": nothing is kept for it.
 * Forgetting must not reopen the door to a copy still on its way: a request of a stream the
 * producer gave up on may be handled after a newer stream settled its messages. So the highest
 * {@code settledBelow} is kept too (the <em>floor</em>), and a message below it is a
 * {@link Verdict#DUPLICATE} whatever the entries say: its producer has finished with it (it was
 * stored somewhere, or refused as bad input, or given up), so storing this copy could only
 * duplicate it, and its answer goes to a stream nobody reads.
 *
 * <p>Every change is also reported to a {@link Changes} the caller persists in the same write as
 * the messages it concerns, in order. Pure; not thread-safe (the queue server calls it under its
 * agent's lock).
 *
 * @param <K> the key type (its {@code equals} and {@code hashCode} compare bytes)
 */
public final class ProducerSequences<K> {
  /** What to do with a message that would be stored. */
  public enum Verdict {
    /** Not stored before (as far as this server can know): store it. */
    NEW,
    /** Stored before: acknowledge it and store nothing. */
    DUPLICATE,
    /** From an instance of the producer that a newer instance (a higher epoch) replaced. */
    FENCED
  }

  /**
   * The last seq stored of one (producer, key), under the producer's epoch; {@code storedHere}
   * when this server stored that message itself rather than learning of it with a range.
   */
  public record Entry<K>(String producer, long epoch, K key, long hash, long seq,
      boolean storedHere) {
    public Entry {
      Objects.requireNonNull(producer, "producer");
      Objects.requireNonNull(key, "key");
    }

    /** An entry of a message stored here (what a store that keeps no flag restores). */
    public Entry(String producer, long epoch, K key, long hash, long seq) {
      this(producer, epoch, key, hash, seq, true);
    }
  }

  /** A change to persist. */
  public sealed interface Change<K> {}

  /** Write {@code entry} (replacing the one of its producer and key). */
  public record PutEntry<K>(Entry<K> entry) implements Change<K> {}

  /** Delete the entry of {@code producer} and {@code key}. */
  public record DeleteEntry<K>(String producer, K key) implements Change<K> {}

  /**
   * Write the producer's row: its highest epoch here, when it last stored or settled a message,
   * and its floor (every seq below it is settled).
   */
  public record PutProducer<K>(String producer, long epoch, long lastUsedMillis,
      long settledBelow) implements Change<K> {}

  /** Delete the producer's row (its entries are deleted by their own changes first). */
  public record DeleteProducer<K>(String producer) implements Change<K> {}

  /** The changes of one or more calls, in the order they must be applied. */
  public static final class Changes<K> {
    private final List<Change<K>> list = new ArrayList<>();
    /** Where each producer's row was last put, while no delete of it followed: rewritten there. */
    private final Map<String, Integer> producerRowAt = new HashMap<>();

    public List<Change<K>> list() {
      return list;
    }

    public boolean isEmpty() {
      return list.isEmpty();
    }

    void add(Change<K> c) {
      if (c instanceof PutProducer<K> put) {
        Integer at = producerRowAt.get(put.producer());
        if (at != null) {
          list.set(at, c); // one row write per producer and batch, however many messages
          return;
        }
        producerRowAt.put(put.producer(), list.size());
      } else if (c instanceof DeleteProducer<K> del) {
        producerRowAt.remove(del.producer());
      }
      list.add(c);
    }
  }

  private static final class Slot {
    long seq;
    final long hash;
    /** This server stored the message {@code seq} itself (not merged from a transfer). */
    boolean storedHere;

    Slot(long seq, long hash, boolean storedHere) {
      this.seq = seq;
      this.hash = hash;
      this.storedHere = storedHere;
    }
  }

  private static final class ProducerState<K> {
    long epoch;
    long lastUsedMillis;
    /** Every seq of this epoch below it is settled at the producer. */
    long settledBelow;
    final Map<K, Slot> byKey = new HashMap<>();
    /** seq → key; seqs are unique within one epoch of a producer. */
    final TreeMap<Long, K> bySeq = new TreeMap<>();

    ProducerState(long epoch, long lastUsedMillis) {
      this.epoch = epoch;
      this.lastUsedMillis = lastUsedMillis;
    }
  }

  private final Map<String, ProducerState<K>> producers = new HashMap<>();
  private int entries;

  /** Entries kept, over all producers. */
  public int size() {
    return entries;
  }

  /** Producers with state kept. */
  public int producers() {
    return producers.size();
  }

  /** Whether a message (producer, epoch, key, seq) about to be stored was stored before. */
  public Verdict check(String producer, long epoch, K key, long seq) {
    if (epoch == 0) {
      return Verdict.NEW;
    }
    ProducerState<K> p = producers.get(producer);
    if (p == null || epoch > p.epoch) {
      return Verdict.NEW;
    }
    if (epoch < p.epoch) {
      return Verdict.FENCED;
    }
    if (seq < p.settledBelow) {
      return Verdict.DUPLICATE;
    }
    Slot s = p.byKey.get(key);
    return s != null && seq <= s.seq ? Verdict.DUPLICATE : Verdict.NEW;
  }

  /**
   * Whether this exact message is the last one this server stored of its key (a sure
   * duplicate). An entry merged from a transfer does not count: the message was stored elsewhere.
   */
  public boolean storedExactly(String producer, long epoch, K key, long seq) {
    ProducerState<K> p = producers.get(producer);
    if (epoch == 0 || p == null || p.epoch != epoch) {
      return false;
    }
    Slot s = p.byKey.get(key);
    return s != null && s.seq == seq && s.storedHere;
  }

  /** Whether storing a message of a (producer, key) not kept yet would add an entry. */
  public boolean wouldAdd(String producer, long epoch, K key) {
    if (epoch == 0) {
      return false;
    }
    ProducerState<K> p = producers.get(producer);
    return p == null || epoch > p.epoch || (epoch == p.epoch && !p.byKey.containsKey(key));
  }

  /**
   * A message was stored here (published, received in a transfer, or taken late): keeps the
   * larger seq of its key. A newer epoch replaces
   * everything kept of the producer; an older one changes nothing.
   */
  public void stored(String producer, long epoch, K key, long hash, long seq, long nowMillis,
      Changes<K> changes) {
    keep(producer, epoch, key, hash, seq, true, nowMillis, changes);
  }

  /**
   * {@link #stored} for an entry that arrived with a range: the message was stored by another
   * server, so it does not count for {@link #storedExactly}.
   */
  public void merge(Entry<K> e, long nowMillis, Changes<K> changes) {
    keep(e.producer(), e.epoch(), e.key(), e.hash(), e.seq(), false, nowMillis, changes);
  }

  private void keep(String producer, long epoch, K key, long hash, long seq, boolean here,
      long nowMillis, Changes<K> changes) {
    if (epoch == 0) {
      return;
    }
    ProducerState<K> p = producers.get(producer);
    if (p == null) {
      p = new ProducerState<>(epoch, nowMillis);
      producers.put(producer, p);
    } else if (epoch < p.epoch) {
      return;
    } else if (epoch > p.epoch) {
      dropEntries(producer, p, changes);
      p.epoch = epoch;
      p.settledBelow = 0;
    }
    Slot s = p.byKey.get(key);
    if (s == null) {
      s = new Slot(seq, hash, here);
      p.byKey.put(key, s);
      p.bySeq.put(seq, key);
      entries++;
    } else if (seq > s.seq) {
      p.bySeq.remove(s.seq, key);
      s.seq = seq;
      s.storedHere = here;
      p.bySeq.put(seq, key);
    } else if (seq == s.seq && here && !s.storedHere) {
      s.storedHere = true; // stored here too (a late copy, or a transfer's)
    } else {
      touch(producer, p, nowMillis, changes);
      return;
    }
    changes.add(new PutEntry<>(new Entry<>(producer, epoch, key, hash, seq, s.storedHere)));
    touch(producer, p, nowMillis, changes);
  }


  /**
   * The producer instance says every message of its below {@code settledBelow} is settled: it
   * never sends them again, so their entries can go.
   */
  public void settled(String producer, long epoch, long settledBelow, long nowMillis,
      Changes<K> changes) {
    settled(producer, epoch, settledBelow, nowMillis, h -> false, changes);
  }

  /**
   * {@link #settled}, keeping the entries of keys whose ring position {@code keep} accepts: those
   * of a range in a handover here, whose transfer still has to carry them (the other side may
   * hold a resend of the message, acknowledged there and settled since, that only the entry
   * shows to be one).
   */
  public void settled(String producer, long epoch, long settledBelow, long nowMillis,
      LongPredicate keep, Changes<K> changes) {
    ProducerState<K> p = producers.get(producer);
    if (p == null || epoch != p.epoch || settledBelow <= p.settledBelow) {
      return;
    }
    p.settledBelow = settledBelow;
    touch(producer, p, nowMillis, changes);
    Iterator<Map.Entry<Long, K>> it = p.bySeq.headMap(settledBelow, false).entrySet().iterator();
    while (it.hasNext()) {
      Map.Entry<Long, K> e = it.next();
      Slot s = p.byKey.get(e.getValue());
      if (s != null && s.seq == e.getKey() && keep.test(s.hash)) {
        continue; // forgotten on a later call, once its range is out of the handover
      }
      if (s != null && s.seq == e.getKey()) {
        p.byKey.remove(e.getValue());
        entries--;
        changes.add(new DeleteEntry<>(producer, e.getValue()));
      }
      it.remove();
    }
  }

  /** Forgets every producer that stored nothing and settled nothing since {@code before}. */
  public void expire(long beforeMillis, Changes<K> changes) {
    Iterator<Map.Entry<String, ProducerState<K>>> it = producers.entrySet().iterator();
    while (it.hasNext()) {
      Map.Entry<String, ProducerState<K>> e = it.next();
      if (e.getValue().lastUsedMillis < beforeMillis) {
        dropEntries(e.getKey(), e.getValue(), changes);
        changes.add(new DeleteProducer<>(e.getKey()));
        it.remove();
      }
    }
  }

  /** The entries of keys in the range {@code [start, end)} (end 0: the ring's end). */
  public List<Entry<K>> entriesIn(long start, long end) {
    List<Entry<K>> out = new ArrayList<>();
    for (Map.Entry<String, ProducerState<K>> pe : producers.entrySet()) {
      ProducerState<K> p = pe.getValue();
      for (Map.Entry<K, Slot> ke : p.byKey.entrySet()) {
        Slot s = ke.getValue();
        if (Ring.contains(start, end, s.hash)) {
          out.add(new Entry<>(pe.getKey(), p.epoch, ke.getKey(), s.hash, s.seq, s.storedHere));
        }
      }
    }
    return out;
  }

  /** Restores a producer's row read back from storage (before its entries). */
  public void restoreProducer(String producer, long epoch, long lastUsedMillis,
      long settledBelow) {
    ProducerState<K> p = new ProducerState<>(epoch, lastUsedMillis);
    p.settledBelow = settledBelow;
    producers.put(producer, p);
  }

  /**
   * Restores an entry read back from storage; false (and nothing kept) when it does not belong to
   * its producer's epoch, or its producer has no row.
   */
  public boolean restoreEntry(Entry<K> e) {
    ProducerState<K> p = producers.get(e.producer());
    if (p == null || p.epoch != e.epoch() || p.byKey.containsKey(e.key())) {
      return false;
    }
    p.byKey.put(e.key(), new Slot(e.seq(), e.hash(), e.storedHere()));
    p.bySeq.put(e.seq(), e.key());
    entries++;
    return true;
  }

  private void dropEntries(String producer, ProducerState<K> p, Changes<K> changes) {
    for (K key : p.byKey.keySet()) {
      changes.add(new DeleteEntry<>(producer, key));
    }
    entries -= p.byKey.size();
    p.byKey.clear();
    p.bySeq.clear();
  }

  private void touch(String producer, ProducerState<K> p, long nowMillis, Changes<K> changes) {
    p.lastUsedMillis = Math.max(p.lastUsedMillis, nowMillis);
    changes.add(new PutProducer<>(producer, p.epoch, p.lastUsedMillis, p.settledBelow));
  }
}
