package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

/** A late receipt reads back as written; no receipt is NONE; another format is refused. */
class LateReceiptTest {
  @Test
  void roundTrips() {
    LateReceipt r = new LateReceipt(1_733_000_000_000L, 42, List.of(0, 3, 7));
    assertEquals(r, LateReceipt.decode(r.encode()));
    LateReceipt none = new LateReceipt(5, 1, List.of());
    assertEquals(none, LateReceipt.decode(none.encode()));
  }

  @Test
  void nothingStoredIsNone() {
    assertEquals(LateReceipt.NONE, LateReceipt.decode(new byte[0]));
    assertEquals(LateReceipt.NONE, LateReceipt.decode(null));
  }

  @Test
  void anotherFormatIsRefused() {
    byte[] b = new LateReceipt(1, 1, List.of()).encode();
    b[3] = 9; // the format number
    assertThrows(IllegalStateException.class, () -> LateReceipt.decode(b));
  }
}
