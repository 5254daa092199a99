package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.core.handover.Participant.Side;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The agent's persisted state: sides only; fences an older build wrote are read past. */
class AgentStateTest {
  static final Side SIDE = new Side(0x40L, 3, true, "q2", true, false, false, 0, false, 17);

  @Test
  void sidesRoundTripAndNoFencesAreWritten() {
    byte[] bytes = new AgentState(List.of(SIDE)).encode();
    assertEquals(List.of(SIDE), AgentState.decode(bytes).sides());
    // format, side count, the side, then an empty fence list
    assertEquals(0, bytes[bytes.length - 1] | bytes[bytes.length - 2] | bytes[bytes.length - 3]
        | bytes[bytes.length - 4]);
  }

  @Test
  void fencesWrittenByAnOlderBuildAreSkipped() throws Exception {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(b)) {
      out.writeInt(1);
      out.writeInt(1);
      out.writeLong(SIDE.rangeStart());
      out.writeLong(SIDE.handoverEpoch());
      out.writeBoolean(SIDE.source());
      out.writeUTF(SIDE.peer());
      out.writeBoolean(SIDE.sealed());
      out.writeBoolean(SIDE.bufferTransferred());
      out.writeBoolean(SIDE.prefixStored());
      out.writeLong(SIDE.abortVersion());
      out.writeBoolean(SIDE.returned());
      out.writeLong(SIDE.switchVersion());
      out.writeInt(2);
      for (String p : List.of("p1", "p2")) {
        out.writeUTF(p);
        out.writeLong(0);
        out.writeLong(1L << 62);
        out.writeLong(9);
      }
    }
    AgentState read = AgentState.decode(b.toByteArray());
    assertEquals(List.of(SIDE), read.sides());
    assertArrayEquals(new AgentState(List.of(SIDE)).encode(), read.encode());
  }
}
