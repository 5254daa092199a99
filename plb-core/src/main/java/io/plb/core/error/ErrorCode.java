package io.plb.core.error;

/**
 * PLB's error taxonomy (DESIGN §10). Each code maps to exactly one gRPC status code at the API
 * edge; the core never sees gRPC types.
 */
public enum ErrorCode {
  /** Malformed input: a bad field, a value out of range, a missing field. */
  INVALID_ARGUMENT,
  /** The input is well formed but illegal in the current state (a merge of differently owned ranges). */
  FAILED_PRECONDITION,
  /** The request names something that does not exist (a server id, a range start). */
  NOT_FOUND,
  /** A configured limit was reached (watchers per node, request size). */
  RESOURCE_EXHAUSTED,
  /** The node cannot serve the request now (not the leader, no leader yet); retry elsewhere. */
  UNAVAILABLE,
  /** The node did not reach the requested state in time (min_version not applied). */
  DEADLINE_EXCEEDED,
  /** A bug or an unexpected failure inside PLB. */
  INTERNAL
}
