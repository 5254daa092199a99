package io.plb.server;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.plb.client.wire.GrpcErrors;
import io.plb.client.wire.Wire;
import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.command.Limits;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.map.ClusterImage;
import io.plb.proto.v1.AdminServiceGrpc;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.CommandResult;
import io.plb.proto.v1.GetStatusRequest;
import io.plb.proto.v1.LoadHistoryRequest;
import io.plb.proto.v1.LoadHistoryResponse;
import io.plb.core.load.Resolution;
import io.plb.server.storage.StateStore;
import io.plb.proto.v1.NodeRole;
import io.plb.proto.v1.NodeStatus;
import io.plb.server.config.NodeConfig;
import io.plb.server.publish.MapPublisher;
import io.plb.core.time.Ticker;
import io.plb.server.leader.Balancer;
import io.plb.server.leader.HandoverDriver;
import io.plb.server.leader.RequestLimit;
import io.plb.server.leader.TelemetryIntake;
import io.plb.server.rpc.AdminServiceImpl;
import io.plb.server.rpc.AgentServiceImpl;
import io.plb.server.rpc.MapServiceImpl;
import io.plb.server.statemachine.PlbStateMachine;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.ratis.client.RaftClient;
import org.apache.ratis.conf.RaftProperties;
import org.apache.ratis.grpc.GrpcConfigKeys;
import org.apache.ratis.proto.RaftProtos.RoleInfoProto;
import org.apache.ratis.proto.RaftProtos.ServerRpcProto;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftClientReply;
import org.apache.ratis.protocol.RaftGroup;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.protocol.RaftPeer;
import org.apache.ratis.protocol.RaftPeerId;
import org.apache.ratis.protocol.exceptions.AlreadyClosedException;
import org.apache.ratis.protocol.exceptions.NotLeaderException;
import org.apache.ratis.retry.RetryPolicies;
import org.apache.ratis.server.DivisionInfo;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.RaftServerConfigKeys;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.apache.ratis.util.SizeInBytes;
import org.apache.ratis.util.TimeDuration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One PLB node: a member of the Ratis group whose state machine keeps the shard map in RocksDB,
 * and the gRPC API (map watch, admin, health, reflection) in front of it.
 *
 * <p>Lifecycle: {@link #start} builds and starts everything; {@link #close} stops the API, the
 * Raft server and the database, in that order. Thread-safe.
 *
 * <p>Writes: a node validates a command against its applied image and proposes it only if it
 * believes it leads; a follower refuses with UNAVAILABLE and the leader's address. Every replica
 * validates again when it applies, so a proposal overtaken by another change is rejected the same
 * way everywhere.
 */
public final class PlbNode implements AutoCloseable, AdminServiceImpl.Node {
  private static final Logger LOG = LoggerFactory.getLogger(PlbNode.class);

  private final NodeConfig config;
  private final RaftGroup group;
  private final RaftPeerId selfId;
  private final MapPublisher publisher;
  private final PlbStateMachine stateMachine;
  private final RaftServer raftServer;
  /**
   * The node's own Raft client, through which it proposes. Replaced when Ratis has closed it:
   * once an ordered request exhausts its retries (no leader for longer than the retry policy,
   * ~3 s), every later request on that client fails with AlreadyClosedException, and a leader
   * whose client that was could commit nothing more.
   */
  private final AtomicReference<RaftClient> raftClient = new AtomicReference<>();
  private final Server grpcServer;
  private final MapServiceImpl mapService;
  private final HealthStatusManager health = new HealthStatusManager();
  private final ExecutorService drainExecutor;
  private final ScheduledExecutorService timer;
  private final Map<String, ManagedChannel> peerChannels = new ConcurrentHashMap<>();
  private final ScheduledExecutorService leaderLoop;
  private final HandoverDriver handoverDriver;
  private final ScheduledExecutorService telemetryLoop;
  private final TelemetryIntake telemetry;
  private final ScheduledExecutorService balancerLoop;
  private final Balancer balancer;
  private final RequestLimit driverRequests;
  private final RequestLimit loadReports;
  private final ScheduledExecutorService commitPushLoop;
  private final FollowerCommitPush commitPush;
  private final long liveWindowMs;
  private volatile boolean closed;
  /** The monotonic clock the node's leader loops and its quorum contact are measured on. */
  private final Ticker ticker = Ticker.SYSTEM;

  private PlbNode(NodeConfig config) throws IOException {
    this.config = config;
    this.selfId = RaftPeerId.valueOf(config.nodeId());
    List<RaftPeer> peers = new ArrayList<>();
    for (NodeConfig.Peer p : config.peers()) {
      peers.add(
          RaftPeer.newBuilder()
              .setId(p.id())
              .setAddress(p.raftAddress())
              .build());
    }
    this.group = RaftGroup.valueOf(groupId(config.clusterName()), peers);
    Files.createDirectories(config.dataDir());

    this.publisher = new MapPublisher(config.historyEntries(), config.historyRanges());
    this.stateMachine =
        new PlbStateMachine(config.dataDir().resolve("db"), publisher, config.historyEntries());
    this.raftServer =
        RaftServer.newBuilder()
            .setServerId(selfId)
            .setGroup(group)
            .setStateMachine(stateMachine)
            .setProperties(raftProperties(config))
            .setOption(RaftStorage.StartupOption.RECOVER)
            .build();
    raftClient.set(newRaftClient());

    this.commitPushLoop =
        Executors.newSingleThreadScheduledExecutor(daemon("plb-commit-push-" + config.nodeId()));
    // A follower silent for a whole minimum election timeout (two heartbeat intervals) is not
    // waited for: it is down or cut off, and will catch up through appends when it returns.
    this.liveWindowMs = config.electionTimeoutMin().toMillis();
    this.commitPush = new FollowerCommitPush(
        this::followerProgress,
        this::nudgeFollowers,
        commitPushLoop,
        ticker,
        TimeUnit.MILLISECONDS.toNanos(1),
        config.commitPushMaxWait().toNanos());

    this.drainExecutor =
        Executors.newFixedThreadPool(2, daemon("plb-watch-" + config.nodeId()));
    this.timer = Executors.newSingleThreadScheduledExecutor(daemon("plb-timer-" + config.nodeId()));
    this.leaderLoop =
        Executors.newSingleThreadScheduledExecutor(daemon("plb-leader-" + config.nodeId()));
    this.handoverDriver = new HandoverDriver(
        publisher,
        this::propose,
        new HandoverDriver.Settings(config.handoverMaxPerServer(), config.handoverMaxTotal(),
            config.prepareTimeout(), config.drainTimeout(), config.abortSwitchTimeout(),
            config.suspectAfter(),
            config.downAfter(), config.lease(), config.leaseMargin()),
        ticker,
        leaderLoop,
        this::leaderHintText,
        this::majorityHeardSince);
    stateMachine.addLeadershipListener(handoverDriver);
    this.telemetryLoop =
        Executors.newSingleThreadScheduledExecutor(daemon("plb-telemetry-" + config.nodeId()));
    this.telemetry = new TelemetryIntake(
        this::propose,
        stateMachine::historyState,
        publisher::image,
        config.historyLayout(),
        System::currentTimeMillis,
        telemetryLoop,
        this::leaderHintText);
    stateMachine.addLeadershipListener(telemetry);
    this.balancerLoop =
        Executors.newSingleThreadScheduledExecutor(daemon("plb-balancer-" + config.nodeId()));
    this.balancer = new Balancer(config, stateMachine, publisher, handoverDriver, this::propose,
        System::currentTimeMillis, balancerLoop, this::leaderHintText);
    stateMachine.addLeadershipListener(balancer);
    this.mapService =
        new MapServiceImpl(
            publisher, drainExecutor, timer, config.maxWatchers(), config.maxGetMapWaiters(),
            config.maxGetMapWait(), config.progressInterval(), config.chunkEntries(),
            this::leaderSilenceMillis, config.leaderLoss());
    this.driverRequests = new RequestLimit("the handover driver", "leader.maxQueuedRequests",
        config.leaderMaxQueuedRequests());
    this.loadReports = new RequestLimit("the telemetry intake", "leader.maxQueuedRequests",
        config.leaderMaxQueuedRequests());
    NodeConfig.Peer self = config.self();
    this.grpcServer =
        NettyServerBuilder.forAddress(new InetSocketAddress(self.apiHost(), self.apiPort()))
            .permitKeepAliveTime(10, TimeUnit.SECONDS)
            .permitKeepAliveWithoutCalls(true)
            .addService(mapService)
            .addService(new AdminServiceImpl(this, config.maxSplitPieces()))
            .addService(new AgentServiceImpl(this::leaderDriver, this::leaderTelemetry,
                driverRequests, loadReports))
            .addService(health.getHealthService())
            .addService(ProtoReflectionServiceV1.newInstance())
            .build();
  }

  /** Starts a node: Raft first (it loads the state), then the API. */
  public static PlbNode start(NodeConfig config) throws IOException {
    PlbNode node = new PlbNode(config);
    try {
      node.raftServer.start();
      node.grpcServer.start();
    } catch (IOException | RuntimeException e) {
      node.close();
      throw e;
    }
    node.health.setStatus("", io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
    LOG.info(
        "PLB node {} started: API {}:{}, Raft {}, data {}",
        config.nodeId(), config.self().apiHost(), node.apiPort(), config.self().raftAddress(),
        config.dataDir());
    return node;
  }

  static RaftGroupId groupId(String clusterName) {
    return RaftGroupId.valueOf(
        UUID.nameUUIDFromBytes(("plb-cluster:" + clusterName).getBytes(StandardCharsets.UTF_8)));
  }

  private static RaftProperties raftProperties(NodeConfig config) {
    RaftProperties p = new RaftProperties();
    RaftServerConfigKeys.setStorageDir(p, List.of(new File(config.dataDir().toFile(), "raft")));
    GrpcConfigKeys.Server.setPort(p, config.self().raftPort());
    GrpcConfigKeys.Server.setHost(p, config.self().raftHost());
    RaftServerConfigKeys.Rpc.setTimeoutMin(
        p, TimeDuration.valueOf(config.electionTimeoutMin().toMillis(), TimeUnit.MILLISECONDS));
    RaftServerConfigKeys.Rpc.setTimeoutMax(
        p, TimeDuration.valueOf(config.electionTimeoutMax().toMillis(), TimeUnit.MILLISECONDS));
    // Linearizable (ReadIndex) reads: used to push a new commit index to followers at once.
    RaftServerConfigKeys.Read.setOption(p, RaftServerConfigKeys.Read.Option.LINEARIZABLE);
    RaftServerConfigKeys.Snapshot.setAutoTriggerEnabled(p, true);
    RaftServerConfigKeys.Snapshot.setAutoTriggerThreshold(p, config.snapshotEvery());
    RaftServerConfigKeys.Snapshot.setCreationGap(p, Math.min(1024, config.snapshotEvery()));
    RaftServerConfigKeys.Log.setSegmentSizeMax(p, SizeInBytes.valueOf(config.segmentSizeBytes()));
    RaftServerConfigKeys.Log.setPurgeUptoSnapshotIndex(p, config.purgeUpToSnapshot());
    // No commit-index metadata entries: the log then holds only PLB commands and configuration
    // entries, so map versions have few gaps and a refused write provably leaves the log alone.
    RaftServerConfigKeys.Log.setLogMetadataEnabled(p, false);
    RaftServerConfigKeys.Log.setPurgeGap(p, (int) Math.min(1024, config.snapshotEvery()));
    return p;
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    return r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    };
  }

  // ------------------------------------------------------------------ accessors

  public String id() {
    return config.nodeId();
  }

  public NodeConfig config() {
    return config;
  }

  /** The port the gRPC API listens on (useful when configured as 0). */
  public int apiPort() {
    return grpcServer.getPort();
  }

  public String apiAddress() {
    return config.self().apiHost() + ":" + apiPort();
  }

  public MapPublisher publisher() {
    return publisher;
  }

  public ClusterImage image() {
    return publisher.image();
  }

  public int watcherCount() {
    return mapService.watcherCount();
  }

  @Override
  public RequestLimit driverRequests() {
    return driverRequests;
  }

  /** GetMap calls waiting for a version on this node. */
  public int getMapWaiterCount() {
    return mapService.getMapWaiterCount();
  }

  private RaftServer.Division division() throws IOException {
    return raftServer.getDivision(group.getGroupId());
  }

  public boolean isLeader() {
    try {
      return !closed && division().getInfo().isLeader();
    } catch (IOException e) {
      return false;
    }
  }

  private RaftClient newRaftClient() {
    return RaftClient.newBuilder()
        .setRaftGroup(group)
        .setLeaderId(selfId)
        .setProperties(new RaftProperties())
        .setRetryPolicy(
            RetryPolicies.retryUpToMaximumCountWithFixedSleep(
                30, TimeDuration.valueOf(100, TimeUnit.MILLISECONDS)))
        .build();
  }

  /** Puts a new Raft client in place of {@code closed}, unless that was done already. */
  private void replaceRaftClient(RaftClient closedClient) {
    if (closed) {
      return;
    }
    RaftClient fresh = newRaftClient();
    if (raftClient.compareAndSet(closedClient, fresh)) {
      LOG.warn("the Raft client was closed after a write ran out of retries; using a new one");
      try {
        closedClient.close();
      } catch (IOException e) {
        LOG.debug("closing the old Raft client: {}", e.toString());
      }
    } else {
      try {
        fresh.close();
      } catch (IOException e) {
        LOG.debug("closing a spare Raft client: {}", e.toString());
      }
    }
  }

  private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (type.isInstance(c)) {
        return true;
      }
    }
    return false;
  }

  /** Forces a snapshot now (tests and operators); returns its index. */
  public long takeSnapshot() throws IOException {
    RaftClientReply reply =
        raftClient.get().getSnapshotManagementApi(selfId).create(30_000);
    if (!reply.isSuccess()) {
      throw new IOException("snapshot failed: " + reply.getException());
    }
    return reply.getLogIndex();
  }

  // ------------------------------------------------------------------ admin

  @Override
  public CompletableFuture<Long> submit(Command command) {
    // Validated before proposing, so bad input never reaches the log.
    return proposeIfLeader(command, () -> {
      if (command instanceof Command.SetBalancerPaused pause) {
        stateMachine.balancerState().apply(pause, 0);
      } else {
        CommandProcessor.validate(publisher.image(), command);
      }
    }).thenApply(CommandResult::getVersion);
  }

  /**
   * On the leader only: runs {@code validate} (which throws a {@link PlbException} for bad
   * input), proposes {@code command}, and completes with its result, or exceptionally with the
   * not-leader refusal, the validation's error or the entry's rejection.
   */
  private CompletableFuture<CommandResult> proposeIfLeader(Command command, Runnable validate) {
    try {
      RaftServer.Division d = division();
      if (!d.getInfo().isLeader()) {
        return CompletableFuture.failedFuture(notLeader(d));
      }
      validate.run();
    } catch (PlbException e) {
      return CompletableFuture.failedFuture(e);
    } catch (IOException e) {
      return CompletableFuture.failedFuture(
          new PlbException(ErrorCode.UNAVAILABLE, "node is not serving: " + e.getMessage()));
    }
    return propose(command, 0).thenApply(result -> {
      if (!result.getOk()) {
        throw new PlbException(ErrorCode.valueOf(result.getErrorCode()), result.getErrorMessage());
      }
      return result;
    });
  }

  @Override
  public CompletableFuture<Long> openProducer(String producer) {
    return proposeIfLeader(new Command.OpenProducer(producer), () -> {
      String problem = Limits.producerIdProblem(producer);
      if (problem != null) {
        throw PlbException.invalid(problem);
      }
    }).thenApply(result -> {
      LOG.info("producer {} opened at epoch {}", producer, result.getIndex());
      return result.getIndex();
    });
  }

  /**
   * Proposes {@code command} through Raft and completes with its result once applied here.
   * {@code proposerTerm} (0 for none) fences the leader's own decisions.
   */
  CompletableFuture<CommandResult> propose(Command command, long proposerTerm) {
    Message message = Message.valueOf(UnsafeByteOperations.unsafeWrap(
        Wire.toLogEntry(command, proposerTerm).toByteArray()));
    RaftClient client = raftClient.get();
    return client
        .async()
        .send(message)
        .handle(
            (reply, error) -> {
              if (error != null) {
                if (causedBy(error, AlreadyClosedException.class)) {
                  replaceRaftClient(client);
                }
                throw new PlbException(
                    ErrorCode.UNAVAILABLE, "write not committed: " + rootMessage(error), error);
              }
              if (!reply.isSuccess()) {
                NotLeaderException nle = reply.getNotLeaderException();
                if (nle != null) {
                  throw new PlbException(
                      ErrorCode.UNAVAILABLE, "leadership moved while writing; retry");
                }
                throw new PlbException(
                    ErrorCode.UNAVAILABLE, "write not committed: " + reply.getException());
              }
              commitPush.committed(reply.getLogIndex());
              try {
                return CommandResult.parseFrom(reply.getMessage().getContent().toByteArray());
              } catch (IOException e) {
                throw new PlbException(ErrorCode.INTERNAL, "unreadable command result", e);
              }
            });
  }

  /**
   * Followers learn a new commit index only with the leader's next append or heartbeat — up to
   * half the minimum election timeout later (250 ms by default) when no other write follows. A
   * linearizable read for a new index makes the leader send a heartbeat round at once
   * (ReadIndex), which carries the commit index. {@link FollowerCommitPush} decides when. Fire
   * and forget.
   */
  private void nudgeFollowers() {
    raftClient.get().async().sendReadOnly(Message.EMPTY).exceptionally(e -> null);
  }

  /** The leader's view of its followers, or null if this node does not lead. */
  private FollowerCommitPush.Followers followerProgress() {
    DivisionInfo info = leaderInfo();
    if (info == null) {
      return null;
    }
    long[] match = info.getFollowerMatchIndices();
    int live = 0;
    for (ServerRpcProto f : info.getRoleInfoProto().getLeaderInfo().getFollowerInfoList()) {
      if (f.getLastRpcElapsedTimeMs() < liveWindowMs) {
        live++;
      }
    }
    return new FollowerCommitPush.Followers(match, live);
  }

  /** This node's Raft division info while it leads and serves, else null. */
  private DivisionInfo leaderInfo() {
    if (closed) {
      return null;
    }
    try {
      DivisionInfo info = division().getInfo();
      return info.isLeader() ? info : null;
    } catch (IOException e) {
      return null;
    }
  }

  /**
   * The latest instant (on {@link #ticker}, the driver's clock) by which a majority of the group,
   * this node included, had answered this node as leader; {@link Long#MIN_VALUE} if it does not
   * lead. From the leader's record of each follower's last answer, rounded a millisecond early.
   */
  private long majorityHeardSince() {
    DivisionInfo info = leaderInfo();
    if (info == null) {
      return Long.MIN_VALUE;
    }
    long now = ticker.nanos();
    List<ServerRpcProto> followers = info.getRoleInfoProto().getLeaderInfo().getFollowerInfoList();
    long[] heard = new long[followers.size()];
    for (int i = 0; i < heard.length; i++) {
      heard[i] = now - (followers.get(i).getLastRpcElapsedTimeMs() + 1) * 1_000_000L;
    }
    Arrays.sort(heard);
    int needed = (followers.size() + 1) / 2; // a majority of the group, less this node
    if (needed == 0) {
      return now;
    }
    return heard[heard.length - needed];
  }

  /** When this node last knew a working leader (ticker nanos); its start until then. */
  private volatile long lastLeaderContact = ticker.nanos();

  /**
   * How long this node has been without a working leader: 0 while it leads and a majority
   * answered it recently, or follows a leader that spoke to it recently; growing while it is cut
   * off from the other nodes (a follower whose leader is silent, a candidate, a leader without a
   * majority). From Ratis's record of the last message from the leader, or to it.
   */
  long leaderSilenceMillis() {
    long now = ticker.nanos();
    long contact = Long.MIN_VALUE;
    if (!closed) {
      try {
        DivisionInfo info = division().getInfo();
        if (info.isLeader()) {
          contact = majorityHeardSince();
        } else {
          RoleInfoProto role = info.getRoleInfoProto();
          if (role.hasFollowerInfo() && role.getFollowerInfo().hasLeaderInfo()
              && !role.getFollowerInfo().getLeaderInfo().getId().getId().isEmpty()) {
            contact = now - role.getFollowerInfo().getLeaderInfo().getLastRpcElapsedTimeMs()
                * 1_000_000L;
          }
        }
      } catch (IOException e) {
        // not serving: no contact
      }
    }
    long last = lastLeaderContact;
    if (contact != Long.MIN_VALUE && contact - last > 0) {
      lastLeaderContact = last = contact;
    }
    return Math.max(0, (now - last) / 1_000_000L);
  }

  FollowerCommitPush.Followers followerProgressForTest() {
    return followerProgress();
  }

  /** Commit pushes sent to the followers since start (leader only). */
  public long commitPushes() {
    return commitPush.nudges();
  }

  /** Of {@link #commitPushes}, those sent after giving up on a follower still behind. */
  public long lateCommitPushes() {
    return commitPush.lateNudges();
  }

  /** Of {@link #commitPushes}, those that had to wait for a follower to acknowledge the entry. */
  public long waitedCommitPushes() {
    return commitPush.waitedNudges();
  }

  @Override
  public CompletableFuture<HandoverDriver> leaderDriver() {
    try {
      RaftServer.Division d = division();
      if (!d.getInfo().isLeader() || !handoverDriver.isLeading()) {
        return CompletableFuture.failedFuture(notLeader(d));
      }
      return CompletableFuture.completedFuture(handoverDriver);
    } catch (IOException e) {
      return CompletableFuture.failedFuture(
          new PlbException(ErrorCode.UNAVAILABLE, "node is not serving: " + e.getMessage()));
    }
  }

  /** The telemetry intake, if this node is the ready leader; else the not-leader refusal. */
  public CompletableFuture<TelemetryIntake> leaderTelemetry() {
    try {
      RaftServer.Division d = division();
      if (!d.getInfo().isLeader() || !telemetry.isLeading()) {
        return CompletableFuture.failedFuture(notLeader(d));
      }
      return CompletableFuture.completedFuture(telemetry);
    } catch (IOException e) {
      return CompletableFuture.failedFuture(
          new PlbException(ErrorCode.UNAVAILABLE, "node is not serving: " + e.getMessage()));
    }
  }

  /** The balancer, if this node is the ready leader; else the not-leader refusal. */
  @Override
  public CompletableFuture<Balancer> leaderBalancer() {
    try {
      RaftServer.Division d = division();
      if (!d.getInfo().isLeader() || !balancer.isLeading()) {
        return CompletableFuture.failedFuture(notLeader(d));
      }
      return CompletableFuture.completedFuture(balancer);
    } catch (IOException e) {
      return CompletableFuture.failedFuture(
          new PlbException(ErrorCode.UNAVAILABLE, "node is not serving: " + e.getMessage()));
    }
  }

  public Balancer balancer() {
    return balancer;
  }

  public TelemetryIntake telemetry() {
    return telemetry;
  }

  /** The state machine (tests and tools read the load history through it). */
  public PlbStateMachine stateMachine() {
    return stateMachine;
  }

  @Override
  public LoadHistoryResponse loadHistory(LoadHistoryRequest r) {
    Resolution resolution = r.getResolution() == io.plb.proto.v1.Resolution.RESOLUTION_UNSPECIFIED
        ? Resolution.FINE : Wire.fromProto(r.getResolution());
    if (r.getFromMillis() < 0 || r.getToMillis() < 0) {
      throw PlbException.invalid("from_millis and to_millis must be below 2^63");
    }
    if (r.getToMillis() != 0 && r.getToMillis() <= r.getFromMillis()) {
      throw PlbException.invalid("the time window is empty: to_millis " + r.getToMillis()
          + " is not after from_millis " + r.getFromMillis());
    }
    int first = -1;
    int last = -1;
    if (r.hasSlices()) {
      first = r.getSlices().getFirst();
      last = r.getSlices().getLast();
      if (first < 0 || last >= io.plb.core.keyspace.Ring.SLICES || first > last) {
        throw PlbException.invalid("slice range " + Integer.toUnsignedString(first) + ".."
            + Integer.toUnsignedString(last) + " is not within 0..4095 with first <= last");
      }
    }
    int maxRows = r.getMaxRows() == 0 ? MAX_HISTORY_ROWS : r.getMaxRows();
    if (maxRows < 0 || maxRows > MAX_HISTORY_ROWS) {
      throw PlbException.invalid("max_rows is at most " + MAX_HISTORY_ROWS);
    }
    if (!r.getServerId().isEmpty()) {
      io.plb.core.command.Limits.checkServerId(r.getServerId());
      if (publisher.image().server(r.getServerId()) == null
          && !stateMachine.historyState().watermarks().containsKey(r.getServerId())) {
        throw PlbException.notFound("no queue server with id " + r.getServerId()
            + " is registered or in the load history");
      }
    }
    StateStore.HistoryPage page;
    try {
      page = stateMachine.readHistory(resolution, r.getFromMillis(), r.getToMillis(), first, last,
          r.getServerId(), maxRows);
    } catch (IOException e) {
      throw new PlbException(ErrorCode.INTERNAL, "reading the load history failed: "
          + e.getMessage(), e);
    }
    LoadHistoryResponse.Builder b = LoadHistoryResponse.newBuilder()
        .setAppliedIndex(page.appliedIndex())
        .setNextFromMillis(page.nextFromMillis())
        .setNewestBucketMillis(Math.max(0, page.state().lastBucketMillis()));
    if (page.state().layout() != null) {
      b.setLayout(Wire.toProto(page.state().layout()));
    }
    for (io.plb.core.load.LoadBucket bucket : page.buckets()) {
      b.addBuckets(Wire.toProto(bucket));
    }
    return b.build();
  }

  /** The most slice rows one history answer holds. */
  static final int MAX_HISTORY_ROWS = 100_000;

  private static String rootMessage(Throwable t) {
    while (t.getCause() != null && t.getCause() != t) {
      t = t.getCause();
    }
    return t.toString();
  }

  private String leaderHintText() {
    try {
      RaftPeerId leader = division().getInfo().getLeaderId();
      NodeConfig.Peer peer = leader == null ? null : config.peer(leader.toString());
      return peer == null ? "" : "; the leader is " + peer.id() + " at " + peer.apiAddress();
    } catch (IOException e) {
      return "";
    }
  }

  private StatusRuntimeException notLeader(RaftServer.Division d) {
    RaftPeerId leader = d.getInfo().getLeaderId();
    String leaderId = leader == null ? "" : leader.toString();
    NodeConfig.Peer peer = leader == null ? null : config.peer(leaderId);
    return GrpcErrors.notLeader(config.nodeId(), leaderId, peer == null ? "" : peer.apiAddress());
  }

  @Override
  public NodeStatus localStatus() {
    NodeStatus.Builder b =
        NodeStatus.newBuilder()
            .setId(config.nodeId())
            .setApiAddress(apiAddress())
            .setRaftAddress(config.self().raftAddress())
            .setMapVersion(publisher.image().version())
            .setAppliedIndex(publisher.appliedIndex());
    try {
      RaftServer.Division d = division();
      var info = d.getInfo();
      b.setRole(
          switch (info.getCurrentRole()) {
            case LEADER -> NodeRole.LEADER;
            case CANDIDATE -> NodeRole.CANDIDATE;
            default -> NodeRole.FOLLOWER;
          });
      b.setTerm(info.getCurrentTerm());
      if (info.getLeaderId() != null) {
        b.setLeaderId(info.getLeaderId().toString());
      }
      b.setCommitIndex(d.getRaftLog().getLastCommittedIndex());
      b.setLogStartIndex(Math.max(0, d.getRaftLog().getStartIndex()));
      var snapshot = stateMachine.getLatestSnapshot();
      if (snapshot != null) {
        b.setSnapshotIndex(snapshot.getIndex());
      }
    } catch (IOException e) {
      b.setRole(NodeRole.UNREACHABLE).setError(e.getMessage());
    }
    return b.build();
  }

  @Override
  public CompletableFuture<ClusterStatus> clusterStatus() {
    List<CompletableFuture<NodeStatus>> parts = new ArrayList<>();
    for (NodeConfig.Peer p : config.peers()) {
      if (p.id().equals(config.nodeId())) {
        parts.add(CompletableFuture.completedFuture(localStatus()));
      } else {
        parts.add(peerStatus(p));
      }
    }
    return CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]))
        .thenApply(
            ignored -> {
              ClusterImage image = publisher.image();
              ClusterStatus.Builder b =
                  ClusterStatus.newBuilder()
                      .setMapVersion(image.version())
                      .setRanges(image.rangeCount())
                      .setServers(image.servers().size());
              NodeStatus self = parts.get(indexOfSelf()).join();
              for (CompletableFuture<NodeStatus> f : parts) {
                NodeStatus s = f.join();
                b.addMembers(s);
                if (s.getRole() == NodeRole.LEADER && s.getTerm() >= b.getTerm()) {
                  b.setLeaderId(s.getId()).setLeaderAddress(s.getApiAddress()).setTerm(s.getTerm());
                }
              }
              if (b.getLeaderId().isEmpty() && !self.getLeaderId().isEmpty()) {
                NodeConfig.Peer leader = config.peer(self.getLeaderId());
                b.setLeaderId(self.getLeaderId()).setTerm(self.getTerm());
                if (leader != null) {
                  b.setLeaderAddress(leader.apiAddress());
                }
              }
              return b.build();
            });
  }

  private int indexOfSelf() {
    for (int i = 0; i < config.peers().size(); i++) {
      if (config.peers().get(i).id().equals(config.nodeId())) {
        return i;
      }
    }
    throw new IllegalStateException("self not among peers");
  }

  private CompletableFuture<NodeStatus> peerStatus(NodeConfig.Peer p) {
    CompletableFuture<NodeStatus> out = new CompletableFuture<>();
    ManagedChannel channel =
        peerChannels.computeIfAbsent(
            p.id(), id -> NettyChannelBuilder.forTarget(p.apiAddress()).usePlaintext().build());
    AdminServiceGrpc.newStub(channel)
        .withDeadlineAfter(1, TimeUnit.SECONDS)
        .getNodeStatus(
            GetStatusRequest.getDefaultInstance(),
            new io.grpc.stub.StreamObserver<>() {
              @Override
              public void onNext(NodeStatus value) {
                out.complete(value);
              }

              @Override
              public void onError(Throwable t) {
                out.complete(
                    NodeStatus.newBuilder()
                        .setId(p.id())
                        .setApiAddress(p.apiAddress())
                        .setRaftAddress(p.raftAddress())
                        .setRole(NodeRole.UNREACHABLE)
                        .setError(io.grpc.Status.fromThrowable(t).getCode() + ": "
                            + io.grpc.Status.fromThrowable(t).getDescription())
                        .build());
              }

              @Override
              public void onCompleted() {}
            });
    return out;
  }

  // ------------------------------------------------------------------ lifecycle

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    health.enterTerminalState();
    mapService.closeAll();
    grpcServer.shutdown();
    try {
      if (!grpcServer.awaitTermination(2, TimeUnit.SECONDS)) {
        grpcServer.shutdownNow();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      grpcServer.shutdownNow();
    }
    for (ManagedChannel c : peerChannels.values()) {
      c.shutdownNow();
    }
    try {
      raftClient.get().close();
    } catch (IOException e) {
      LOG.warn("closing Raft client: {}", e.toString());
    }
    try {
      raftServer.close();
    } catch (IOException e) {
      LOG.warn("closing Raft server: {}", e.toString());
    }
    drainExecutor.shutdownNow();
    timer.shutdownNow();
    leaderLoop.shutdownNow();
    telemetryLoop.shutdownNow();
    balancerLoop.shutdownNow();
    commitPushLoop.shutdownNow();
    LOG.info("PLB node {} stopped", config.nodeId());
  }
}
