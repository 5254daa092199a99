package io.plb.core.sim.balance;

/**
 * A trace row that cannot be read. The message names the source and the line
 * ({@code flights.csv.gz:17: ...}) so the bad row can be found and fixed.
 */
public final class TraceFormatException extends IllegalArgumentException {
  private final String source;
  private final long line;

  public TraceFormatException(String source, long line, String problem) {
    super(source + ":" + line + ": " + problem);
    this.source = source;
    this.line = line;
  }

  /** The file (or other source name) the row came from. */
  public String source() {
    return source;
  }

  /** The 1-based line number of the bad row. */
  public long line() {
    return line;
  }
}
