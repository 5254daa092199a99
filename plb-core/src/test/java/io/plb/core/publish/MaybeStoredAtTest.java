package io.plb.core.publish;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.core.command.Limits;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The {@code maybe_stored_at} rule, shared by the producer core, the queue server and the simulation. */
class MaybeStoredAtTest {

  @Test
  void aServerIsNamedOnceAndTheListStopsAtItsLimit() {
    List<String> at = MaybeStoredAt.with(List.of(), "q1");
    assertEquals(List.of("q1"), at);
    assertEquals(List.of("q1"), MaybeStoredAt.with(at, "q1"));
    for (int i = 2; i <= Limits.MAX_MAYBE_STORED_AT + 3; i++) {
      at = MaybeStoredAt.with(at, "q" + i);
    }
    assertEquals(Limits.MAX_MAYBE_STORED_AT, at.size());
  }

  @Test
  void onlyAnotherServerMakesAResendAMaybeDuplicate() {
    assertFalse(MaybeStoredAt.elsewhere(List.of(), "q1"));
    assertFalse(MaybeStoredAt.elsewhere(List.of("q1"), "q1"), "its own entries decide");
    assertTrue(MaybeStoredAt.elsewhere(List.of("q1", "q2"), "q1"));
  }
}
