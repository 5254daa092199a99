package io.plb.server.config;

import io.plb.client.wire.MapChunks;
import io.plb.core.balance.BalancerConfig;
import io.plb.core.balance.CostModel;
import io.plb.core.balance.Criterion;
import io.plb.core.command.Limits;
import io.plb.core.error.PlbException;
import io.plb.core.forecast.ForecasterConfig;
import io.plb.core.load.HistoryLayout;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The configuration of one PLB node, read from a {@code key = value} file with flag overrides.
 * Every key, its meaning and its default is listed in {@link #KEYS} and printed by
 * {@code plb server --help}. Immutable.
 */
public final class NodeConfig {
  /** One member of the PLB cluster: its Raft (peer-to-peer) and API (client) addresses. */
  public record Peer(String id, String raftAddress, String apiAddress) {
    public String raftHost() {
      return host(raftAddress);
    }

    public int raftPort() {
      return port(raftAddress);
    }

    public String apiHost() {
      return host(apiAddress);
    }

    public int apiPort() {
      return port(apiAddress);
    }
  }

  /** Documented keys and their defaults ("" = required). */
  public static final Map<String, String[]> KEYS;

  static {
    Map<String, String[]> k = new LinkedHashMap<>();
    k.put("node.id", new String[] {"", "this node's id; must be one of the peers"});
    k.put("node.dataDir", new String[] {"", "folder for the Raft log, snapshots and RocksDB"});
    k.put("cluster.name", new String[] {"plb", "cluster name; nodes of one cluster must agree"});
    k.put("peer.<id>.raft", new String[] {"", "host:port of a member's Raft transport"});
    k.put("peer.<id>.api", new String[] {"", "host:port of a member's gRPC API"});
    k.put("raft.electionTimeoutMin", new String[] {"500ms", "Raft election timeout, lower bound"});
    k.put("raft.electionTimeoutMax", new String[] {"1000ms", "Raft election timeout, upper bound"});
    k.put("raft.commitPushMaxWait", new String[] {"100ms",
        "how long the leader waits for every live follower to hold a new entry before pushing its "
            + "commit index to them; a follower still flushing then learns it from the next "
            + "heartbeat; 0 pushes at the write's reply (less than raft.electionTimeoutMin)"});
    k.put("raft.snapshotEvery", new String[] {"10000", "entries between automatic snapshots"});
    k.put("raft.segmentSize", new String[] {"8MB", "Raft log segment size (KB/MB suffixes)"});
    k.put("raft.purgeUpToSnapshot", new String[] {"false",
        "purge the log up to each snapshot even if a follower still needs it (it then gets the "
            + "snapshot)"});
    k.put("watch.historyEntries", new String[] {"10000",
        "map changes each node keeps for watchers to resume from"});
    k.put("watch.historyRanges", new String[] {"1000000",
        "range entries the kept changes may hold in all (the oldest go first; at least "
            + Limits.MAX_SPLIT_PIECES + ", the largest change)"});
    k.put("watch.maxWatchers", new String[] {"10000", "watch streams one node serves at once"});
    k.put("watch.maxGetMapWaiters", new String[] {"10000",
        "GetMap calls one node keeps waiting for a version it has not applied yet; past it "
            + "RESOURCE_EXHAUSTED"});
    k.put("watch.maxGetMapWait", new String[] {"60s",
        "longest one GetMap call waits for its min_version (at most 10m); a longer "
            + "wait_millis is shortened to it, like a long poll"});
    k.put("watch.leaderLoss", new String[] {"0",
        "a node that has heard from no leader for this long (cut off from the other nodes) "
            + "ends its watch streams and refuses new ones UNAVAILABLE, so watchers move to a "
            + "node that follows the map; more than raft.electionTimeoutMax (0: 3 times it, at "
            + "least 3s)"});
    k.put("watch.progressInterval", new String[] {"5s",
        "how often an idle watch stream gets a progress event"});
    k.put("watch.chunkEntries", new String[] {"4096",
        "map entries (ranges and servers) per chunk of a full map sent to a watcher or reader "
            + "(1.." + MapChunks.MAX_CHUNK_ENTRIES + ")"});
    k.put("map.maxSplitPieces", new String[] {Integer.toString(Limits.MAX_SPLIT_PIECES),
        "the most ranges one split into equal pieces makes (2.." + Limits.MAX_SPLIT_PIECES
            + "; bounds the change's size)"});
    k.put("handover.maxPerServer", new String[] {"2",
        "handovers one queue server takes part in at once (as source or target)"});
    k.put("handover.maxTotal", new String[] {"8", "handovers open in the cluster at once"});
    k.put("handover.prepareTimeout", new String[] {"10s",
        "the leader aborts a handover whose target has not opened its held queue by then"});
    k.put("handover.drainTimeout", new String[] {"60s",
        "the leader aborts (reverses) a handover whose source has not drained by then"});
    k.put("handover.abortSwitchTimeout", new String[] {"5m",
        "the leader ends a handover aborted from SWITCH that is not reversed by then (its target "
            + "down, say): the source serves the range again and what the target held reaches "
            + "it as late messages; at least handover.drainTimeout"});
    k.put("leader.maxQueuedRequests", new String[] {"1000",
        "requests from the API (handover and load reports, balancer requests) each leader loop "
            + "holds queued or in progress; past it RESOURCE_EXHAUSTED"});
    k.put("server.suspectAfter", new String[] {"3s",
        "a queue server silent this long is logged as suspect"});
    k.put("server.downAfter", new String[] {"10s",
        "a queue server silent this long is committed DOWN and its ranges are moved away "
            + "(more than server.lease + server.leaseMargin)"});
    k.put("server.lease", new String[] {"6s",
        "ownership lease a heartbeat's answer grants: a queue server that cannot renew it "
            + "stops accepting and delivering until it does"});
    k.put("server.leaseMargin", new String[] {"1s",
        "added to server.lease before a silent server's ranges may be forced away, for clock "
            + "rates that differ between hosts"});
    k.put("history.bucket", new String[] {"10s",
        "width of a fine load-history bucket: the leader commits one entry per bucket"});
    k.put("history.fineRetention", new String[] {"2d", "how long fine buckets are kept"});
    k.put("history.coarseBucket", new String[] {"5m",
        "width of a coarse bucket (a whole multiple of history.bucket)"});
    k.put("history.coarseRetention", new String[] {"56d", "how long coarse buckets are kept"});
    k.put("telemetry.hotKeys", new String[] {"32", "hot keys kept per history bucket"});
    k.put("balancer.enabled", new String[] {"true",
        "the leader balances automatically (false: plans only on request)"});
    k.put("balancer.interval", new String[] {"30s", "time between the leader's balancer rounds"});
    // The acting settings default to what the simulator's predictive strategy runs and
    // bench/RESULTS.md §6 measures (PlannerStrategy.predictiveConfigFor; NodeConfigTest checks).
    k.put("balancer.criterion", new String[] {"MAX_MEAN_OR_HIGH_WATER",
        "imbalance criterion: MAX_MEAN, HIGH_WATER, STDDEV or MAX_MEAN_OR_HIGH_WATER (acts on either "
            + "threshold)"});
    k.put("balancer.maxMeanRatio", new String[] {"1.2",
        "MAX_MEAN acts when max / mean predicted utilisation exceeds this"});
    k.put("balancer.highWater", new String[] {"1.0",
        "HIGH_WATER acts when a server's predicted utilisation exceeds this"});
    k.put("balancer.stddevThreshold", new String[] {"0.15",
        "STDDEV acts when the standard deviation of predicted utilisation exceeds this"});
    k.put("balancer.hysteresis", new String[] {"0.02",
        "once acting, keep balancing until the criterion is this far below its threshold"});
    k.put("balancer.actAbove", new String[] {"0.7",
        "do not start acting while every server's utilisation is at or below this"});
    k.put("balancer.lumpAllowance", new String[] {"1",
        "max/mean is not balanced below 1 + this x (the hottest key's load / a mean server's load);"
            + " 1 = what any greedy placement reaches, 0 = off"});
    k.put("balancer.quantile", new String[] {"0.9",
        "the forecast quantile planned for (not the mean), in (0.5, 1)"});
    k.put("balancer.upperCorrelation", new String[] {"0",
        "how a server's planned load adds its ranges' upper quantiles: 1 adds them (cautious), "
            + "0 treats their errors as independent"});
    k.put("balancer.horizon", new String[] {"10m", "how far ahead the balancer plans"});
    k.put("balancer.season", new String[] {"1d",
        "the forecasters' daily season (a whole number of history.coarseBucket); shorten it "
            + "with the history buckets to compress a day for a demo"});
    k.put("balancer.refitEvery", new String[] {"3h",
        "how often each slice's forecast model is re-selected and refitted"});
    k.put("balancer.maxMovesPerRound", new String[] {"4", "handovers started by one round"});
    k.put("balancer.maxMovesPerServer", new String[] {"2",
        "handovers one server takes part in per round, counting those running"});
    k.put("balancer.maxMovesPerWindow", new String[] {"4",
        "handovers started within any balancer.moveWindow"});
    k.put("balancer.moveWindow", new String[] {"10m", "the window of balancer.maxMovesPerWindow"});
    k.put("balancer.minDwell", new String[] {"10m", "a range is not moved again within this"});
    k.put("balancer.minGain", new String[] {"0.02",
        "a move must lower its pair's max utilisation by more than this"});
    k.put("balancer.expectedHold", new String[] {"30s",
        "how long a handover is expected to hold a range's new messages"});
    k.put("balancer.disruptionWeight", new String[] {"1",
        "weight of a move's delayed load against its fixed cost"});
    k.put("balancer.splitMinLoad", new String[] {"0.05",
        "a range too hot to place is split only above this share of its owner's capacity"});
    k.put("balancer.hotKeyShare", new String[] {"0.5",
        "split around a hot key bringing at least this share of its range's load"});
    k.put("balancer.maxSplitsPerRound", new String[] {"8", "splits one round may make"});
    k.put("balancer.maxRanges", new String[] {"200000", "splits never make more ranges than this"});
    k.put("balancer.mergeMaxLoad", new String[] {"0.002",
        "adjacent ranges of one owner merge when together below this share of its capacity "
            + "(0: never)"});
    k.put("balancer.maxMergesPerRound", new String[] {"16", "merges one round may make"});
    k.put("balancer.minRangesPerServer", new String[] {"16",
        "merges never leave a server fewer ranges than this"});
    k.put("balancer.maxMergesPerMove", new String[] {"64",
        "ranges merged into one so that a server made of small ranges can shed load (0: never)"});
    k.put("balancer.capacityPerWeight", new String[] {"10000",
        "cost units per second a queue server of capacity weight 1 sustains"});
    k.put("balancer.hotKeys", new String[] {"32", "hot keys the planner may split around"});
    k.put("cost.perMessage", new String[] {"1", "cost of one message"});
    k.put("cost.perByte", new String[] {"0.0009765625", "cost of one payload byte (1/1024)"});
    KEYS = Collections.unmodifiableMap(k);
  }

  /** The most {@code watch.maxGetMapWait} may be: a waiting call holds a timer and a place. */
  private static final Duration MAX_GET_MAP_WAIT = Duration.ofMinutes(10);
  private static final Pattern PEER_KEY = Pattern.compile("peer\\.([^.]+)\\.(raft|api)");
  private static final Pattern DURATION = Pattern.compile("(\\d+)\\s*(ms|s|m|h|d)?");
  private static final Pattern SIZE = Pattern.compile("(\\d+)\\s*(B|KB|MB|GB)?");

  private final String nodeId;
  private final Path dataDir;
  private final String clusterName;
  private final List<Peer> peers;
  private final Duration electionTimeoutMin;
  private final Duration electionTimeoutMax;
  private final Duration commitPushMaxWait;
  private final long snapshotEvery;
  private final long segmentSizeBytes;
  private final boolean purgeUpToSnapshot;
  private final int historyEntries;
  private final int maxWatchers;
  private final int maxGetMapWaiters;
  private final Duration maxGetMapWait;
  private final Duration leaderLoss;
  private final Duration progressInterval;
  private final int chunkEntries;
  private final int historyRanges;
  private final int maxSplitPieces;
  private final int handoverMaxPerServer;
  private final int handoverMaxTotal;
  private final int leaderMaxQueuedRequests;
  private final Duration prepareTimeout;
  private final Duration drainTimeout;
  private final Duration abortSwitchTimeout;
  private final Duration suspectAfter;
  private final Duration downAfter;
  private final Duration lease;
  private final Duration leaseMargin;
  private final HistoryLayout historyLayout;
  private final boolean balancerEnabled;
  private final Duration balancerInterval;
  private final BalancerConfig balancerConfig;
  private final Duration balancerSeason;
  private final Duration balancerRefitEvery;
  private final double capacityPerWeight;
  private final int balancerHotKeys;
  private final CostModel costModel;

  private NodeConfig(Map<String, String> v) {
    for (String key : v.keySet()) {
      if (!KEYS.containsKey(key) && !PEER_KEY.matcher(key).matches()) {
        throw new IllegalArgumentException(
            "unknown configuration key '" + key + "' (known: " + KEYS.keySet() + ")");
      }
    }
    nodeId = required(v, "node.id");
    dataDir = Path.of(required(v, "node.dataDir"));
    clusterName = get(v, "cluster.name");
    Map<String, String[]> byId = new LinkedHashMap<>();
    for (Map.Entry<String, String> e : v.entrySet()) {
      Matcher m = PEER_KEY.matcher(e.getKey());
      if (m.matches()) {
        String[] addrs = byId.computeIfAbsent(m.group(1), id -> new String[2]);
        addrs[m.group(2).equals("raft") ? 0 : 1] = checkAddress(e.getKey(), e.getValue());
      }
    }
    List<Peer> list = new ArrayList<>();
    for (String id : new TreeSet<>(byId.keySet())) {
      String[] a = byId.get(id);
      if (a[0] == null || a[1] == null) {
        throw new IllegalArgumentException(
            "peer " + id + " needs both peer." + id + ".raft and peer." + id + ".api");
      }
      list.add(new Peer(id, a[0], a[1]));
    }
    if (list.isEmpty()) {
      throw new IllegalArgumentException("no peers configured (peer.<id>.raft, peer.<id>.api)");
    }
    if (list.stream().noneMatch(p -> p.id().equals(nodeId))) {
      throw new IllegalArgumentException(
          "node.id " + nodeId + " is not one of the peers " + byId.keySet());
    }
    peers = List.copyOf(list);
    electionTimeoutMin = duration(v, "raft.electionTimeoutMin");
    electionTimeoutMax = duration(v, "raft.electionTimeoutMax");
    if (electionTimeoutMax.compareTo(electionTimeoutMin) <= 0) {
      throw new IllegalArgumentException(
          "raft.electionTimeoutMax must exceed raft.electionTimeoutMin");
    }
    commitPushMaxWait = durationOrZero(v, "raft.commitPushMaxWait");
    if (commitPushMaxWait.compareTo(electionTimeoutMin) >= 0) {
      throw new IllegalArgumentException(
          "raft.commitPushMaxWait must be less than raft.electionTimeoutMin");
    }
    snapshotEvery = positive(v, "raft.snapshotEvery");
    segmentSizeBytes = size(v, "raft.segmentSize");
    purgeUpToSnapshot = bool(v, "raft.purgeUpToSnapshot");
    historyEntries = (int) positive(v, "watch.historyEntries");
    maxWatchers = (int) positive(v, "watch.maxWatchers");
    maxGetMapWaiters = (int) positive(v, "watch.maxGetMapWaiters");
    maxGetMapWait = duration(v, "watch.maxGetMapWait");
    if (maxGetMapWait.compareTo(MAX_GET_MAP_WAIT) > 0) {
      throw new IllegalArgumentException("watch.maxGetMapWait must be at most 10m");
    }
    progressInterval = duration(v, "watch.progressInterval");
    Duration loss = durationOrZero(v, "watch.leaderLoss");
    leaderLoss = loss.isZero() ? max(Duration.ofSeconds(3), electionTimeoutMax.multipliedBy(3))
        : loss;
    if (leaderLoss.compareTo(electionTimeoutMax) <= 0) {
      // An election without a fault takes up to electionTimeoutMax: not a lost leader.
      throw new IllegalArgumentException("watch.leaderLoss must exceed raft.electionTimeoutMax");
    }
    historyRanges = (int) positive(v, "watch.historyRanges");
    if (historyRanges < Limits.MAX_SPLIT_PIECES) {
      throw new IllegalArgumentException("watch.historyRanges must be at least "
          + Limits.MAX_SPLIT_PIECES + " (the largest change)");
    }
    chunkEntries = (int) positive(v, "watch.chunkEntries");
    if (chunkEntries > MapChunks.MAX_CHUNK_ENTRIES) {
      throw new IllegalArgumentException(
          "watch.chunkEntries must be between 1 and " + MapChunks.MAX_CHUNK_ENTRIES);
    }
    maxSplitPieces = (int) positive(v, "map.maxSplitPieces");
    if (maxSplitPieces < 2 || maxSplitPieces > Limits.MAX_SPLIT_PIECES) {
      throw new IllegalArgumentException(
          "map.maxSplitPieces must be between 2 and " + Limits.MAX_SPLIT_PIECES);
    }
    handoverMaxPerServer = (int) positive(v, "handover.maxPerServer");
    handoverMaxTotal = (int) positive(v, "handover.maxTotal");
    leaderMaxQueuedRequests = (int) positive(v, "leader.maxQueuedRequests");
    prepareTimeout = duration(v, "handover.prepareTimeout");
    drainTimeout = duration(v, "handover.drainTimeout");
    abortSwitchTimeout = duration(v, "handover.abortSwitchTimeout");
    if (abortSwitchTimeout.compareTo(drainTimeout) < 0) {
      // A reversal moves what the target held through one drain: given less time than the
      // drain had, a slow but live one would be cut short into late messages.
      throw new IllegalArgumentException("handover.abortSwitchTimeout ("
          + get(v, "handover.abortSwitchTimeout") + ") must not be shorter than "
          + "handover.drainTimeout (" + get(v, "handover.drainTimeout") + ")");
    }
    suspectAfter = duration(v, "server.suspectAfter");
    downAfter = duration(v, "server.downAfter");
    if (downAfter.compareTo(suspectAfter) < 0) {
      throw new IllegalArgumentException("server.downAfter must not be shorter than "
          + "server.suspectAfter");
    }
    lease = duration(v, "server.lease");
    leaseMargin = durationOrZero(v, "server.leaseMargin");
    if (downAfter.compareTo(lease.plus(leaseMargin)) <= 0) {
      // A server is forced out only once its own lease has certainly run out (docs/design.md §5).
      throw new IllegalArgumentException("server.downAfter (" + get(v, "server.downAfter")
          + ") must be longer than server.lease + server.leaseMargin (" + get(v, "server.lease")
          + " + " + get(v, "server.leaseMargin") + ")");
    }
    try {
      historyLayout = new HistoryLayout(
          duration(v, "history.bucket").toMillis(),
          duration(v, "history.fineRetention").toMillis(),
          duration(v, "history.coarseBucket").toMillis(),
          duration(v, "history.coarseRetention").toMillis(),
          (int) positive(v, "telemetry.hotKeys")).check();
    } catch (PlbException e) {
      throw new IllegalArgumentException(e.getMessage());
    }
    balancerEnabled = bool(v, "balancer.enabled");
    balancerInterval = duration(v, "balancer.interval");
    balancerSeason = duration(v, "balancer.season");
    balancerRefitEvery = duration(v, "balancer.refitEvery");
    capacityPerWeight = decimal(v, "balancer.capacityPerWeight");
    if (!(capacityPerWeight > 0)) {
      throw new IllegalArgumentException("balancer.capacityPerWeight must be > 0");
    }
    balancerHotKeys = (int) nonNegative(v, "balancer.hotKeys");
    costModel = new CostModel(decimal(v, "cost.perMessage"), decimal(v, "cost.perByte"));
    balancerConfig = plannerConfig(v);
    // The forecasters' shape follows from the history's coarse bucket: check it now.
    forecasterConfig(historyLayout.coarseBucketMillis());
  }

  /**
   * The planner's settings from {@code balancer.*} values (a missing or empty one takes its
   * default), validated; {@link #balancerConfig()} of a node is this of its settings. Also how
   * {@code plb simulate --balancer} reads the settings it tries.
   *
   * @throws IllegalArgumentException naming the key whose value does not fit
   */
  public static BalancerConfig plannerConfig(Map<String, String> v) {
    String criterion = get(v, "balancer.criterion");
    Criterion c;
    try {
      c = Criterion.valueOf(criterion.toUpperCase(java.util.Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("balancer.criterion = '" + criterion
          + "' is not one of " + java.util.Arrays.toString(Criterion.values()));
    }
    // BalancerConfig checks every value and names the key in its message.
    return BalancerConfig.builder()
        .criterion(c)
        .maxMeanRatio(decimal(v, "balancer.maxMeanRatio"))
        .highWater(decimal(v, "balancer.highWater"))
        .stddevThreshold(decimal(v, "balancer.stddevThreshold"))
        .hysteresis(decimal(v, "balancer.hysteresis"))
        .actAbove(decimal(v, "balancer.actAbove"))
        .lumpAllowance(decimal(v, "balancer.lumpAllowance"))
        .quantile(decimal(v, "balancer.quantile"))
        .upperCorrelation(decimal(v, "balancer.upperCorrelation"))
        .horizon(duration(v, "balancer.horizon"))
        .maxMovesPerRound((int) nonNegative(v, "balancer.maxMovesPerRound"))
        .maxMovesPerServer((int) nonNegative(v, "balancer.maxMovesPerServer"))
        .maxMovesPerWindow((int) nonNegative(v, "balancer.maxMovesPerWindow"))
        .moveWindow(duration(v, "balancer.moveWindow"))
        .minDwell(duration(v, "balancer.minDwell"))
        .minGain(decimal(v, "balancer.minGain"))
        .expectedHold(duration(v, "balancer.expectedHold"))
        .disruptionWeight(decimal(v, "balancer.disruptionWeight"))
        .splitMinLoad(decimal(v, "balancer.splitMinLoad"))
        .hotKeyShare(decimal(v, "balancer.hotKeyShare"))
        .maxSplitsPerRound((int) nonNegative(v, "balancer.maxSplitsPerRound"))
        .maxRanges((int) positive(v, "balancer.maxRanges"))
        .mergeMaxLoad(decimal(v, "balancer.mergeMaxLoad"))
        .maxMergesPerRound((int) nonNegative(v, "balancer.maxMergesPerRound"))
        .minRangesPerServer((int) positive(v, "balancer.minRangesPerServer"))
        .maxMergesPerMove((int) nonNegative(v, "balancer.maxMergesPerMove"))
        .build();
  }

  /**
   * The forecasters' configuration for a history of {@code coarseMillis} coarse buckets: a season
   * of {@code balancer.season} (a whole number of coarse buckets, at least 4), a horizon of
   * {@code balancer.horizon} (rounded up to coarse buckets), refits every
   * {@code balancer.refitEvery}.
   *
   * @throws IllegalArgumentException naming the key whose value does not fit
   */
  public ForecasterConfig forecasterConfig(long coarseMillis) {
    long season = balancerSeason.toMillis();
    if (season % coarseMillis != 0 || season / coarseMillis < 4) {
      throw new IllegalArgumentException("balancer.season (" + season + " ms) must be a whole "
          + "number, at least 4, of history.coarseBucket (" + coarseMillis + " ms)");
    }
    if (season / coarseMillis > 100_000) {
      throw new IllegalArgumentException("balancer.season (" + season + " ms) is more than "
          + "100,000 history.coarseBucket (" + coarseMillis + " ms) buckets");
    }
    int day = (int) (season / coarseMillis);
    long horizon = balancerConfig.horizon().toMillis();
    int steps = (int) Math.max(1, Math.min(Integer.MAX_VALUE, (horizon + coarseMillis - 1)
        / coarseMillis));
    ForecasterConfig f;
    try {
      f = ForecasterConfig.defaults(day, steps);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("balancer.season (" + day + " coarse buckets) and "
          + "balancer.horizon (" + horizon + " ms, " + steps + " coarse buckets) do not make a "
          + "forecaster: " + e.getMessage());
    }
    int refit = (int) Math.max(1, Math.min(day, balancerRefitEvery.toMillis() / coarseMillis));
    return f.withRefitEvery(refit);
  }

  /** Reads {@code file} (may be null), then applies {@code overrides}. */
  public static NodeConfig load(Path file, Map<String, String> overrides) throws IOException {
    Map<String, String> values = new LinkedHashMap<>();
    if (file != null) {
      Properties p = new Properties();
      try (Reader r = Files.newBufferedReader(file)) {
        p.load(r);
      }
      for (String name : p.stringPropertyNames()) {
        values.put(name, p.getProperty(name).strip());
      }
    }
    for (Map.Entry<String, String> e : overrides.entrySet()) {
      values.put(e.getKey().strip(), e.getValue().strip());
    }
    return new NodeConfig(values);
  }

  /** From explicit values (tests, embedding). */
  public static NodeConfig of(Map<String, String> values) {
    return new NodeConfig(new LinkedHashMap<>(values));
  }

  public String nodeId() {
    return nodeId;
  }

  public Path dataDir() {
    return dataDir;
  }

  public String clusterName() {
    return clusterName;
  }

  public List<Peer> peers() {
    return peers;
  }

  public Peer self() {
    return peer(nodeId);
  }

  public Peer peer(String id) {
    for (Peer p : peers) {
      if (p.id().equals(id)) {
        return p;
      }
    }
    return null;
  }

  public Duration electionTimeoutMin() {
    return electionTimeoutMin;
  }

  public Duration electionTimeoutMax() {
    return electionTimeoutMax;
  }

  public Duration commitPushMaxWait() {
    return commitPushMaxWait;
  }

  public long snapshotEvery() {
    return snapshotEvery;
  }

  public long segmentSizeBytes() {
    return segmentSizeBytes;
  }

  public boolean purgeUpToSnapshot() {
    return purgeUpToSnapshot;
  }

  public int historyEntries() {
    return historyEntries;
  }

  public int maxWatchers() {
    return maxWatchers;
  }

  /** GetMap calls waiting for a version, at once, on this node. */
  public int maxGetMapWaiters() {
    return maxGetMapWaiters;
  }

  /** The longest one GetMap call waits for its version; a longer wait asked for is shortened. */
  public Duration maxGetMapWait() {
    return maxGetMapWait;
  }

  private static Duration max(Duration a, Duration b) {
    return a.compareTo(b) >= 0 ? a : b;
  }

  /** How long a node may hear from no leader before it ends its watch streams. */
  public Duration leaderLoss() {
    return leaderLoss;
  }

  public Duration progressInterval() {
    return progressInterval;
  }

  public int historyRanges() {
    return historyRanges;
  }

  public int chunkEntries() {
    return chunkEntries;
  }

  public int maxSplitPieces() {
    return maxSplitPieces;
  }

  public int handoverMaxPerServer() {
    return handoverMaxPerServer;
  }

  public int handoverMaxTotal() {
    return handoverMaxTotal;
  }

  /** API requests each leader loop holds queued or in progress at once. */
  public int leaderMaxQueuedRequests() {
    return leaderMaxQueuedRequests;
  }

  public Duration prepareTimeout() {
    return prepareTimeout;
  }

  public Duration drainTimeout() {
    return drainTimeout;
  }

  public Duration abortSwitchTimeout() {
    return abortSwitchTimeout;
  }

  public Duration suspectAfter() {
    return suspectAfter;
  }

  public Duration downAfter() {
    return downAfter;
  }

  /** The ownership lease a heartbeat's answer grants a queue server. */
  public Duration lease() {
    return lease;
  }

  /** Added to the lease before a silent server's ranges may be forced away. */
  public Duration leaseMargin() {
    return leaseMargin;
  }

  public boolean balancerEnabled() {
    return balancerEnabled;
  }

  public Duration balancerInterval() {
    return balancerInterval;
  }

  /** The planner's settings (balancer.*), validated. */
  public BalancerConfig balancerConfig() {
    return balancerConfig;
  }

  public double capacityPerWeight() {
    return capacityPerWeight;
  }

  public int balancerHotKeys() {
    return balancerHotKeys;
  }

  public CostModel costModel() {
    return costModel;
  }

  /** The load history's layout (history.*, telemetry.hotKeys), validated. */
  public HistoryLayout historyLayout() {
    return historyLayout;
  }

  // ---------------------------------------------------------------- parsing helpers

  private static String get(Map<String, String> v, String key) {
    String value = v.get(key);
    return value == null || value.isEmpty() ? KEYS.get(key)[0] : value;
  }

  private static String required(Map<String, String> v, String key) {
    String value = get(v, key);
    if (value.isEmpty()) {
      throw new IllegalArgumentException("missing required setting " + key + " ("
          + KEYS.get(key)[1] + ")");
    }
    return value;
  }

  private static Duration duration(Map<String, String> v, String key) {
    Duration d = durationOrZero(v, key);
    if (d.isZero()) {
      throw new IllegalArgumentException(key + " must be greater than zero");
    }
    return d;
  }

  /** A duration where 0 is meaningful (it turns a wait off). */
  private static Duration durationOrZero(Map<String, String> v, String key) {
    String text = get(v, key);
    Matcher m = DURATION.matcher(text);
    if (!m.matches()) {
      throw new IllegalArgumentException(
          key + " = '" + text + "' is not a duration (e.g. 500ms, 5s, 2m, 1h, 2d)");
    }
    long n = digits(key, text, m.group(1));
    String unit = m.group(2) == null ? "ms" : m.group(2);
    long millis;
    try {
      millis = switch (unit) {
        case "s" -> Math.multiplyExact(n, 1000L);
        case "m" -> Math.multiplyExact(n, 60_000L);
        case "h" -> Math.multiplyExact(n, 3_600_000L);
        case "d" -> Math.multiplyExact(n, 86_400_000L);
        default -> n;
      };
    } catch (ArithmeticException e) {
      throw new IllegalArgumentException(key + " = '" + text + "' is too long a duration");
    }
    return Duration.ofMillis(millis);
  }

  private static long size(Map<String, String> v, String key) {
    String text = get(v, key);
    Matcher m = SIZE.matcher(text.toUpperCase());
    if (!m.matches()) {
      throw new IllegalArgumentException(key + " = '" + text + "' is not a size (e.g. 64KB, 8MB)");
    }
    long n = digits(key, text, m.group(1));
    String unit = m.group(2) == null ? "B" : m.group(2);
    int shift = switch (unit) {
      case "KB" -> 10;
      case "MB" -> 20;
      case "GB" -> 30;
      default -> 0;
    };
    if (n > (1L << 40) >> shift) {
      throw new IllegalArgumentException(key + " = '" + text + "' is too large (at most 1TB)");
    }
    long bytes = n << shift;
    if (bytes < 1024) {
      throw new IllegalArgumentException(key + " must be at least 1KB");
    }
    return bytes;
  }

  private static long digits(String key, String text, String digits) {
    try {
      return Long.parseLong(digits);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " = '" + text + "' is too large a number");
    }
  }

  private static long positive(Map<String, String> v, String key) {
    String text = get(v, key);
    try {
      long n = Long.parseLong(text);
      if (n <= 0 || n > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(key + " must be between 1 and " + Integer.MAX_VALUE);
      }
      return n;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " = '" + text + "' is not a whole number");
    }
  }

  private static long nonNegative(Map<String, String> v, String key) {
    String text = get(v, key);
    try {
      long n = Long.parseLong(text);
      if (n < 0 || n > Integer.MAX_VALUE) {
        throw new IllegalArgumentException(key + " must be between 0 and " + Integer.MAX_VALUE);
      }
      return n;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " = '" + text + "' is not a whole number");
    }
  }

  private static double decimal(Map<String, String> v, String key) {
    String text = get(v, key);
    try {
      double d = Double.parseDouble(text);
      if (!Double.isFinite(d)) {
        throw new NumberFormatException();
      }
      return d;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " = '" + text + "' is not a number");
    }
  }

  private static boolean bool(Map<String, String> v, String key) {
    String text = get(v, key);
    if (!text.equals("true") && !text.equals("false")) {
      throw new IllegalArgumentException(key + " = '" + text + "' is not true or false");
    }
    return Boolean.parseBoolean(text);
  }

  private static String checkAddress(String key, String value) {
    int colon = value.lastIndexOf(':');
    if (colon <= 0 || !value.substring(colon + 1).matches("[0-9]{1,5}")) {
      throw new IllegalArgumentException(key + " = '" + value + "' is not host:port");
    }
    int port = port(value);
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException(
          key + " = '" + value + "' has port " + port + ", outside 1..65535");
    }
    return value;
  }

  static String host(String address) {
    return address.substring(0, address.lastIndexOf(':'));
  }

  static int port(String address) {
    try {
      return Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("'" + address + "' has no numeric port");
    }
  }
}
