package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.core.handover.Participant.Side;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The agent's persisted state: sides and the map version they were written at; fences an older
 * build wrote are read past, and its format (no map version) reads as version 0.
 */
class AgentStateTest {
  static final Side SIDE = new Side(0x40L, 3, true, "q2", true, false, false, 0, false, 17);

  @Test
  void sidesAndMapVersionRoundTripAndNoFencesAreWritten() {
    byte[] bytes = new AgentState(List.of(SIDE), 42).encode();
    AgentState read = AgentState.decode(bytes);
    assertEquals(List.of(SIDE), read.sides());
    assertEquals(42, read.mapVersion());
    // format, side count, the side, an empty fence list, then the map version (8 bytes)
    int n = bytes.length - 8;
    assertEquals(0, bytes[n - 1] | bytes[n - 2] | bytes[n - 3] | bytes[n - 4]);
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
    assertEquals(0, read.mapVersion(), "an older build kept no map version");
    assertArrayEquals(new AgentState(List.of(SIDE), 0).encode(), read.encode());
  }
}
