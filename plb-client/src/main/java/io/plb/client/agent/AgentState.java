package io.plb.client.agent;

import io.plb.core.handover.Participant;
import io.plb.core.handover.Participant.Fence;
import io.plb.core.handover.Participant.Side;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * What a queue server's agent persists: the open handover sides and the refusal fences of its
 * {@link Participant}. A small versioned binary format; immutable.
 */
record AgentState(List<Side> sides, List<Fence> fences) {
  private static final int FORMAT = 1;

  static AgentState of(Participant p) {
    return new AgentState(p.sides(), p.fences());
  }

  void restoreInto(Participant p) {
    p.restore(sides);
    p.restoreFences(fences);
  }

  byte[] encode() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(64 + 64 * sides.size());
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeInt(FORMAT);
      out.writeInt(sides.size());
      for (Side s : sides) {
        out.writeLong(s.rangeStart());
        out.writeLong(s.handoverEpoch());
        out.writeBoolean(s.source());
        out.writeUTF(s.peer());
        out.writeBoolean(s.sealed());
        out.writeBoolean(s.bufferTransferred());
        out.writeBoolean(s.prefixStored());
        out.writeLong(s.abortVersion());
        out.writeBoolean(s.returned());
        out.writeLong(s.switchVersion());
      }
      out.writeInt(fences.size());
      for (Fence f : fences) {
        out.writeUTF(f.producer());
        out.writeLong(f.start());
        out.writeLong(f.end());
        out.writeLong(f.version());
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  static AgentState decode(byte[] data) {
    if (data == null || data.length == 0) {
      return new AgentState(List.of(), List.of());
    }
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
      int format = in.readInt();
      if (format != FORMAT) {
        throw new IllegalStateException("agent state has format " + format + "; this build reads "
            + FORMAT);
      }
      int n = in.readInt();
      List<Side> sides = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        sides.add(new Side(in.readLong(), in.readLong(), in.readBoolean(), in.readUTF(),
            in.readBoolean(), in.readBoolean(), in.readBoolean(), in.readLong(), in.readBoolean(),
            in.readLong()));
      }
      int m = in.readInt();
      List<Fence> fences = new ArrayList<>(m);
      for (int i = 0; i < m; i++) {
        fences.add(new Fence(in.readUTF(), in.readLong(), in.readLong(), in.readLong()));
      }
      return new AgentState(sides, fences);
    } catch (IOException e) {
      throw new UncheckedIOException("agent state is corrupt", e);
    }
  }
}
