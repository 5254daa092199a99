package io.plb.core.keyspace;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RingTest {
  private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);
  private static final long TOP = -1L; // 2^64 - 1
  private static final long MID = Long.MIN_VALUE; // 2^63

  // ---- parse ----

  @Test
  void slicesOfARange() {
    assertEquals(0L, Ring.sliceStart(0));
    assertEquals(1L << 52, Ring.sliceStart(1));
    assertEquals(0xfff0000000000000L, Ring.sliceStart(Ring.SLICES - 1));
    assertEquals(Ring.RING_END, Ring.sliceStart(Ring.SLICES), "past the last slice: the ring end");
    assertEquals(Ring.SLICES - 1, Ring.lastSliceOf(Ring.RING_END));
    assertEquals(0, Ring.lastSliceOf(Ring.sliceStart(1)), "an end on a boundary excludes it");
    assertEquals(1, Ring.lastSliceOf(Ring.sliceStart(1) + 1));
    for (int s = 0; s < Ring.SLICES; s++) {
      assertEquals(s, Ring.sliceOf(Ring.sliceStart(s)));
      assertEquals(s, Ring.lastSliceOf(Ring.sliceStart(s + 1)));
    }
  }

  @Test
  void parsesHex() {
    assertEquals(0L, Ring.parse("0x0"));
    assertEquals(0xABCDL, Ring.parse("0xabcd"));
    assertEquals(0xABCDL, Ring.parse("0XABCD"));
    assertEquals(0xABCDL, Ring.parse("0xAbCd"));
    assertEquals(MID, Ring.parse("0x8000000000000000"));
    assertEquals(TOP, Ring.parse("0xffffffffffffffff"));
    assertEquals(1L, Ring.parse("0x0000000000000000000001"));
  }

  @Test
  void parsesUnsignedDecimal() {
    assertEquals(0L, Ring.parse("0"));
    assertEquals(12345L, Ring.parse("12345"));
    assertEquals(Long.MAX_VALUE, Ring.parse("9223372036854775807"));
    assertEquals(MID, Ring.parse("9223372036854775808"));
    assertEquals(TOP, Ring.parse("18446744073709551615"));
  }

  @Test
  void ignoresUnderscoresAndSurroundingWhitespace() {
    assertEquals(0x8000_0000_0000_0000L, Ring.parse("0x8000_0000_0000_0000"));
    assertEquals(1_000_000L, Ring.parse("1_000_000"));
    assertEquals(42L, Ring.parse("  42 \t"));
    assertEquals(0xFFL, Ring.parse(" 0xff\n"));
  }

  @Test
  void roundTripsThroughHexAndDecimal() {
    Random rnd = new Random(7);
    long[] edges = {0L, 1L, Long.MAX_VALUE, MID, MID + 1, TOP - 1, TOP};
    for (long p : edges) {
      assertEquals(p, Ring.parse(Ring.hex(p)), Ring.hex(p));
      assertEquals(p, Ring.parse(Long.toUnsignedString(p)), Long.toUnsignedString(p));
    }
    for (int i = 0; i < 1000; i++) {
      long p = rnd.nextLong();
      assertEquals(p, Ring.parse(Ring.hex(p)), "seed 7, " + Ring.hex(p));
      assertEquals(p, Ring.parse(Long.toUnsignedString(p)), "seed 7, " + Long.toUnsignedString(p));
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"18446744073709551616", "0x10000000000000000", "0x1_0000_0000_0000_0000",
      "99999999999999999999999", "-1", "-18446744073709551615", "0x-1"})
  void rejectsValuesOutsideTheRing(String text) {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Ring.parse(text));
    assertTrue(e.getMessage().contains(text), e.getMessage());
    assertTrue(e.getMessage().contains("outside the ring"), e.getMessage());
  }

  @ParameterizedTest
  @ValueSource(strings = {"", " ", "_", "0x", "0x_", "abc", "0xg1", "12a", "1.5", "1e3", "0b101",
      "x10", "0x 10", "1 2", "--1", "0x0x1", "ten"})
  void rejectsGarbageWithAMessageNamingTheText(String text) {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Ring.parse(text));
    assertTrue(e.getMessage().contains("'" + text + "'"), e.getMessage());
    assertTrue(e.getMessage().contains("not a hash position"), e.getMessage());
  }

  // ---- formatting ----

  @Test
  void hexIsEighteenCharactersLowercase() {
    assertEquals("0x0000000000000000", Ring.hex(0L));
    assertEquals("0x0000000000000001", Ring.hex(1L));
    assertEquals("0x00000000deadbeef", Ring.hex(0xDEADBEEFL));
    assertEquals("0x7fffffffffffffff", Ring.hex(Long.MAX_VALUE));
    assertEquals("0x8000000000000000", Ring.hex(MID));
    assertEquals("0xffffffffffffffff", Ring.hex(TOP));
    Random rnd = new Random(11);
    for (int i = 0; i < 1000; i++) {
      String h = Ring.hex(rnd.nextLong());
      assertEquals(18, h.length(), h);
      assertTrue(h.matches("0x[0-9a-f]{16}"), h);
    }
  }

  @Test
  void hexEndWritesTheRingEndAsTwoToThe64() {
    assertEquals("0x10000000000000000", Ring.hexEnd(Ring.RING_END));
    assertEquals("0x0000000000000001", Ring.hexEnd(1L));
    assertEquals("0xffffffffffffffff", Ring.hexEnd(TOP));
    assertEquals(TWO_64, new BigInteger(Ring.hexEnd(0L).substring(2), 16));
  }

  @Test
  void formatRange() {
    assertEquals("[0x0000000000000000, 0x10000000000000000)", Ring.formatRange(0L, 0L));
    assertEquals("[0x8000000000000000, 0xffffffffffffffff)", Ring.formatRange(MID, TOP));
  }

  // ---- contains / strictlyInside ----

  @Test
  void containsIsHalfOpen() {
    assertTrue(Ring.contains(10, 20, 10));
    assertTrue(Ring.contains(10, 20, 19));
    assertFalse(Ring.contains(10, 20, 20));
    assertFalse(Ring.contains(10, 20, 9));
    assertFalse(Ring.contains(10, 20, TOP));
  }

  @Test
  void containsUsesUnsignedOrder() {
    // [2^63, 2^63 + 10): signed order would put these below 0
    assertTrue(Ring.contains(MID, MID + 10, MID));
    assertTrue(Ring.contains(MID, MID + 10, MID + 9));
    assertFalse(Ring.contains(MID, MID + 10, MID + 10));
    assertFalse(Ring.contains(MID, MID + 10, 0L));
    assertFalse(Ring.contains(MID, MID + 10, Long.MAX_VALUE));
    assertFalse(Ring.contains(0L, MID, MID));
    assertTrue(Ring.contains(0L, MID, Long.MAX_VALUE));
  }

  @Test
  void containsWithEndAtRingEnd() {
    assertTrue(Ring.contains(0L, Ring.RING_END, 0L));
    assertTrue(Ring.contains(0L, Ring.RING_END, TOP));
    assertTrue(Ring.contains(0L, Ring.RING_END, MID));
    assertTrue(Ring.contains(MID, Ring.RING_END, TOP));
    assertTrue(Ring.contains(MID, Ring.RING_END, MID));
    assertFalse(Ring.contains(MID, Ring.RING_END, MID - 1));
    assertFalse(Ring.contains(MID, Ring.RING_END, 0L));
    assertTrue(Ring.contains(TOP, Ring.RING_END, TOP));
    assertFalse(Ring.contains(TOP, Ring.RING_END, TOP - 1));
    assertFalse(Ring.contains(TOP, Ring.RING_END, 0L));
  }

  @Test
  void strictlyInsideExcludesBothEdges() {
    assertFalse(Ring.strictlyInside(10, 20, 10));
    assertTrue(Ring.strictlyInside(10, 20, 11));
    assertTrue(Ring.strictlyInside(10, 20, 19));
    assertFalse(Ring.strictlyInside(10, 20, 20));
    assertFalse(Ring.strictlyInside(10, 20, 5));
    assertFalse(Ring.strictlyInside(10, 11, 10)); // a width-1 range cannot be split
    assertFalse(Ring.strictlyInside(10, 11, 11));
    assertTrue(Ring.strictlyInside(MID, MID + 2, MID + 1));
    assertFalse(Ring.strictlyInside(MID - 2, MID, MID));
  }

  @Test
  void strictlyInsideWithEndAtRingEnd() {
    assertFalse(Ring.strictlyInside(0L, Ring.RING_END, 0L));
    assertTrue(Ring.strictlyInside(0L, Ring.RING_END, 1L));
    assertTrue(Ring.strictlyInside(0L, Ring.RING_END, MID));
    assertTrue(Ring.strictlyInside(0L, Ring.RING_END, TOP)); // 2^64-1 < 2^64
    assertFalse(Ring.strictlyInside(MID, Ring.RING_END, MID));
    assertFalse(Ring.strictlyInside(MID, Ring.RING_END, 5L));
    assertTrue(Ring.strictlyInside(MID, Ring.RING_END, TOP));
    assertFalse(Ring.strictlyInside(TOP, Ring.RING_END, TOP)); // [2^64-1, 2^64) has width 1
    assertFalse(Ring.strictlyInside(TOP, Ring.RING_END, 0L));
  }

  @Test
  void containsAndStrictlyInsideAgreeWithBigIntegerArithmetic() {
    Random rnd = new Random(13);
    for (int i = 0; i < 20_000; i++) {
      long a = edgy(rnd);
      long b = edgy(rnd);
      long start = Long.compareUnsigned(a, b) <= 0 ? a : b;
      long end = Long.compareUnsigned(a, b) <= 0 ? b : a;
      if (end == start && end != 0) {
        continue;
      }
      if (rnd.nextInt(5) == 0) {
        end = Ring.RING_END;
      }
      long h = rnd.nextBoolean() ? edgy(rnd) : start + rnd.nextInt(5) - 2;
      BigInteger s = Ring.unsigned(start);
      BigInteger e = end == Ring.RING_END ? TWO_64 : Ring.unsigned(end);
      if (e.compareTo(s) <= 0) {
        continue;
      }
      BigInteger x = Ring.unsigned(h);
      String what = "seed 13: " + Ring.formatRange(start, end) + " " + Ring.hex(h);
      assertEquals(x.compareTo(s) >= 0 && x.compareTo(e) < 0, Ring.contains(start, end, h), what);
      assertEquals(x.compareTo(s) > 0 && x.compareTo(e) < 0, Ring.strictlyInside(start, end, h),
          what);
    }
  }

  private static long edgy(Random rnd) {
    switch (rnd.nextInt(6)) {
      case 0:
        return rnd.nextInt(4);
      case 1:
        return -1L - rnd.nextInt(4);
      case 2:
        return MID + rnd.nextInt(7) - 3;
      default:
        return rnd.nextLong();
    }
  }

  // ---- slices ----

  @Test
  void sliceOf() {
    assertEquals(4096, Ring.SLICES);
    assertEquals(0, Ring.sliceOf(0L));
    assertEquals(0, Ring.sliceOf(0x000F_FFFF_FFFF_FFFFL));
    assertEquals(1, Ring.sliceOf(0x0010_0000_0000_0000L));
    assertEquals(2047, Ring.sliceOf(Long.MAX_VALUE));
    assertEquals(2048, Ring.sliceOf(MID));
    assertEquals(4095, Ring.sliceOf(TOP));
    assertEquals(4095, Ring.sliceOf(0xFFF0_0000_0000_0000L));
    assertEquals(4094, Ring.sliceOf(0xFFEF_FFFF_FFFF_FFFFL));
    Random rnd = new Random(17);
    for (int i = 0; i < 10_000; i++) {
      long h = rnd.nextLong();
      int s = Ring.sliceOf(h);
      assertTrue(s >= 0 && s < Ring.SLICES, "seed 17: " + Ring.hex(h));
      assertEquals(Ring.unsigned(h).shiftRight(52).intValueExact(), s, "seed 17: " + Ring.hex(h));
    }
  }

  // ---- width / unsigned ----

  @Test
  void width() {
    assertEquals(0x1p64, Ring.width(0L, Ring.RING_END));
    assertEquals(0x1p63, Ring.width(MID, Ring.RING_END));
    assertEquals(0x1p63, Ring.width(0L, MID));
    assertEquals(1.0, Ring.width(10L, 11L));
    assertEquals(1000.0, Ring.width(0L, 1000L));
    assertEquals(0x1p62, Ring.width(0xC000_0000_0000_0000L, Ring.RING_END));
    assertEquals(0x1p62, Ring.width(0x4000_0000_0000_0000L, MID));
  }

  /**
   * A range holding a single hash (an isolated hot key, DESIGN §2) is one wide wherever it lies.
   * The width of a narrow range must not be lost to cancellation when both ends are large.
   */
  @Test
  void widthOfNarrowRangesHighOnTheRingIsExact() {
    assertEquals(1.0, Ring.width(TOP, Ring.RING_END), "[2^64-1, 2^64)");
    assertEquals(1.0, Ring.width(Long.MAX_VALUE, MID), "[2^63-1, 2^63)");
    assertEquals(1000.0, Ring.width(MID, MID + 1000), "[2^63, 2^63+1000)");
    assertEquals(1.0, Ring.width((1L << 53) + 1, (1L << 53) + 2), "[2^53+1, 2^53+2)");
    Random rnd = new Random(29);
    for (int i = 0; i < 1000; i++) {
      long start = rnd.nextLong();
      int w = 1 + rnd.nextInt(1 << 20);
      long end = start + w;
      if (Long.compareUnsigned(end, start) < 0) {
        continue;
      }
      assertTrue(Ring.width(start, end) > 0, "seed 29: " + Ring.formatRange(start, end));
      assertEquals(w, Ring.width(start, end), "seed 29: " + Ring.formatRange(start, end));
    }
  }

  @Test
  void widthIsCloseToExactWidth() {
    Random rnd = new Random(19);
    for (int i = 0; i < 10_000; i++) {
      long a = rnd.nextLong();
      long b = rnd.nextLong();
      long start = Long.compareUnsigned(a, b) <= 0 ? a : b;
      long end = rnd.nextInt(4) == 0 ? Ring.RING_END : (Long.compareUnsigned(a, b) <= 0 ? b : a);
      BigInteger exact = (end == Ring.RING_END ? TWO_64 : Ring.unsigned(end))
          .subtract(Ring.unsigned(start));
      double w = Ring.width(start, end);
      // each end is rounded to a double once; the error is a few ulps of 2^64 at most
      assertEquals(exact.doubleValue(), w, 0x1p12, "seed 19: " + Ring.formatRange(start, end));
    }
  }

  @Test
  void unsignedAndUnsignedToDouble() {
    assertEquals(BigInteger.ZERO, Ring.unsigned(0L));
    assertEquals(TWO_64.subtract(BigInteger.ONE), Ring.unsigned(TOP));
    assertEquals(BigInteger.ONE.shiftLeft(63), Ring.unsigned(MID));
    assertEquals(0.0, Ring.unsignedToDouble(0L));
    assertEquals(1.0, Ring.unsignedToDouble(1L));
    assertEquals(0x1p63, Ring.unsignedToDouble(MID));
    assertEquals(0x1p64, Ring.unsignedToDouble(TOP));
    assertEquals((double) Long.MAX_VALUE, Ring.unsignedToDouble(Long.MAX_VALUE));
    Random rnd = new Random(23);
    for (int i = 0; i < 10_000; i++) {
      long p = rnd.nextLong();
      double exact = Ring.unsigned(p).doubleValue();
      assertEquals(exact, Ring.unsignedToDouble(p), Math.ulp(exact), "seed 23: " + Ring.hex(p));
      if (p >= 0 && p < (1L << 53)) {
        assertEquals((double) p, Ring.unsignedToDouble(p));
      }
    }
  }
}
