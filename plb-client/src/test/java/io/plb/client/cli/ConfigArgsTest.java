package io.plb.client.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The {@code --config FILE --key=value} command line of plb server and plb queue. */
class ConfigArgsTest {
  @Test
  void readsTheFileAndTheSettingsInOrder() {
    ConfigArgs a = ConfigArgs.parse(new String[] {"server", "--config", "n1.conf",
        "--node.id=n1", "--raft.snapshotEvery=5", "--node.id=n2", "--empty="}, 1);
    assertEquals(Path.of("n1.conf"), a.configFile());
    assertEquals(List.of("node.id", "raft.snapshotEvery", "empty"),
        List.copyOf(a.overrides().keySet()));
    assertEquals("n2", a.overrides().get("node.id"), "the last value of a key wins");
    assertEquals("", a.overrides().get("empty"));
    assertFalse(a.help());
    ConfigArgs b = ConfigArgs.parse(new String[] {"--config=q.conf", "-h"}, 0);
    assertEquals(Path.of("q.conf"), b.configFile());
    assertTrue(b.help());
    ConfigArgs none = ConfigArgs.parse(new String[] {"queue"}, 1);
    assertNull(none.configFile());
    assertEquals(Map.of(), none.overrides());
  }

  @Test
  void anythingElseIsRefusedByName() {
    for (String bad : new String[] {"extra", "--config", "--=x", "-x", "--node.id"}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> ConfigArgs.parse(new String[] {bad}, 0), bad);
      assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
    }
  }
}
