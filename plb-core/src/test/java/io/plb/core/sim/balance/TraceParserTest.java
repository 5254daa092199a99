package io.plb.core.sim.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.keyspace.KeyHash;
import java.time.Instant;
import org.junit.jupiter.api.Test;

class TraceParserTest {
  private static long utc(String iso) {
    return Instant.parse(iso).toEpochMilli();
  }

  @Test
  void timestampsToTheMinuteSecondAndMillisecond() {
    assertEquals(utc("2001-01-01T05:01:00Z"), TraceParser.parseTimestamp("2001-01-01T05:01Z"));
    assertEquals(utc("2001-01-01T05:01:30Z"), TraceParser.parseTimestamp("2001-01-01T05:01:30Z"));
    assertEquals(utc("2001-01-01T05:01:30.250Z"),
        TraceParser.parseTimestamp("2001-01-01T05:01:30.250Z"));
    assertEquals(utc("2001-01-01T05:01:30.200Z"),
        TraceParser.parseTimestamp("2001-01-01T05:01:30.2Z"));
    assertEquals(utc("2001-01-01T05:01:30.123Z"),
        TraceParser.parseTimestamp("2001-01-01T05:01:30.123456789Z"), "sub-ms dropped");
    assertEquals(utc("2001-01-01T00:00:00Z"), TraceParser.parseTimestamp("2001-01-01"));
  }

  @Test
  void zonesAreHonouredAndNoZoneMeansUtc() {
    long t = utc("2001-03-04T10:20:00Z");
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T10:20"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T10:20:00"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T11:20+01:00"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T11:20:00+0100"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T05:20-05"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04T05:20:00.000-05:00"));
    assertEquals(t, TraceParser.parseTimestamp("2001-03-04 10:20z"));
  }

  @Test
  void epochMilliseconds() {
    assertEquals(978_325_260_000L, TraceParser.parseTimestamp("978325260000"));
    assertEquals(0L, TraceParser.parseTimestamp("0"));
  }

  @Test
  void badTimestampsAreRefusedWithTheText() {
    for (String bad : new String[] {"", "yesterday", "2001-13-01T00:00Z", "2001-02-30",
        "2001-01-01T24:00Z", "2001-01-01T10:60Z", "2001-01-01T10:00:61Z", "2001-01-01T10Z",
        "2001-01-01T10:00+25:00", "2001-01-01T10:00Q", "2001-1-1", "-5", "1.5",
        "2001-01-01T10:00:00.Z", "12345678901234567890"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> TraceParser.parseTimestamp(bad), bad);
      assertTrue(e.getMessage().contains("timestamp"), e.getMessage());
    }
  }

  @Test
  void rowsHeaderAndBlankLines() {
    TraceParser p = new TraceParser("t.csv");
    Trace.Builder b = new Trace.Builder("t");
    assertFalse(p.parseLine("ts,key,size", 1, b));
    assertTrue(p.parseLine("2001-01-01T05:01Z,ATL,1116", 2, b));
    assertFalse(p.parseLine("", 3, b));
    assertFalse(p.parseLine("   ", 4, b));
    assertTrue(p.parseLine("978325260000,ORD-LAX,0\r", 5, b));
    assertTrue(p.parseLine("2001-01-01T05:02:00.5Z, spaced key ,7", 6, b));
    Trace t = b.build(p.distinctKeys());
    assertEquals(3, t.size());
    assertEquals(utc("2001-01-01T05:01:00Z"), t.millis(0));
    assertEquals(KeyHash.hash("ATL"), t.hash(0));
    assertEquals(1116, t.bytes(0));
    assertEquals(KeyHash.hash("ORD-LAX"), t.hash(1));
    assertEquals(0, t.bytes(1));
    assertEquals(KeyHash.hash(" spaced key "), t.hash(2), "keys are taken verbatim");
    assertEquals(3, p.distinctKeys());
  }

  @Test
  void badRowsNameSourceAndLine() {
    TraceParser p = new TraceParser("flights.csv");
    Trace.Builder b = new Trace.Builder("t");
    assertBad(p, b, "ts,key,size", 7, "flights.csv:7:", "timestamp");
    assertBad(p, b, "2001-01-01T05:01Z,ATL", 8, "flights.csv:8:", "3 comma-separated");
    assertBad(p, b, "2001-01-01T05:01Z,ATL,1,2", 9, "flights.csv:9:", "3 comma-separated");
    assertBad(p, b, "2001-01-01T05:01Z,,1", 10, "flights.csv:10:", "empty key");
    assertBad(p, b, "2001-01-01T05:01Z,ATL,-1", 11, "flights.csv:11:", "size");
    assertBad(p, b, "2001-01-01T05:01Z,ATL,big", 12, "flights.csv:12:", "size");
    assertBad(p, b, "2001-01-01T05:01Z,ATL,99999999999", 13, "flights.csv:13:", "size");
    assertBad(p, b, "2001-01-01T05:01Z,ATL,1.5", 14, "flights.csv:14:", "size");
    assertBad(p, b, "2001-01-01T05:01Z," + "k".repeat(1025) + ",1", 15, "flights.csv:15:",
        "1024");
    assertBad(p, b, "noon,ATL,1", 16, "flights.csv:16:", "timestamp 'noon'");
    assertEquals(0, b.size(), "a bad row adds nothing");
    TraceFormatException e = assertThrows(TraceFormatException.class,
        () -> p.parseLine("x,y", 42, b));
    assertEquals("flights.csv", e.source());
    assertEquals(42, e.line());
  }

  private static void assertBad(TraceParser p, Trace.Builder b, String line, long n,
      String prefix, String mention) {
    TraceFormatException e = assertThrows(TraceFormatException.class,
        () -> p.parseLine(line, n, b), line);
    assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
    assertTrue(e.getMessage().contains(mention), e.getMessage());
  }
}
