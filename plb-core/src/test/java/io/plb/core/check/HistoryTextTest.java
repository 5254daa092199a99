package io.plb.core.check;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

/**
 * The text form of a {@link History}: what one process records can be checked by another. A
 * producer's half and a consumer's half, written and read back into one history, check exactly
 * as the history recorded in one place does.
 */
class HistoryTextTest {

  private static String text(History h) throws IOException {
    StringWriter w = new StringWriter();
    h.write(w);
    return w.toString();
  }

  @Test
  void halvesRecordedApartCheckAsOneHistory() throws IOException {
    History producers = new History();
    History consumers = new History();
    History together = new History();
    byte[] binary = {0, ' ', '\n', (byte) 0xff, '=', '%'};
    for (History h : new History[] {producers, together}) {
      h.publishSent("p 1", 1, "k");
      h.publishAcked("p 1", 1);
      h.publishSent("p 1", 2, binary);
      h.publishAcked("p 1", 2);
      h.publishSent("p 1", 3, "k");
      h.publishFailed("p 1", 3, "");
      h.publishSent("p 1", 4, "k");
      h.publishAcked("p 1", 4); // never delivered: lost
    }
    for (History h : new History[] {consumers, together}) {
      h.delivered("c", "p 1", 2, binary, false, false);
      h.delivered("c", "p 1", 1, "k", false, true);
      h.delivered("c", "p 1", 1, "k", true, false);
      h.delivered("c", "p 1", 3, "k", false, false);
    }
    History read = new History();
    read.read(new StringReader(text(consumers)));
    read.read(new StringReader(text(producers)));
    assertEquals(together.size(), read.size());
    assertEquals(together.deliveries(), read.deliveries());
    HistoryChecker.Verdict want = HistoryChecker.check(together);
    HistoryChecker.Verdict got = HistoryChecker.check(read);
    assertEquals(1, want.lost());
    assertEquals(want.toString(), got.toString());
  }

  @Test
  void textThatIsNotAHistoryIsRefusedByLine() {
    History h = new History();
    var e = assertThrows(IllegalArgumentException.class,
        () -> h.read(new StringReader("something else\n")));
    assertTrue(e.getMessage().contains("not a PLB history"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> h.read(new StringReader(
        History.TEXT_HEADER + "\nA =p 1\nX =p 2\n")));
    assertTrue(e.getMessage().contains("history line 3"), e.getMessage());
    assertEquals(1, h.size(), "the lines before the bad one were read");
  }
}
