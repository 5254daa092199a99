package io.plb.client.agent;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * What a queue server answered to the last late batch it took from one sender: the batch's
 * identity {@code (session, batch)} and the indexes of the messages it did not take. Stored with
 * the messages it took, in one write, so a resend of the batch after a lost answer is answered
 * the same and stores nothing. A small versioned binary format; immutable.
 */
record LateReceipt(long session, long batch, List<Integer> notTaken) {
  private static final int FORMAT = 1;

  /** No batch taken from this sender yet. */
  static final LateReceipt NONE = new LateReceipt(0, 0, List.of());

  LateReceipt {
    notTaken = List.copyOf(notTaken);
  }

  byte[] encode() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(24 + 4 * notTaken.size());
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeInt(FORMAT);
      out.writeLong(session);
      out.writeLong(batch);
      out.writeInt(notTaken.size());
      for (int i : notTaken) {
        out.writeInt(i);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  static LateReceipt decode(byte[] data) {
    if (data == null || data.length == 0) {
      return NONE;
    }
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
      int format = in.readInt();
      if (format != FORMAT) {
        throw new IllegalStateException("late receipt has format " + format + "; this build reads "
            + FORMAT);
      }
      long session = in.readLong();
      long batch = in.readLong();
      int n = in.readInt();
      List<Integer> notTaken = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        notTaken.add(in.readInt());
      }
      return new LateReceipt(session, batch, notTaken);
    } catch (IOException e) {
      throw new UncheckedIOException("late receipt is corrupt", e);
    }
  }
}
