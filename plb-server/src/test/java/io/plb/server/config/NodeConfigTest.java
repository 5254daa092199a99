package io.plb.server.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.plb.client.wire.MapChunks;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.command.Limits;
import io.plb.core.sim.balance.PlannerStrategy;
import io.plb.core.sim.balance.SimConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@link NodeConfig#of} and {@link NodeConfig#load}: parsing, defaults and every refusal. */
class NodeConfigTest {
  @TempDir Path dir;

  /** A minimal valid 3-peer configuration for node n2. */
  private static Map<String, String> valid() {
    Map<String, String> v = new LinkedHashMap<>();
    v.put("node.id", "n2");
    v.put("node.dataDir", "/var/lib/plb/n2");
    v.put("peer.n1.raft", "10.0.0.1:7201");
    v.put("peer.n1.api", "10.0.0.1:7301");
    v.put("peer.n2.raft", "10.0.0.2:7202");
    v.put("peer.n2.api", "10.0.0.2:7302");
    v.put("peer.n3.raft", "plb-3.example.com:7203");
    v.put("peer.n3.api", "plb-3.example.com:7303");
    return v;
  }

  private static Map<String, String> with(String key, String value) {
    Map<String, String> v = valid();
    v.put(key, value);
    return v;
  }

  private static Map<String, String> without(String key) {
    Map<String, String> v = valid();
    v.remove(key);
    return v;
  }

