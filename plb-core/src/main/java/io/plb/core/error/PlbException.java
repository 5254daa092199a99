package io.plb.core.error;

/** A failure with a code from PLB's error taxonomy and a message that says what is wrong. */
public class PlbException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final ErrorCode code;

  public PlbException(ErrorCode code, String message) {
    super(message);
    this.code = code;
  }

  public PlbException(ErrorCode code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }

  public static PlbException invalid(String message) {
    return new PlbException(ErrorCode.INVALID_ARGUMENT, message);
  }

  public static PlbException precondition(String message) {
    return new PlbException(ErrorCode.FAILED_PRECONDITION, message);
  }

  public static PlbException notFound(String message) {
    return new PlbException(ErrorCode.NOT_FOUND, message);
  }
}
