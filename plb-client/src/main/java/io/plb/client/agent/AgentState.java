package io.plb.client.agent;

import io.plb.core.handover.Participant;
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
 * What a queue server's agent persists: the open handover sides of its {@link Participant}, and
 * the map version it had applied when it wrote them — after a restart it takes no map older than
 * that ({@code MapWatcher.start(floor)}), since its sides may reflect it, and a node that is
 * behind could otherwise show it a handover in an earlier phase, or none. A small versioned
 * binary format; immutable. The format has a list of refusal fences after the sides: written
 * empty, and skipped when read. Fences are not kept across a restart: they only guard messages
 * on publish streams, and a restart ends every stream (DESIGN §5). Format 1 (no map version) is
 * read as version 0.
 */
record AgentState(List<Side> sides, long mapVersion) {
  private static final int FORMAT = 2;

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
      out.writeInt(0); // refusal fences: not kept
      out.writeLong(mapVersion);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  static AgentState decode(byte[] data) {
    if (data == null || data.length == 0) {
      return new AgentState(List.of(), 0);
    }
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
      int format = in.readInt();
      if (format != FORMAT && format != 1) {
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
      for (int i = 0; i < m; i++) {
        // Fences written by an older build: they guarded streams the restart has ended.
        in.readUTF();
        in.readLong();
        in.readLong();
        in.readLong();
      }
      return new AgentState(sides, format == 1 ? 0 : in.readLong());
    } catch (IOException e) {
      throw new UncheckedIOException("agent state is corrupt", e);
    }
  }
}
