package io.plb.core.map;

/** The committed phase of a range's handover (DESIGN §5). */
public enum HandoverPhase {
  PREPARE,
  SWITCH,
  COMPLETE,
  /** An abort from SWITCH: the protocol run backwards, target to source. */
  ABORT_SWITCH
}
