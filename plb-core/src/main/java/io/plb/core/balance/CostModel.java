package io.plb.core.balance;

/**
 * The cost of traffic (DESIGN §8): a message costs {@code perMessage + perByte × size}. A server's
 * capacity and every predicted rate the planner sees are in these cost units per second.
 *
 * <p>Immutable and thread-safe.
 *
 * @param perMessage cost of one message regardless of its size; finite, ≥ 0
 * @param perByte cost of one byte of payload; finite, ≥ 0 (not both zero)
 */
public record CostModel(double perMessage, double perByte) {
  /** One unit per message plus one per KiB: a 1 KiB message costs 2. */
  public static final CostModel DEFAULT = new CostModel(1.0, 1.0 / 1024.0);

  public CostModel {
    if (!(perMessage >= 0) || Double.isInfinite(perMessage)) {
      throw new IllegalArgumentException(
          "cost.perMessage must be a finite number >= 0 (got " + perMessage + ")");
    }
    if (!(perByte >= 0) || Double.isInfinite(perByte)) {
      throw new IllegalArgumentException(
          "cost.perByte must be a finite number >= 0 (got " + perByte + ")");
    }
    if (perMessage == 0 && perByte == 0) {
      throw new IllegalArgumentException(
          "cost.perMessage and cost.perByte are both 0: every message would be free");
    }
  }

  /** The cost of {@code messages} messages carrying {@code bytes} bytes of payload in total. */
  public double cost(double messages, double bytes) {
    return perMessage * messages + perByte * bytes;
  }

  /** The cost of one message of {@code size} bytes. */
  public double costOf(int size) {
    return perMessage + perByte * size;
  }
}
