package io.plb.core.keyspace;

import java.math.BigInteger;

/**
 * Arithmetic and text forms for positions on the unsigned 64-bit hash ring (DESIGN §2).
 *
 * <p>A position is a {@code long} read as unsigned. A range is half-open {@code [start, end)}; the
 * end of the ring, 2^64, cannot be held in a {@code long}, so it is written {@link #RING_END} (0):
 * a range can only end at 0 if it is the last one, because every range is non-empty.
 */
public final class Ring {
  /** The exclusive end of the ring, 2^64, as it is stored in a range's {@code end}. */
  public static final long RING_END = 0L;

  /** Slices are the top {@value #SLICE_BITS} bits of the hash: a fixed grid of 4096 parts. */
  public static final int SLICE_BITS = 12;

  public static final int SLICES = 1 << SLICE_BITS;

  private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);

  private Ring() {}

  /** Whether {@code hash} lies in {@code [start, end)} (end 0 meaning 2^64). */
  public static boolean contains(long start, long end, long hash) {
    return Long.compareUnsigned(hash, start) >= 0
        && (end == RING_END || Long.compareUnsigned(hash, end) < 0);
  }

  /** Whether {@code point} lies strictly inside {@code (start, end)}: a valid split point. */
  public static boolean strictlyInside(long start, long end, long point) {
    return Long.compareUnsigned(point, start) > 0
        && (end == RING_END || Long.compareUnsigned(point, end) < 0);
  }

  /** The slice (0..4095) a hash falls in. */
  public static int sliceOf(long hash) {
    return (int) (hash >>> (64 - SLICE_BITS));
  }

  /** The last slice a range ending at {@code end} (exclusive; {@link #RING_END}) reaches into. */
  public static int lastSliceOf(long end) {
    return end == RING_END ? SLICES - 1 : sliceOf(end - 1);
  }

  /** The first hash of slice {@code slice} (0..4096; 4096, past the last, is {@link #RING_END}). */
  public static long sliceStart(int slice) {
    return slice >= SLICES ? RING_END : (long) slice << (64 - SLICE_BITS);
  }

  /** A position as 18-character hex, {@code 0x0123456789abcdef}; the form the CLI prints. */
  public static String hex(long position) {
    String digits = Long.toHexString(position);
    return "0x" + "0".repeat(16 - digits.length()) + digits;
  }

  /** A range end as hex; the end of the ring prints as {@code 0x10000000000000000}. */
  public static String hexEnd(long end) {
    return end == RING_END ? "0x10000000000000000" : hex(end);
  }

  /** {@code [0x..., 0x...)}: how a range is shown to people. */
  public static String formatRange(long start, long end) {
    return "[" + hex(start) + ", " + hexEnd(end) + ")";
  }

  /**
   * Parses a ring position written as {@code 0x}-prefixed hex or as an unsigned decimal number.
   *
   * @throws IllegalArgumentException with a message that names the text, when it is not one
   */
  public static long parse(String text) {
    String t = text.strip().replace("_", "");
    try {
      BigInteger value;
      if (t.startsWith("0x") || t.startsWith("0X")) {
        value = new BigInteger(t.substring(2), 16);
      } else {
        value = new BigInteger(t, 10);
      }
      if (value.signum() < 0 || value.compareTo(TWO_64) >= 0) {
        throw new IllegalArgumentException(
            "hash position '" + text + "' is outside the ring [0, 2^64)");
      }
      return value.longValue();
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "'" + text + "' is not a hash position (use 0x-prefixed hex or unsigned decimal)");
    }
  }

  /** The unsigned value of a position as a BigInteger (for arithmetic in tests and tools). */
  public static BigInteger unsigned(long position) {
    return new BigInteger(Long.toUnsignedString(position));
  }

  /** The width of {@code [start, end)} as a double (2^64 for the whole ring). */
  public static double width(long start, long end) {
    long w = end - start; // exact modulo 2^64; 0 only for the whole ring
    return w == 0 ? 0x1p64 : unsignedToDouble(w);
  }

  /** An unsigned position as a double. */
  public static double unsignedToDouble(long position) {
    double d = (double) (position >>> 1) * 2.0;
    return d + (position & 1L);
  }
}
