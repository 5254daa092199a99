package io.plb.client.wire;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;

/**
 * The one mapping between PLB's {@link ErrorCode}s and gRPC status codes (DESIGN §10), and the
 * leader hint a follower attaches when it refuses a write.
 */
public final class GrpcErrors {
  /** Trailer with the leader's API address ({@code host:port}) on an UNAVAILABLE refusal. */
  public static final Metadata.Key<String> LEADER_ADDRESS =
      Metadata.Key.of("plb-leader-address", Metadata.ASCII_STRING_MARSHALLER);

  /** Trailer with the leader's node id. */
  public static final Metadata.Key<String> LEADER_ID =
      Metadata.Key.of("plb-leader-id", Metadata.ASCII_STRING_MARSHALLER);

  /**
   * Trailer set on a refusal by a node that is not the leader: the write was never proposed, so
   * sending it to another node is safe.
   */
  public static final Metadata.Key<String> NOT_LEADER =
      Metadata.Key.of("plb-not-leader", Metadata.ASCII_STRING_MARSHALLER);

  private GrpcErrors() {}

  public static Status.Code toGrpc(ErrorCode code) {
    return switch (code) {
      case INVALID_ARGUMENT -> Status.Code.INVALID_ARGUMENT;
      case FAILED_PRECONDITION -> Status.Code.FAILED_PRECONDITION;
      case NOT_FOUND -> Status.Code.NOT_FOUND;
      case RESOURCE_EXHAUSTED -> Status.Code.RESOURCE_EXHAUSTED;
      case UNAVAILABLE -> Status.Code.UNAVAILABLE;
      case DEADLINE_EXCEEDED -> Status.Code.DEADLINE_EXCEEDED;
      case INTERNAL -> Status.Code.INTERNAL;
    };
  }

  public static ErrorCode fromGrpc(Status.Code code) {
    return switch (code) {
      case INVALID_ARGUMENT, OUT_OF_RANGE -> ErrorCode.INVALID_ARGUMENT;
      case FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED -> ErrorCode.FAILED_PRECONDITION;
      case NOT_FOUND -> ErrorCode.NOT_FOUND;
      case RESOURCE_EXHAUSTED -> ErrorCode.RESOURCE_EXHAUSTED;
      case UNAVAILABLE, CANCELLED, UNKNOWN -> ErrorCode.UNAVAILABLE;
      case DEADLINE_EXCEEDED -> ErrorCode.DEADLINE_EXCEEDED;
      default -> ErrorCode.INTERNAL;
    };
  }

  /** The gRPC form of a PLB failure. */
  public static StatusRuntimeException toStatus(PlbException e) {
    return Status.fromCode(toGrpc(e.code())).withDescription(e.getMessage()).asRuntimeException();
  }

  /** An UNAVAILABLE refusal that tells the caller where the leader is (when known). */
  public static StatusRuntimeException notLeader(
      String selfId, String leaderId, String leaderAddress) {
    Metadata trailers = new Metadata();
    trailers.put(NOT_LEADER, selfId);
    String message;
    if (leaderId == null || leaderId.isEmpty()) {
      message = "node " + selfId + " is not the leader and no leader is known yet; retry shortly";
    } else {
      message = "node " + selfId + " is not the leader; the leader is " + leaderId + " at "
          + leaderAddress;
      trailers.put(LEADER_ID, leaderId);
      trailers.put(LEADER_ADDRESS, leaderAddress);
    }
    return Status.UNAVAILABLE.withDescription(message).asRuntimeException(trailers);
  }

  /** Whether a failure is a not-leader refusal: the request was not proposed. */
  public static boolean isNotLeader(Throwable t) {
    Metadata trailers = Status.trailersFromThrowable(t);
    return trailers != null && trailers.containsKey(NOT_LEADER);
  }

  /** The leader address a refusal carries, or null. */
  public static String leaderHint(Throwable t) {
    Metadata trailers = Status.trailersFromThrowable(t);
    return trailers == null ? null : trailers.get(LEADER_ADDRESS);
  }
}
