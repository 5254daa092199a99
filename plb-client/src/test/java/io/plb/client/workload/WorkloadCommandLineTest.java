package io.plb.client.workload;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@code plb workload}'s command line: {@code --key=value} and {@code --key value} alike. */
class WorkloadCommandLineTest {

  @Test
  void bothFormsOfAnOptionAreRead() {
    Workload.CommandLine c = Workload.parse("--duration", "30", "--keys=10000", "--json",
        "--rate", "500");
    assertEquals(Map.of("duration", "30", "keys", "10000", "rate", "500"), c.flags());
    assertTrue(c.json());
  }

  @Test
  void anOptionWithoutItsValueIsRefusedByName() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> Workload.parse("--duration", "--json"));
    assertTrue(e.getMessage().contains("'--duration'"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> Workload.parse("stray"));
    assertTrue(e.getMessage().contains("'stray'"), e.getMessage());
  }

  @Test
  void helpStopsReading() {
    assertTrue(Workload.parse("--keys=5", "--help", "junk").help());
  }
}
