package io.plb.client.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.plb.client.router.FakeMapService;
import io.plb.client.router.TestMaps;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.ServerState;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A restarted agent takes no map older than the one its persisted handover state was written
 * at: a node that is behind could show it a handover in an earlier phase, or none, and its
 * participant would close or misread the sides it restored. It waits for a node that has caught
 * up instead.
 */
class AgentMapFloorTest {
  private static ClusterImage map(long version) {
    return ClusterImage.of(version, List.of(TestMaps.owned(0, 0, "q1", 1)),
        List.of(new QueueServerInfo("q1", "127.0.0.1:9001", 1.0, ServerState.ACTIVE)));
  }

  @Test
  void aRestartedAgentRefusesAMapOlderThanItsPersistedState() throws Exception {
    AgentLoadReportTest.NoStore store = new AgentLoadReportTest.NoStore() {
      @Override
      public byte[] loadAgentState() {
        return new AgentState(List.of(), 10).encode(); // written at map version 10
      }
    };
    try (FakeMapService node = new FakeMapService()) {
      node.set(map(5)); // a node that is behind
      try (QueueServerAgent agent = QueueServerAgent.builder("q1", store)
          .plbEndpoints(List.of(node.address())).build().start()) {
        TestMaps.until(() -> node.subscriptions() >= 3, Duration.ofSeconds(10),
            "the agent's watcher asking again after refusing map 5");
        assertEquals(0, agent.version(), "map 5 is older than the state's version 10");
        node.set(map(12)); // caught up
        TestMaps.until(() -> agent.version() == 12, Duration.ofSeconds(10), "map 12 taken");
      }
    }
  }
}
