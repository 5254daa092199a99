package io.plb.core.load;

/** The two resolutions of the load history (DESIGN §6). */
public enum Resolution {
  /** {@code history.bucket} wide (10 s by default), kept {@code history.fineRetention}. */
  FINE,
  /** {@code history.coarseBucket} wide (5 min by default), kept {@code history.coarseRetention}. */
  COARSE
}