  /** Asserts that {@code values} is refused with a message containing every one of {@code parts}. */
  private static String refused(Map<String, String> values, String... parts) {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> NodeConfig.of(values));
    String m = e.getMessage();
    assertTrue(m != null && !m.isBlank(), "a message");
    for (String p : parts) {
      assertTrue(m.contains(p), "message '" + m + "' should contain '" + p + "'");
    }
    return m;
  }

  private Path write(String name, String text) throws IOException {
    Path f = dir.resolve(name);
    Files.writeString(f, text, StandardCharsets.UTF_8);
    return f;
  }

  // ------------------------------------------------------------------ valid configurations

  @Test
  void validThreePeerConfig() {
    NodeConfig c = NodeConfig.of(valid());
    assertEquals("n2", c.nodeId());
    assertEquals(Path.of("/var/lib/plb/n2"), c.dataDir());
    assertEquals(3, c.peers().size());
    assertEquals(List.of("n1", "n2", "n3"), c.peers().stream().map(NodeConfig.Peer::id).toList());
    NodeConfig.Peer self = c.self();
    assertEquals(new NodeConfig.Peer("n2", "10.0.0.2:7202", "10.0.0.2:7302"), self);
    assertEquals("10.0.0.2", self.raftHost());
    assertEquals(7202, self.raftPort());
    assertEquals("10.0.0.2", self.apiHost());
    assertEquals(7302, self.apiPort());
    NodeConfig.Peer n3 = c.peer("n3");
    assertEquals("plb-3.example.com", n3.apiHost());
    assertEquals(7303, n3.apiPort());
    assertEquals(7203, n3.raftPort());
    assertNull(c.peer("n4"));
    assertThrows(UnsupportedOperationException.class, () -> c.peers().add(n3), "immutable");
  }

  @Test
  void defaults() {
    NodeConfig c = NodeConfig.of(valid());
    assertEquals("plb", c.clusterName());
    assertEquals(Duration.ofMillis(500), c.electionTimeoutMin());
    assertEquals(Duration.ofMillis(1000), c.electionTimeoutMax());
    assertEquals(Duration.ofMillis(100), c.commitPushMaxWait());
    assertEquals(10_000, c.snapshotEvery());
    assertEquals(8L << 20, c.segmentSizeBytes());
    assertFalse(c.purgeUpToSnapshot());
    assertEquals(10_000, c.historyEntries());
    assertEquals(10_000, c.maxWatchers());
    assertEquals(Duration.ofSeconds(5), c.progressInterval());
    assertEquals(4096, c.maxSplitPieces());
    assertEquals(4096, c.chunkEntries());
    assertEquals(1_000_000, c.historyRanges());
  }

  @Test
  void historyRangesHoldsAtLeastTheLargestChange() {
    assertEquals(Limits.MAX_SPLIT_PIECES, NodeConfig.of(with("watch.historyRanges",
        Integer.toString(Limits.MAX_SPLIT_PIECES))).historyRanges());
    refused(with("watch.historyRanges", "4095"), "watch.historyRanges", "4096");
    refused(with("watch.historyRanges", "0"), "watch.historyRanges");
    refused(with("watch.historyRanges", "x"), "watch.historyRanges", "not a whole number");
  }

  @Test
  void chunkEntriesKeepAChunkUnderTheMessageLimit() {
    assertEquals(1, NodeConfig.of(with("watch.chunkEntries", "1")).chunkEntries());
    assertEquals(MapChunks.MAX_CHUNK_ENTRIES, NodeConfig.of(with("watch.chunkEntries",
        Integer.toString(MapChunks.MAX_CHUNK_ENTRIES))).chunkEntries());
    refused(with("watch.chunkEntries", "0"), "watch.chunkEntries");
    refused(with("watch.chunkEntries", "8193"), "watch.chunkEntries", "8192");
    refused(with("watch.chunkEntries", "lots"), "watch.chunkEntries", "not a whole number");
  }

  @Test
  void maxSplitPiecesIsBoundedByWhatOneDeltaMayCarry() {
    assertEquals(2, NodeConfig.of(with("map.maxSplitPieces", "2")).maxSplitPieces());
    assertEquals(Limits.MAX_SPLIT_PIECES, NodeConfig.of(
        with("map.maxSplitPieces", Integer.toString(Limits.MAX_SPLIT_PIECES))).maxSplitPieces());
    refused(with("map.maxSplitPieces", "1"), "map.maxSplitPieces", "2", "4096");
    refused(with("map.maxSplitPieces", "4097"), "map.maxSplitPieces", "4096");
    refused(with("map.maxSplitPieces", "0"), "map.maxSplitPieces");
    refused(with("map.maxSplitPieces", "many"), "map.maxSplitPieces", "not a whole number");
  }

  /**
   * The leader acts as the simulator's {@code predictive} strategy does, the strategy
   * bench/RESULTS.md §6 measures: same criterion, thresholds, hysteresis, quantile and sum.
   */
  @Test
  void balancerDefaultsAreTheBenchmarkedPredictiveSettings() {
    BalancerConfig leader = NodeConfig.of(valid()).balancerConfig();
    BalancerConfig predictive = PlannerStrategy.predictiveConfigFor(SimConfig.defaults());
    assertEquals(predictive.criterion(), leader.criterion());
    assertEquals(predictive.maxMeanRatio(), leader.maxMeanRatio());
    assertEquals(predictive.highWater(), leader.highWater());
    assertEquals(predictive.hysteresis(), leader.hysteresis());
    assertEquals(predictive.actAbove(), leader.actAbove());
    assertEquals(predictive.lumpAllowance(), leader.lumpAllowance());
    assertEquals(predictive.quantile(), leader.quantile());
    assertEquals(predictive.upperCorrelation(), leader.upperCorrelation());
    // The budgets too: the benchmark's setting is the planner's defaults.
    assertEquals(predictive.maxMovesPerRound(), leader.maxMovesPerRound());
    assertEquals(predictive.maxMovesPerServer(), leader.maxMovesPerServer());
    assertEquals(predictive.maxMovesPerWindow(), leader.maxMovesPerWindow());
    assertEquals(predictive.moveWindow(), leader.moveWindow());
    assertEquals(predictive.minDwell(), leader.minDwell());
    assertEquals(predictive.minGain(), leader.minGain());
    assertEquals(predictive.expectedHold(), leader.expectedHold());
  }

  @Test
  void emptyValueMeansDefault() {
    assertEquals("plb", NodeConfig.of(with("cluster.name", "")).clusterName());
    assertEquals(Duration.ofSeconds(5),
        NodeConfig.of(with("watch.progressInterval", "")).progressInterval());
  }

  @Test
  void everySettingIsRead() {
    Map<String, String> v = valid();
    v.put("cluster.name", "prod");
    v.put("raft.electionTimeoutMin", "2s");
    v.put("raft.electionTimeoutMax", "3s");
    v.put("raft.commitPushMaxWait", "0");
    v.put("raft.snapshotEvery", "250");
    v.put("raft.segmentSize", "64KB");
    v.put("raft.purgeUpToSnapshot", "true");
    v.put("watch.historyEntries", "123");
    v.put("watch.maxWatchers", "7");
    v.put("watch.progressInterval", "2m");
    NodeConfig c = NodeConfig.of(v);
    assertEquals("prod", c.clusterName());
    assertEquals(Duration.ofSeconds(2), c.electionTimeoutMin());
    assertEquals(Duration.ofSeconds(3), c.electionTimeoutMax());
    assertEquals(Duration.ZERO, c.commitPushMaxWait());
    assertEquals(250, c.snapshotEvery());
    assertEquals(64L * 1024, c.segmentSizeBytes());
    assertTrue(c.purgeUpToSnapshot());
    assertEquals(123, c.historyEntries());
    assertEquals(7, c.maxWatchers());
    assertEquals(Duration.ofMinutes(2), c.progressInterval());
    assertEquals(Duration.ofSeconds(9), c.leaderLoss(), "three election timeouts by default");
  }

  @Test
  void leaderLossOutlastsAnElection() {
    Map<String, String> v = valid();
    assertEquals(Duration.ofSeconds(3), NodeConfig.of(v).leaderLoss());
    v.put("watch.leaderLoss", "1500ms");
    assertEquals(Duration.ofMillis(1500), NodeConfig.of(v).leaderLoss());
    v.put("watch.leaderLoss", "1s");
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> NodeConfig.of(v));
    assertTrue(e.getMessage().contains("watch.leaderLoss"), e.getMessage());
  }

  @ParameterizedTest
  @CsvSource({
      "500ms, 500",
      "5s, 5000",
      "2m, 120000",
      "1h, 3600000",
      "750, 750", // no unit: milliseconds
      "'10 s', 10000"
  })
  void durations(String text, long millis) {
    NodeConfig c = NodeConfig.of(with("watch.progressInterval", text));
    assertEquals(Duration.ofMillis(millis), c.progressInterval());
  }

  @ParameterizedTest
  @CsvSource({
      "64KB, 65536",
      "8MB, 8388608",
      "1GB, 1073741824",
      "4096, 4096", // no unit: bytes
      "64kb, 65536", // case does not matter
      "1KB, 1024"
  })
  void sizes(String text, long bytes) {
    assertEquals(bytes, NodeConfig.of(with("raft.segmentSize", text)).segmentSizeBytes());
  }

  @Test
  void loadReadsAFile() throws IOException {
    Path f = write("n1.properties", String.join("\n",
        "# PLB node n1",
        "node.id = n1",
        "node.dataDir = " + dir.resolve("data").toString().replace("\\", "/"),
        "cluster.name = staging   ",
        "peer.n1.raft = 127.0.0.1:7201",
        "peer.n1.api = 127.0.0.1:7301",
        "peer.n2.raft = 127.0.0.1:7202",
        "peer.n2.api = 127.0.0.1:7302",
        "peer.n3.raft = 127.0.0.1:7203",
        "peer.n3.api = 127.0.0.1:7303",
        "raft.electionTimeoutMin = 500ms",
        "raft.electionTimeoutMax = 5s",
        "raft.segmentSize = 64KB",
        "watch.progressInterval = 2m",
        ""));
    NodeConfig c = NodeConfig.load(f, Map.of());
    assertEquals("n1", c.nodeId());
    assertEquals(dir.resolve("data"), c.dataDir());
    assertEquals("staging", c.clusterName(), "values are stripped");
    assertEquals(3, c.peers().size());
    assertEquals("127.0.0.1:7301", c.self().apiAddress());
    assertEquals(Duration.ofMillis(500), c.electionTimeoutMin());
    assertEquals(Duration.ofSeconds(5), c.electionTimeoutMax());
    assertEquals(65536, c.segmentSizeBytes());
    assertEquals(Duration.ofMinutes(2), c.progressInterval());
  }

  @Test
  void overridesBeatFileValues() throws IOException {
    Path f = write("n1.properties", String.join("\n",
        "node.id = n1",
        "node.dataDir = /from/file",
        "cluster.name = from-file",
        "peer.n1.raft = 127.0.0.1:7201",
        "peer.n1.api = 127.0.0.1:7301",
        "peer.n2.raft = 127.0.0.1:7202",
        "peer.n2.api = 127.0.0.1:7302",
        "raft.snapshotEvery = 100",
        ""));
    Map<String, String> overrides = new LinkedHashMap<>();
    overrides.put("node.id", "n2");
    overrides.put("node.dataDir", "/from/flag");
    overrides.put("raft.snapshotEvery", "200");
    overrides.put("peer.n2.api", "127.0.0.1:9999");
    NodeConfig c = NodeConfig.load(f, overrides);
    assertEquals("n2", c.nodeId());
    assertEquals(Path.of("/from/flag"), c.dataDir());
    assertEquals(200, c.snapshotEvery());
    assertEquals("127.0.0.1:9999", c.self().apiAddress());
    assertEquals("from-file", c.clusterName(), "values not overridden come from the file");
    // An override can also make an invalid file valid, and the file can be left out entirely.
    assertEquals("n1", NodeConfig.load(null, with("node.id", "n1")).nodeId());
  }

  @Test
  void loadRefusesWhatOfRefuses() throws IOException {
    Path f = write("bad.properties", "node.id = n1\nnode.dataDir = /d\n"
        + "peer.n1.raft = 127.0.0.1:7201\npeer.n1.api = 127.0.0.1:7301\nraft.snapshotEvry = 5\n");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> NodeConfig.load(f, Map.of()));
    assertTrue(e.getMessage().contains("raft.snapshotEvry"), e.getMessage());
  }

  @Test
  void loadOfAMissingFileFails() {
    assertThrows(NoSuchFileException.class,
        () -> NodeConfig.load(dir.resolve("absent.properties"), Map.of()));
  }

  // ------------------------------------------------------------------ refusals

  @Test
  void missingNodeId() {
    refused(without("node.id"), "missing required setting node.id");
    refused(with("node.id", ""), "missing required setting node.id");
  }

  @Test
  void missingDataDir() {
    refused(without("node.dataDir"), "missing required setting node.dataDir");
  }

  @Test
  void nodeIdNotAmongPeers() {
    refused(with("node.id", "n4"), "node.id n4 is not one of the peers", "n1", "n2", "n3");
  }

  @Test
  void noPeersAtAll() {
    Map<String, String> v = new LinkedHashMap<>();
    v.put("node.id", "n1");
    v.put("node.dataDir", "/d");
    refused(v, "no peers configured");
  }

  @Test
  void peerWithOnlyRaft() {
    Map<String, String> v = valid();
    v.put("peer.n4.raft", "10.0.0.4:7204");
    refused(v, "peer n4 needs both peer.n4.raft and peer.n4.api");
    Map<String, String> onlyApi = without("peer.n3.raft");
    refused(onlyApi, "peer n3 needs both peer.n3.raft and peer.n3.api");
  }

  @ParameterizedTest
  @CsvSource({
      "10.0.0.1",     // no port at all
      ":7201",        // no host
      "localhost",
  })
  void badAddress(String address) {
    refused(with("peer.n1.raft", address), "peer.n1.raft", "'" + address + "'",
        "is not host:port");
  }

  @ParameterizedTest
  @CsvSource({
      "10.0.0.1:, is not host:port",
      "10.0.0.1:http, is not host:port",
      "10.0.0.1:65536, outside 1..65535",
      "10.0.0.1:99999, outside 1..65535",
      "10.0.0.1:0, outside 1..65535",
      "10.0.0.1:-1, is not host:port",
  })
  void badPort(String address, String why) {
    refused(with("peer.n1.api", address), "'" + address + "'", why);
  }

  @Test
  void unknownKey() {
    refused(with("raft.snapshotEvry", "5"), "unknown configuration key 'raft.snapshotEvry'",
        "raft.snapshotEvery");
    refused(with("peer.n1.grpc", "10.0.0.1:1"), "unknown configuration key 'peer.n1.grpc'");
    refused(with("peer.n1.x.raft", "10.0.0.1:1"), "unknown configuration key 'peer.n1.x.raft'");
  }

  @Test
  void commitPushMaxWaitMustBeUnderElectionTimeoutMin() {
    refused(with("raft.commitPushMaxWait", "500ms"),
        "raft.commitPushMaxWait must be less than raft.electionTimeoutMin");
    refused(with("raft.commitPushMaxWait", "soon"), "raft.commitPushMaxWait");
  }

  @Test
  void downAfterMustExceedTheLeaseAndItsMargin() {
    NodeConfig d = NodeConfig.of(valid());
    assertEquals(Duration.ofSeconds(6), d.lease());
    assertEquals(Duration.ofSeconds(1), d.leaseMargin());
    assertTrue(d.downAfter().compareTo(d.lease().plus(d.leaseMargin())) > 0);
    refused(with("server.lease", "9s"), "server.downAfter (10s) must be longer than "
        + "server.lease + server.leaseMargin (9s + 1s)");
    refused(with("server.lease", "0"), "server.lease must be greater than zero");
    refused(with("server.leaseMargin", "a bit"), "server.leaseMargin");
    Map<String, String> v = new java.util.HashMap<>(with("server.downAfter", "4s"));
    v.put("server.suspectAfter", "1s");
    v.put("server.lease", "2s");
    v.put("server.leaseMargin", "0");
    assertEquals(Duration.ZERO, NodeConfig.of(v).leaseMargin());
  }

  @Test
  void abortSwitchTimeoutIsAtLeastTheDrainTimeout() {
    assertEquals(Duration.ofMinutes(5), NodeConfig.of(valid()).abortSwitchTimeout());
    refused(with("handover.abortSwitchTimeout", "30s"), "handover.abortSwitchTimeout (30s) "
        + "must not be shorter than handover.drainTimeout (60s)");
    refused(with("handover.abortSwitchTimeout", "0"),
        "handover.abortSwitchTimeout must be greater than zero");
    refused(with("handover.abortSwitchTimeout", "never"), "handover.abortSwitchTimeout");
  }

  @Test
  void electionTimeoutMaxMustExceedMin() {
    Map<String, String> less = valid();
    less.put("raft.electionTimeoutMin", "2s");
    less.put("raft.electionTimeoutMax", "1s");
    refused(less, "raft.electionTimeoutMax must exceed raft.electionTimeoutMin");
    Map<String, String> equal = valid();
    equal.put("raft.electionTimeoutMin", "1s");
    equal.put("raft.electionTimeoutMax", "1000ms");
    refused(equal, "raft.electionTimeoutMax must exceed raft.electionTimeoutMin");
    // Only the lower bound raised, above the default upper bound of 1000ms.
    refused(with("raft.electionTimeoutMin", "1500ms"), "raft.electionTimeoutMax must exceed");
  }

  @ParameterizedTest
  @CsvSource({"0", "0ms", "0s", "0m"})
  void zeroDuration(String text) {
    refused(with("watch.progressInterval", text), "watch.progressInterval must be greater than zero");
  }

  @ParameterizedTest
  @CsvSource({"5 seconds", "-5s", "1.5s", "5S", "abc", "5w"})
  void notADuration(String text) {
    refused(with("raft.electionTimeoutMin", text), "raft.electionTimeoutMin", "'" + text + "'",
        "is not a duration");
  }

  @ParameterizedTest
  @CsvSource({"1.5MB", "8 megabytes", "-1KB", "8TB"})
  void notASize(String text) {
    refused(with("raft.segmentSize", text), "raft.segmentSize", "'" + text + "'", "is not a size");
  }

  @Test
  void sizeBelowOneKilobyte() {
    refused(with("raft.segmentSize", "1023"), "raft.segmentSize must be at least 1KB");
  }

  @ParameterizedTest
  @CsvSource({"ten", "10k", "1e4", "'1 000'"})
  void nonNumericSnapshotEvery(String text) {
    refused(with("raft.snapshotEvery", text), "raft.snapshotEvery", "'" + text + "'",
        "is not a whole number");
  }

  @ParameterizedTest
  @CsvSource({"raft.snapshotEvery, 0", "raft.snapshotEvery, -3",
      "watch.maxWatchers, 2147483648", "watch.historyEntries, 0"})
  void wholeNumbersOutOfRange(String key, String text) {
    refused(with(key, text), key + " must be between 1 and 2147483647");
  }

  @ParameterizedTest
  @CsvSource({"yes", "1", "TRUE", "on"})
  void badBoolean(String text) {
    refused(with("raft.purgeUpToSnapshot", text), "raft.purgeUpToSnapshot", "'" + text + "'",
        "is not true or false");
  }

  @Test
  void keysAreDocumented() {
    for (String key : List.of("node.id", "node.dataDir", "cluster.name", "peer.<id>.raft",
        "peer.<id>.api", "raft.electionTimeoutMin", "raft.electionTimeoutMax",
        "raft.snapshotEvery", "raft.segmentSize", "raft.purgeUpToSnapshot",
        "watch.historyEntries", "watch.maxWatchers", "watch.progressInterval")) {
      String[] doc = NodeConfig.KEYS.get(key);
      assertTrue(doc != null && doc.length == 2 && !doc[1].isBlank(), key + " is documented");
    }
  }

  @Test
  void leaderLoopsAreBounded() {
    assertEquals(1000, NodeConfig.of(valid()).leaderMaxQueuedRequests());
    assertEquals(5, NodeConfig.of(with("leader.maxQueuedRequests", "5"))
        .leaderMaxQueuedRequests());
    refused(with("leader.maxQueuedRequests", "0"),
        "leader.maxQueuedRequests must be between 1 and 2147483647");
  }

  @Test
  void getMapWaitersAreBounded() {
    assertEquals(10_000, NodeConfig.of(valid()).maxGetMapWaiters());
    assertEquals(3, NodeConfig.of(with("watch.maxGetMapWaiters", "3")).maxGetMapWaiters());
    refused(with("watch.maxGetMapWaiters", "0"),
        "watch.maxGetMapWaiters must be between 1 and 2147483647");
    assertTrue(NodeConfig.KEYS.containsKey("watch.maxGetMapWaiters"));
  }

  @Test
  void getMapWaitIsBounded() {
    assertEquals(Duration.ofSeconds(60), NodeConfig.of(valid()).maxGetMapWait());
    assertEquals(Duration.ofMillis(250),
        NodeConfig.of(with("watch.maxGetMapWait", "250ms")).maxGetMapWait());
    assertEquals(Duration.ofMinutes(10),
        NodeConfig.of(with("watch.maxGetMapWait", "10m")).maxGetMapWait());
    refused(with("watch.maxGetMapWait", "0"), "watch.maxGetMapWait must be greater than zero");
    refused(with("watch.maxGetMapWait", "11m"), "watch.maxGetMapWait must be at most 10m");
    refused(with("watch.maxGetMapWait", "soon"), "is not a duration");
  }

  // ------------------------------------------------------------------ overflow and odd numbers

  @ParameterizedTest
  @CsvSource({
      "17179869185GB", // (2^34 + 1) << 30 wraps to 1 GiB and is accepted
      "8589934592GB",  // 2^33 << 30 wraps to 2^63 < 0: refused as "must be at least 1KB"
      "18014398509481985KB"})
  void hugeSizeIsRefusedAsTooLarge(String text) {
    String m = refused(with("raft.segmentSize", text), "raft.segmentSize");
    assertFalse(m.contains("at least 1KB"), m);
  }

  @Test
  void numbersBeyondLongNameTheKey() {
    refused(with("watch.progressInterval", "99999999999999999999ms"), "watch.progressInterval");
    refused(with("raft.segmentSize", "99999999999999999999"), "raft.segmentSize");
  }

  @Test
  void portWithASignIsRefusedAndBadPortsNameTheKey() {
    refused(with("peer.n1.raft", "10.0.0.1:+80"), "peer.n1.raft");
    refused(with("peer.n1.raft", "10.0.0.1:99999"), "peer.n1.raft");
  }

  @Test
  void historySettings() {
    NodeConfig c = NodeConfig.of(valid());
    assertEquals(io.plb.core.load.HistoryLayout.DEFAULT, c.historyLayout());
    Map<String, String> v = valid();
    v.put("history.bucket", "200ms");
    v.put("history.coarseBucket", "10s");
    v.put("history.fineRetention", "1h");
    v.put("history.coarseRetention", "7d");
    v.put("telemetry.hotKeys", "8");
    NodeConfig d = NodeConfig.of(v);
    assertEquals(new io.plb.core.load.HistoryLayout(200, 3_600_000, 10_000, 7 * 86_400_000L, 8),
        d.historyLayout());
    refused(with("history.bucket", "10ms"), "history.bucket");
    refused(with("history.coarseBucket", "15s"), "history.coarseBucket", "history.bucket");
    refused(with("history.fineRetention", "5s"), "history.fineRetention");
    refused(with("history.coarseRetention", "1d"), "history.coarseRetention");
    refused(with("history.bucket", "1s"), "at most 100000");
    refused(with("telemetry.hotKeys", "0"), "telemetry.hotKeys");
    refused(with("telemetry.hotKeys", "5000"), "telemetry.hotKeys");
    refused(with("history.fineRetention", "2w"), "history.fineRetention", "not a duration");
  }

  @Test
  void balancerSettings() {
    NodeConfig d = NodeConfig.of(valid());
    assertTrue(d.balancerEnabled());
    assertEquals(java.time.Duration.ofSeconds(30), d.balancerInterval());
    // The planner's defaults but for the acting settings (balancerDefaultsAreTheBenchmarked...).
    assertEquals(io.plb.core.balance.BalancerConfig.defaults().toBuilder()
        .criterion(io.plb.core.balance.Criterion.MAX_MEAN_OR_HIGH_WATER).maxMeanRatio(1.2)
        .highWater(1.0).hysteresis(0.02).actAbove(0.7).lumpAllowance(1).upperCorrelation(0)
        .build(), d.balancerConfig());
    assertEquals(io.plb.core.balance.BalancerConfig.defaults(),
        NodeConfig.plannerConfig(io.plb.server.testing.TestCluster.maxMeanPlanner()),
        "the balancer tests' settings are the planner's neutral baseline");
    assertEquals(io.plb.core.balance.CostModel.DEFAULT, d.costModel());
    // 1 day of 5 min buckets: 288 a season; a 10 min horizon is 2 steps; refit every 3 h.
    io.plb.core.forecast.ForecasterConfig f = d.forecasterConfig(300_000);
    assertEquals(288, f.season());
    assertEquals(2, f.horizon());
    assertEquals(36, f.refitEvery());

    Map<String, String> v = valid();
    v.put("balancer.criterion", "high_water");
    v.put("balancer.highWater", "0.7");
    v.put("balancer.quantile", "0.95");
    v.put("balancer.maxMovesPerRound", "0");
    v.put("history.bucket", "200ms");
    v.put("history.coarseBucket", "1s");
    v.put("history.fineRetention", "1h");
    v.put("history.coarseRetention", "1d");
    v.put("balancer.season", "60s");
    v.put("balancer.horizon", "3s");
    v.put("cost.perByte", "0");
    NodeConfig c = NodeConfig.of(v);
    assertEquals(io.plb.core.balance.Criterion.HIGH_WATER, c.balancerConfig().criterion());
    assertEquals(0.7, c.balancerConfig().highWater());
    assertEquals(0.95, c.balancerConfig().quantile());
    assertEquals(0, c.balancerConfig().maxMovesPerRound());
    assertEquals(60, c.forecasterConfig(1000).season());
    assertEquals(3, c.forecasterConfig(1000).horizon());
    assertEquals(0.0, c.costModel().perByte());

    refused(with("balancer.enabled", "yes"), "balancer.enabled");
    refused(with("balancer.interval", "0s"), "balancer.interval");
    refused(with("balancer.criterion", "LOUDEST"), "balancer.criterion", "MAX_MEAN_OR_HIGH_WATER");
    refused(with("balancer.maxMeanRatio", "1"), "balancer.maxMeanRatio");
    refused(with("balancer.quantile", "1.5"), "balancer.quantile");
    refused(with("balancer.quantile", "ninety"), "balancer.quantile", "not a number");
    refused(with("balancer.hysteresis", "0.5"), "balancer.hysteresis");
    refused(with("balancer.upperCorrelation", "2"), "balancer.upperCorrelation");
    refused(with("balancer.lumpAllowance", "-1"), "balancer.lumpAllowance");
    refused(with("balancer.maxMovesPerRound", "-1"), "balancer.maxMovesPerRound");
    refused(with("balancer.minGain", "1"), "balancer.minGain");
    refused(with("balancer.splitMinLoad", "0.001"), "balancer.splitMinLoad");
    refused(with("balancer.capacityPerWeight", "0"), "balancer.capacityPerWeight");
    refused(with("cost.perMessage", "-1"), "cost.perMessage");
    refused(with("balancer.season", "7m"), "balancer.season", "history.coarseBucket");
    refused(with("balancer.season", "10m"), "balancer.season", "at least 4");
    refused(with("balancer.horizon", "1d"), "balancer.horizon", "balancer.season");
    Map<String, String> small = valid();
    small.put("history.bucket", "200ms");
    small.put("history.coarseBucket", "1s");
    small.put("history.fineRetention", "1h");
    small.put("history.coarseRetention", "1d");
    small.put("balancer.season", "20s");
    refused(small, "balancer.season (20 coarse buckets)");
    refused(with("balancer.refitEvery", "soon"), "balancer.refitEvery", "not a duration");
  }

  @Test
  void theThreeHostConfigsAreValid() throws IOException {
    for (String n : List.of("n1", "n2", "n3")) {
      NodeConfig c = NodeConfig.load(Path.of("..", "deploy", "three-hosts", n + ".conf"), Map.of());
      assertEquals(n, c.nodeId());
      assertEquals(io.plb.core.load.HistoryLayout.DEFAULT, c.historyLayout());
    }
  }
}
