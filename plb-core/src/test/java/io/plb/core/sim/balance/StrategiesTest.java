package io.plb.core.sim.balance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class StrategiesTest {
  @Test
  void namesAreCanonical() {
    List<Strategies.Spec> specs = Strategies.parseList(
        "static, reactive-ewma,reactive-ewma:0.05,reactive-ewma:0.20,reactive-shedder,"
            + "reactive-shedder:0.25");
    assertEquals(List.of("static", "reactive-ewma:0.1", "reactive-ewma:0.05",
        "reactive-ewma:0.2", "reactive-shedder", "reactive-shedder:0.25"),
        specs.stream().map(Strategies.Spec::name).toList());
  }

  @Test
  void badListsAreRefusedByName() {
    assertMessage("unknown strategy 'magic'", "static,magic");
    assertMessage("twice", "reactive-ewma,reactive-ewma:0.1");
    assertMessage("empty entry", "static,,oracle");
    assertMessage("not a number", "reactive-ewma:low");
    assertMessage("threshold must be > 0", "reactive-shedder:-1");
    assertMessage("takes no parameter", "static:3");
  }

  private static void assertMessage(String part, String list) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Strategies.parseList(list));
    assertTrue(e.getMessage().contains(part), e.getMessage());
  }
}
