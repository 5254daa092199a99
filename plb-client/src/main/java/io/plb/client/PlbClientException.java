package io.plb.client;

import io.grpc.Status;
import io.plb.client.wire.GrpcErrors;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;

/**
 * A failed PLB call, typed by what went wrong so callers can catch what they can handle:
 * {@link InvalidArgument} and {@link FailedPrecondition} mean the request must change,
 * {@link NotFound} that it names something that does not exist, {@link Unavailable} that it may
 * succeed later or elsewhere.
 */
public class PlbClientException extends PlbException {
  private static final long serialVersionUID = 1L;

  protected PlbClientException(ErrorCode code, String message, Throwable cause) {
    super(code, message, cause);
  }

  /** Malformed input. */
  public static final class InvalidArgument extends PlbClientException {
    private static final long serialVersionUID = 1L;

    InvalidArgument(String message, Throwable cause) {
      super(ErrorCode.INVALID_ARGUMENT, message, cause);
    }
  }

  /** Well-formed input that is illegal in the current state. */
  public static final class FailedPrecondition extends PlbClientException {
    private static final long serialVersionUID = 1L;

    FailedPrecondition(String message, Throwable cause) {
      super(ErrorCode.FAILED_PRECONDITION, message, cause);
    }
  }

  /** The request names a server or range that does not exist. */
  public static final class NotFound extends PlbClientException {
    private static final long serialVersionUID = 1L;

    NotFound(String message, Throwable cause) {
      super(ErrorCode.NOT_FOUND, message, cause);
    }
  }

  /** No node could serve the request now (no leader, unreachable, timed out). */
  public static final class Unavailable extends PlbClientException {
    private static final long serialVersionUID = 1L;

    Unavailable(ErrorCode code, String message, Throwable cause) {
      super(code, message, cause);
    }
  }

  /** Anything else: a limit or a failure inside PLB. */
  public static final class Other extends PlbClientException {
    private static final long serialVersionUID = 1L;

    Other(ErrorCode code, String message, Throwable cause) {
      super(code, message, cause);
    }
  }

  /** The typed exception for a gRPC failure. */
  public static PlbClientException from(Throwable t) {
    if (t instanceof PlbClientException e) {
      return e;
    }
    Status status = Status.fromThrowable(t);
    ErrorCode code = GrpcErrors.fromGrpc(status.getCode());
    String message = status.getDescription() != null ? status.getDescription()
        : status.getCode() + (status.getCause() != null ? ": " + status.getCause() : "");
    return of(code, message, t);
  }

  public static PlbClientException of(ErrorCode code, String message, Throwable cause) {
    return switch (code) {
      case INVALID_ARGUMENT -> new InvalidArgument(message, cause);
      case FAILED_PRECONDITION -> new FailedPrecondition(message, cause);
      case NOT_FOUND -> new NotFound(message, cause);
      case UNAVAILABLE, DEADLINE_EXCEEDED -> new Unavailable(code, message, cause);
      default -> new Other(code, message, cause);
    };
  }
}
