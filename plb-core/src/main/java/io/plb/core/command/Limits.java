package io.plb.core.command;

import io.plb.core.error.PlbException;
import java.util.regex.Pattern;

/** Input limits and the field checks every API shares (DESIGN §10). Stateless. */
public final class Limits {
  /** Ordering keys are 1..1024 bytes (DESIGN §2). */
  public static final int MAX_KEY_BYTES = 1024;
  /**
   * Most queue servers a publish item names as maybe having stored it (an unknown outcome at
   * each). A message flagged by two distinct servers is flagged wherever it lands, so a longer
   * list would tell a server nothing more.
   */
  public static final int MAX_MAYBE_STORED_AT = 16;

  public static final int MAX_SERVER_ID_CHARS = 64;

  public static final int MAX_ADDRESS_CHARS = 255;

  /** A producer's id is 1..256 characters and does not start with NUL. */
  public static final int MAX_PRODUCER_CHARS = 256;

  /**
   * The most pieces one split into equal pieces may make ({@code map.maxSplitPieces} is at most
   * this). It bounds the largest delta a command produces: this many ranges, each at most
   * ~110 bytes on the wire (two 64-character server ids at most, no handover), well under the
   * 4 MiB a map message may take.
   */
  public static final int MAX_SPLIT_PIECES = 4096;

  private static final Pattern ADDRESS = Pattern.compile("[\\x21-\\x7e]+:[0-9]{1,5}");

  private static final Pattern SERVER_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");

  private Limits() {}

  /** @throws PlbException INVALID_ARGUMENT when the key is empty or longer than 1 KiB */
  public static void checkKey(byte[] key) {
    if (key == null || key.length == 0) {
      throw PlbException.invalid("key is empty: an ordering key has 1 to 1024 bytes");
    }
    if (key.length > MAX_KEY_BYTES) {
      throw PlbException.invalid(
          "key has " + key.length + " bytes; the limit is " + MAX_KEY_BYTES);
    }
  }

  /** @throws PlbException INVALID_ARGUMENT when the id is missing or malformed */
  public static void checkServerId(String id) {
    if (id == null || id.isEmpty()) {
      throw PlbException.invalid("server id is missing");
    }
    if (id.length() > MAX_SERVER_ID_CHARS) {
      throw PlbException.invalid(
          "server id '" + id + "' is longer than " + MAX_SERVER_ID_CHARS + " characters");
    }
    if (!SERVER_ID.matcher(id).matches()) {
      throw PlbException.invalid(
          "server id '" + id + "' may only hold letters, digits, '.', '_' and '-', "
              + "starting with a letter or digit");
    }
  }

  /** Why {@code id} is not a producer id, or null when it is one. */
  public static String producerIdProblem(String id) {
    if (id == null || id.isEmpty()) {
      return "producer must be named";
    }
    if (id.length() > MAX_PRODUCER_CHARS || id.charAt(0) == 0) {
      return "producer id is longer than " + MAX_PRODUCER_CHARS + " characters or starts with NUL";
    }
    return null;
  }

  /** @throws PlbException INVALID_ARGUMENT unless the address is {@code host:port} */
  public static void checkAddress(String address) {
    if (address == null || address.isEmpty()) {
      throw PlbException.invalid("server address is missing (expected host:port)");
    }
    if (address.length() > MAX_ADDRESS_CHARS) {
      throw PlbException.invalid("server address is longer than " + MAX_ADDRESS_CHARS);
    }
    if (!ADDRESS.matcher(address).matches()) {
      throw PlbException.invalid(
          "server address '" + address + "' is not host:port (a host without spaces, a port of "
              + "digits)");
    }
    int port = Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) {
      throw PlbException.invalid(
          "server address '" + address + "' has port " + port + ", outside 1..65535");
    }
  }

  /** @throws PlbException INVALID_ARGUMENT unless capacity is a finite number above 0 */
  public static void checkCapacity(double capacity) {
    if (!(capacity > 0) || Double.isInfinite(capacity)) {
      throw PlbException.invalid("capacity must be a finite number > 0, got " + capacity);
    }
  }
}
