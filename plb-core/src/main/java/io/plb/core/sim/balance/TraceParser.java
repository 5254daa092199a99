package io.plb.core.sim.balance;

import io.plb.core.keyspace.KeyHash;
import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.util.HashMap;
import java.util.Map;

/**
 * Parses the rows of a load trace: CSV {@code ts,key,size}, one event per line.
 *
 * <ul>
 *   <li>{@code ts}: ISO-8601 date-time to the minute, second or fraction of a second
 *       ({@code 2001-01-01T05:01Z}, {@code 2001-01-01T05:01:30.250+01:00}), with {@code Z}, a
 *       {@code ±hh:mm}, {@code ±hhmm} or {@code ±hh} offset, or no zone at all — a time without a
 *       zone is read as UTC; or a whole number of milliseconds since 1970-01-01T00:00Z. Fractions
 *       below a millisecond are dropped.
 *   <li>{@code key}: the ordering key, 1..1024 bytes of UTF-8, placed on the ring by {@link KeyHash}.
 *   <li>{@code size}: the message size in bytes, a whole number 0..2^31-1.
 * </ul>
 *
 * <p>A first line {@code ts,key,size} is a header and is skipped; blank lines are skipped. Any
 * other row that does not parse is a {@link TraceFormatException} naming the source and line.
 *
 * <p>Not thread-safe (it caches key hashes); one parser per trace being read. Pure: no I/O.
 */
public final class TraceParser {
  /** The longest key PLB accepts (DESIGN §2): one limit for traces, producers and servers. */
  public static final int MAX_KEY_BYTES = io.plb.core.command.Limits.MAX_KEY_BYTES;

  private final String source;
  private final Map<String, Long> hashes = new HashMap<>();

  public TraceParser(String source) {
    this.source = source;
  }

  /**
   * Parses one line and adds its event to {@code sink}.
   *
   * @param line the text of the line, without its line terminator (a trailing CR is ignored)
   * @param lineNumber its 1-based number, for error messages
   * @return whether the line held an event (false for the header and blank lines)
   * @throws TraceFormatException when the line is not a valid row
   */
  public boolean parseLine(String line, long lineNumber, Trace.Builder sink) {
    String text = line.endsWith("\r") ? line.substring(0, line.length() - 1) : line;
    if (text.isBlank()) {
      return false;
    }
    if (lineNumber == 1 && text.strip().equalsIgnoreCase("ts,key,size")) {
      return false;
    }
    int c1 = text.indexOf(',');
    int c2 = c1 < 0 ? -1 : text.indexOf(',', c1 + 1);
    if (c1 < 0 || c2 < 0 || text.indexOf(',', c2 + 1) >= 0) {
      throw error(lineNumber, "expected 3 comma-separated fields ts,key,size, got '"
          + abbreviate(text) + "'");
    }
    String ts = text.substring(0, c1).strip();
    String key = text.substring(c1 + 1, c2);
    String size = text.substring(c2 + 1).strip();
    long millis;
    try {
      millis = parseTimestamp(ts);
    } catch (IllegalArgumentException e) {
      throw error(lineNumber, e.getMessage());
    }
    if (key.isEmpty()) {
      throw error(lineNumber, "empty key");
    }
    Long hash = hashes.get(key);
    if (hash == null) {
      byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
      if (bytes.length > MAX_KEY_BYTES) {
        throw error(lineNumber, "key of " + bytes.length + " bytes is longer than "
            + MAX_KEY_BYTES);
      }
      hash = KeyHash.hash(bytes);
      hashes.put(key, hash);
    }
    int bytes;
    try {
      if (size.isEmpty() || size.charAt(0) == '+' || size.charAt(0) == '-') {
        throw new NumberFormatException();
      }
      bytes = Integer.parseInt(size);
    } catch (NumberFormatException e) {
      throw error(lineNumber, "size '" + abbreviate(size)
          + "' is not a whole number of bytes 0.." + Integer.MAX_VALUE);
    }
    sink.add(millis, hash, bytes);
    return true;
  }

  /** The number of distinct keys seen so far. */
  public int distinctKeys() {
    return hashes.size();
  }

  private TraceFormatException error(long lineNumber, String problem) {
    return new TraceFormatException(source, lineNumber, problem);
  }

  /**
   * A timestamp as milliseconds since the epoch (see the class comment for the forms).
   *
   * @throws IllegalArgumentException naming the text, when it is none of the accepted forms
   */
  public static long parseTimestamp(String text) {
    String t = text.strip();
    if (t.isEmpty()) {
      throw bad(text);
    }
    if (allDigits(t, 0, t.length())) {
      if (t.length() > 18) {
        throw new IllegalArgumentException("timestamp '" + text
            + "' is too large for epoch milliseconds");
      }
      return Long.parseLong(t);
    }
    // yyyy-MM-dd[Thh:mm[:ss[.fff...]]][zone]
    if (t.length() < 10 || t.charAt(4) != '-' || t.charAt(7) != '-'
        || !allDigits(t, 0, 4) || !allDigits(t, 5, 7) || !allDigits(t, 8, 10)) {
      throw bad(text);
    }
    int year = num(t, 0, 4);
    int month = num(t, 5, 7);
    int day = num(t, 8, 10);
    long epochDay;
    try {
      epochDay = LocalDate.of(year, month, day).toEpochDay();
    } catch (DateTimeException e) {
      throw new IllegalArgumentException("timestamp '" + text + "' is not a valid date ("
          + e.getMessage() + ")");
    }
    int p = 10;
    long millisOfDay = 0;
    if (p < t.length() && (t.charAt(p) == 'T' || t.charAt(p) == 't' || t.charAt(p) == ' ')) {
      p++;
      if (p + 5 > t.length() || !allDigits(t, p, p + 2) || t.charAt(p + 2) != ':'
          || !allDigits(t, p + 3, p + 5)) {
        throw bad(text);
      }
      int hour = num(t, p, p + 2);
      int minute = num(t, p + 3, p + 5);
      p += 5;
      int second = 0;
      int millis = 0;
      if (p < t.length() && t.charAt(p) == ':') {
        if (p + 3 > t.length() || !allDigits(t, p + 1, p + 3)) {
          throw bad(text);
        }
        second = num(t, p + 1, p + 3);
        p += 3;
        if (p < t.length() && (t.charAt(p) == '.' || t.charAt(p) == ',')) {
          int q = p + 1;
          while (q < t.length() && Character.isDigit(t.charAt(q))) {
            q++;
          }
          if (q == p + 1 || q - p - 1 > 9) {
            throw bad(text);
          }
          String frac = (t.substring(p + 1, q) + "00").substring(0, 3);
          millis = Integer.parseInt(frac);
          p = q;
        }
      }
      if (hour > 23 || minute > 59 || second > 59) {
        throw new IllegalArgumentException("timestamp '" + text + "' has a time of day out of range");
      }
      millisOfDay = ((hour * 60L + minute) * 60L + second) * 1000L + millis;
    }
    long offsetMillis = 0;
    if (p < t.length()) {
      char z = t.charAt(p);
      if ((z == 'Z' || z == 'z') && p + 1 == t.length()) {
        offsetMillis = 0;
      } else if (z == '+' || z == '-') {
        String off = t.substring(p + 1);
        int oh;
        int om;
        if (off.length() == 2 && allDigits(off, 0, 2)) {
          oh = num(off, 0, 2);
          om = 0;
        } else if (off.length() == 4 && allDigits(off, 0, 4)) {
          oh = num(off, 0, 2);
          om = num(off, 2, 4);
        } else if (off.length() == 5 && off.charAt(2) == ':' && allDigits(off, 0, 2)
            && allDigits(off, 3, 5)) {
          oh = num(off, 0, 2);
          om = num(off, 3, 5);
        } else {
          throw bad(text);
        }
        if (oh > 18 || om > 59) {
          throw new IllegalArgumentException("timestamp '" + text + "' has a zone offset out of range");
        }
        offsetMillis = (z == '+' ? 1 : -1) * (oh * 60L + om) * 60_000L;
      } else {
        throw bad(text);
      }
    }
    return epochDay * 86_400_000L + millisOfDay - offsetMillis;
  }

  private static IllegalArgumentException bad(String text) {
    return new IllegalArgumentException("timestamp '" + abbreviate(text) + "' is neither "
        + "ISO-8601 (2001-01-01T05:01Z, 2001-01-01T05:01:30.250+01:00, zone optional: UTC) "
        + "nor epoch milliseconds");
  }

  private static boolean allDigits(String s, int from, int to) {
    if (from >= to) {
      return false;
    }
    for (int i = from; i < to; i++) {
      char c = s.charAt(i);
      if (c < '0' || c > '9') {
        return false;
      }
    }
    return true;
  }

  private static int num(String s, int from, int to) {
    int v = 0;
    for (int i = from; i < to; i++) {
      v = v * 10 + (s.charAt(i) - '0');
    }
    return v;
  }

  private static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }
}
