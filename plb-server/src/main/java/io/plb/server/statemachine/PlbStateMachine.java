package io.plb.server.statemachine;

import com.google.protobuf.InvalidProtocolBufferException;
import io.plb.client.wire.Wire;
import io.plb.core.balancer.BalancerState;
import io.plb.core.command.Command;
import io.plb.core.command.CommandProcessor;
import io.plb.core.error.ErrorCode;
import io.plb.core.error.PlbException;
import io.plb.core.load.HistoryState;
import io.plb.core.load.HistoryUpdate;
import io.plb.core.load.LoadHistory;
import io.plb.core.load.Resolution;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.proto.v1.CommandResult;
import io.plb.server.publish.MapPublisher;
import io.plb.server.storage.StateStore;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.ratis.proto.RaftProtos.LogEntryProto;
import org.apache.ratis.protocol.Message;
import org.apache.ratis.protocol.RaftGroupId;
import org.apache.ratis.server.RaftServer;
import org.apache.ratis.server.protocol.TermIndex;
import org.apache.ratis.server.storage.FileInfo;
import org.apache.ratis.server.storage.RaftStorage;
import org.apache.ratis.statemachine.SnapshotInfo;
import org.apache.ratis.statemachine.StateMachineStorage;
import org.apache.ratis.statemachine.TransactionContext;
import org.apache.ratis.statemachine.impl.BaseStateMachine;
import org.apache.ratis.statemachine.impl.FileListSnapshotInfo;
import org.apache.ratis.thirdparty.com.google.protobuf.UnsafeByteOperations;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Ratis adapter: applies committed PLB commands to the RocksDB {@link StateStore} and
 * publishes each new image to watchers. It holds no decisions of its own — validation and the
 * change itself come from the pure {@link CommandProcessor}.
 *
 * <p>Thread model: Ratis calls {@link #applyTransaction}, {@link #takeSnapshot} and
 * {@link #reinitialize} on its single state-machine updater thread, in log order.
 *
 * <p>Persistence (DESIGN §9): the live database lives outside Ratis's {@code sm/} directory. Each
 * applied entry writes its changes and its index in one batch. A snapshot is a RocksDB checkpoint
 * in {@code sm/ckpt.<term>_<index>}; Ratis sends it to followers it has purged its log past, and
 * on install it replaces the live database. After a restart Ratis replays the log from the latest
 * snapshot, which may be behind the live database: entries at or below the database's applied index
 * are already in it and are skipped, so a restart resumes exactly after the last applied entry.
 *
 * <p>Apply never throws for bad input: a command that fails validation changes nothing and its
 * rejection is the entry's result, the same on every replica. Nor for a bug: any other exception
 * while deciding an entry rejects it (INTERNAL), alike on every replica, since they all meet it.
 * Only a failing database stops the replica.
 *
 * <p>{@code AppendLoadSamples} entries go to the load history ({@link LoadHistory}) instead of the
 * map: their buckets, the coarse bucket they merge into and the deletion of buckets past their
 * retention are written in the entry's batch; the map version does not change. History reads
 * ({@link #readHistory}) run on gRPC threads against the live database under a read lock that
 * keeps the database open; the apply thread takes the write lock only to replace it.
 */
public final class PlbStateMachine extends BaseStateMachine {
  private static final Logger LOG = LoggerFactory.getLogger(PlbStateMachine.class);
  private static final Pattern CHECKPOINT = Pattern.compile("ckpt\\.(\\d+)_(\\d+)");

  private final Path dbDir;
  private final MapPublisher publisher;
  private final int historyLimit;
  private final CheckpointStorage storage = new CheckpointStorage();
  private final ReentrantReadWriteLock storeLock = new ReentrantReadWriteLock();
  private volatile StateStore store;
  private ClusterImage image = ClusterImage.EMPTY;
  private volatile HistoryState historyState = HistoryState.EMPTY;
  private volatile BalancerState balancerState = BalancerState.INITIAL;
  private long trimmedBelow;
  private int appliesSinceTrim;

  public PlbStateMachine(Path dbDir, MapPublisher publisher, int historyLimit) {
    this.dbDir = dbDir;
    this.publisher = publisher;
    this.historyLimit = historyLimit;
  }

  @Override
  public void initialize(RaftServer server, RaftGroupId groupId, RaftStorage raftStorage)
      throws IOException {
    super.initialize(server, groupId, raftStorage);
    storage.init(raftStorage);
    getLifeCycle().startAndTransition(() -> openStore(false));
  }

  @Override
  public void reinitialize() throws IOException {
    // Called after a snapshot install replaced sm/: the checkpoint becomes the live database.
    openStore(true);
    getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.STARTING);
    getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.RUNNING);
  }

  @Override
  public void pause() {
    // Ratis calls this on every InstallSnapshot request: it must be idempotent.
    if (getLifeCycle().getCurrentState() == org.apache.ratis.util.LifeCycle.State.RUNNING) {
      getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.PAUSING);
      getLifeCycle().transition(org.apache.ratis.util.LifeCycle.State.PAUSED);
    }
  }

  private void openStore(boolean fromSnapshot) throws IOException {
    storeLock.writeLock().lock();
    try {
      openStoreLocked(fromSnapshot);
    } finally {
      storeLock.writeLock().unlock();
    }
  }

  private void openStoreLocked(boolean fromSnapshot) throws IOException {
    if (store != null) {
      store.close();
      store = null;
    }
    storage.refresh();
    SnapshotInfo latest = storage.getLatestSnapshot();
    if (fromSnapshot) {
      if (latest == null) {
        throw new IOException("snapshot installed but no checkpoint found in " + storage.smDir);
      }
      replaceLiveDb(storage.dirOf(latest.getTermIndex()));
    }
    store = StateStore.open(dbDir);
    if (latest != null && store.appliedIndex() < latest.getIndex()) {
      // The live database is behind the latest snapshot (it was lost or never written): start
      // from the checkpoint, which holds everything up to the snapshot index.
      store.close();
      replaceLiveDb(storage.dirOf(latest.getTermIndex()));
      store = StateStore.open(dbDir);
    }
    image = store.loadImage();
    historyState = store.loadHistoryState();
    balancerState = store.loadBalancerState();
    publisher.reset(image, store.loadChanges(), store.appliedIndex());
    TermIndex start = latest != null ? latest.getTermIndex() : null;
    if (start != null) {
      updateLastAppliedTermIndex(start.getTerm(), start.getIndex());
    }
    LOG.info(
        "state loaded: map version {}, {} ranges, {} servers, database applied index {}, "
            + "snapshot {}",
        image.version(), image.rangeCount(), image.servers().size(), store.appliedIndex(),
        start == null ? "none" : start);
  }

  private void replaceLiveDb(Path checkpoint) throws IOException {
    deleteTree(dbDir);
    Files.createDirectories(dbDir);
    try (Stream<Path> files = Files.list(checkpoint)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        if (!f.getFileName().toString().endsWith(".md5")) {
          Files.copy(f, dbDir.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
  }

  /** Told when this node becomes a ready leader, and when it stops being one. */
  public interface LeadershipListener {
    /** Called on the apply thread once this term's first entry is applied; must not block. */
    void onLeaderReady(long term);

    /** Called when this node is no longer the leader; must not block. */
    void onNotLeader();
  }

  private final List<LeadershipListener> leadership = new CopyOnWriteArrayList<>();

  /** Adds a listener told of leadership changes (the leader's services). */
  public void addLeadershipListener(LeadershipListener listener) {
    leadership.add(listener);
  }

  @Override
  public void notifyLeaderReady() {
    if (leadership.isEmpty()) {
      return;
    }
    long term;
    try {
      term = getServer().get().getDivision(getGroupId()).getInfo().getCurrentTerm();
    } catch (IOException | InterruptedException | java.util.concurrent.ExecutionException e) {
      LOG.warn("leader ready, but its term is unknown: {}", e.toString());
      return;
    }
    for (LeadershipListener l : leadership) {
      l.onLeaderReady(term);
    }
  }

  @Override
  public void notifyNotLeader(java.util.Collection<TransactionContext> pending) {
    for (LeadershipListener l : leadership) {
      l.onNotLeader();
    }
  }

  @Override
  public void notifyLeaderChanged(
      org.apache.ratis.protocol.RaftGroupMemberId self, org.apache.ratis.protocol.RaftPeerId leader) {
    if (!self.getPeerId().equals(leader)) {
      for (LeadershipListener l : leadership) {
        l.onNotLeader();
      }
    }
  }

  // ------------------------------------------------------------------ load history reads

  /** The balancer's committed state (paused or not) as of the last applied entry. */
  public BalancerState balancerState() {
    return balancerState;
  }

  /** The load history's state as of the last applied entry. */
  public HistoryState historyState() {
    return historyState;
  }

  /**
   * Reads a page of the load history from this replica (see {@link StateStore#readHistory}).
   *
   * @throws PlbException UNAVAILABLE while the database is being replaced or the node stops
   */
  public StateStore.HistoryPage readHistory(Resolution r, long fromMillis, long toMillis,
      int firstSlice, int lastSlice, String serverId, int maxRows) throws IOException {
    storeLock.readLock().lock();
    try {
      StateStore s = store;
      if (s == null) {
        throw new PlbException(ErrorCode.UNAVAILABLE, "the node's database is not open");
      }
      return s.readHistory(r, fromMillis, toMillis, firstSlice, lastSlice, serverId, maxRows);
    } finally {
      storeLock.readLock().unlock();
    }
  }

  /** Reads go through the gRPC API; Raft reads only serve to push the commit index along. */
  @Override
  public CompletableFuture<Message> query(Message request) {
    return CompletableFuture.completedFuture(Message.EMPTY);
  }

  @Override
  public StateMachineStorage getStateMachineStorage() {
    return storage;
  }

  @Override
  public SnapshotInfo getLatestSnapshot() {
    return storage.getLatestSnapshot();
  }

  @Override
  public CompletableFuture<Message> applyTransaction(TransactionContext trx) {
    LogEntryProto entry = trx.getLogEntry();
    long index = entry.getIndex();
    long term = entry.getTerm();
    CommandResult result;
    if (index <= store.appliedIndex()) {
      // Replay after restart of an entry the database already holds.
      result = CommandResult.newBuilder().setOk(true).setVersion(image.version()).build();
    } else {
      result = apply(term, index, entry.getStateMachineLogEntry().getLogData().toByteArray());
    }
    updateLastAppliedTermIndex(term, index);
    publisher.advanceApplied(index);
    return CompletableFuture.completedFuture(
        Message.valueOf(UnsafeByteOperations.unsafeWrap(result.toByteArray())));
  }

  /** Configuration and metadata entries: nothing to apply, but readers waiting on them proceed. */
  @Override
  public void notifyTermIndexUpdated(long term, long index) {
    super.notifyTermIndexUpdated(term, index);
    publisher.advanceApplied(index);
  }

  /**
   * A failpoint for tests: when set, applying a command it matches throws, as a bug in the apply
   * path would. Null outside tests.
   */
  static volatile Predicate<Command> failApply;

  private CommandResult apply(long term, long index, byte[] data) {
    MapDelta delta = null;
    HistoryUpdate historyUpdate = null;
    BalancerState nextBalancer = null;
    ClusterImage next = image;
    CommandResult result;
    try {
      io.plb.proto.v1.Command entry = io.plb.proto.v1.Command.parseFrom(data);
      if (entry.getProposerTerm() != 0 && entry.getProposerTerm() != term) {
        // Fencing: a leader that was deposed between deciding and proposing.
        throw PlbException.precondition(
            "proposed by the leader of term " + entry.getProposerTerm()
                + ", but committed in term " + term + "; the decision is void");
      }
      Command command = Wire.fromLogEntry(entry);
      Predicate<Command> fail = failApply;
      if (fail != null && fail.test(command)) {
        throw new IllegalStateException("failpoint: applying " + command.describe());
      }
      if (command instanceof Command.AppendLoadSamples samples) {
        // The load history, not the map: no new map version.
        historyUpdate = LoadHistory.apply(historyState, samples, this::readCoarse);
        result = CommandResult.newBuilder().setOk(true).setVersion(image.version()).build();
      } else if (command instanceof Command.OpenProducer) {
        // Nothing to change: the entry's index (set on every result below) is the epoch.
        result = CommandResult.newBuilder().setOk(true).setVersion(image.version()).build();
      } else if (command instanceof Command.SetBalancerPaused pause) {
        // The balancer's state, not the map: no new map version.
        nextBalancer = balancerState.apply(pause, index);
        result = CommandResult.newBuilder().setOk(true).setVersion(image.version()).build();
      } else {
        delta = CommandProcessor.process(image, command, index);
        if (delta.isEmpty()) {
          // A late or duplicated report: recognised, ignored, no new version.
          result = CommandResult.newBuilder()
              .setOk(true)
              .setIgnored(true)
              .setErrorMessage(delta.cause())
              .setVersion(image.version())
              .build();
          LOG.info("entry {}: {}", index, delta.cause());
          delta = null;
        } else {
          next = image.apply(delta); // checks the map's invariants
          result = CommandResult.newBuilder().setOk(true).setVersion(index).build();
        }
      }
    } catch (InvalidProtocolBufferException e) {
      result = rejected(ErrorCode.INVALID_ARGUMENT, "log entry is not a PLB command");
    } catch (PlbException e) {
      result = rejected(e.code(), e.getMessage());
    } catch (UncheckedIOException e) {
      // The database cannot be read: this replica cannot follow the log.
      throw e;
    } catch (RuntimeException e) {
      // A bug, not bad input. Every replica meets the same exception on the same entry (apply is
      // deterministic), so each rejects it alike and they stay in step, where a throw would stop
      // the replica — and, on every replica, the cluster.
      LOG.error("entry {} could not be applied; it is rejected", index, e);
      result = rejected(ErrorCode.INTERNAL, "applying the entry failed: " + e);
    }
    if (!result.getOk()) {
      delta = null;
      historyUpdate = null;
      nextBalancer = null;
      next = image;
    }
    try {
      store.writeApplied(term, index, delta, historyUpdate, nextBalancer);
      if (nextBalancer != null) {
        balancerState = nextBalancer;
        LOG.info("entry {}: balancer {} by {}", index,
            nextBalancer.paused() ? "paused" : "resumed", nextBalancer.by());
      }
      if (historyUpdate != null) {
        historyState = historyUpdate.next();
        LOG.debug("entry {}: load bucket at {} ms appended ({} slices)", index,
            historyUpdate.fine().startMillis(), historyUpdate.fine().slices().size());
      }
      if (delta != null) {
        image = next;
        publisher.publish(next, delta, index);
        trimHistory();
      }
    } catch (IOException e) {
      // The database cannot follow the log: stopping this replica is the only safe answer.
      throw new UncheckedIOException(e);
    }
    if (delta != null) {
      LOG.info("applied {} at version {}", delta.cause(), index);
    } else if (!result.getOk()) {
      LOG.info("rejected entry {}: {} {}", index, result.getErrorCode(), result.getErrorMessage());
      result = result.toBuilder().setVersion(image.version()).build();
    }
    return result.toBuilder().setIndex(index).build();
  }

  /** The stored coarse bucket a load bucket merges into (apply thread). */
  private io.plb.core.load.LoadBucket readCoarse(long start) {
    try {
      return store.readBucket(Resolution.COARSE, start);
    } catch (IOException e) {
      // The database cannot be read: this replica cannot follow the log.
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Trims the persisted change history in step with the publisher's bounded one, every tenth of
   * the limit so that a range delete is written only now and then. The history is a per-node cache
   * for watch resume, so replicas need not trim at the same entry. The publisher drops changes by
   * their count and by their range entries (watch.historyRanges), so it may drop some while it
   * holds fewer than the limit: what it no longer holds is trimmed whatever its size.
   */
  private void trimHistory() throws IOException {
    long oldest = publisher.oldestRetainedVersion();
    if (oldest - trimmedBelow > 0 && ++appliesSinceTrim >= Math.max(1, historyLimit / 10)) {
      store.trimChanges(oldest);
      trimmedBelow = oldest;
      appliesSinceTrim = 0;
    }
  }

  private static CommandResult rejected(ErrorCode code, String message) {
    return CommandResult.newBuilder()
        .setOk(false)
        .setErrorCode(code.name())
        .setErrorMessage(message)
        .build();
  }

  @Override
  public long takeSnapshot() throws IOException {
    TermIndex last = getLastAppliedTermIndex();
    if (last == null || last.getIndex() <= 0) {
      return -1;
    }
    Path target = storage.smDir.resolve("ckpt." + last.getTerm() + "_" + last.getIndex());
    if (Files.exists(target)) {
      return last.getIndex();
    }
    Path tmp = storage.smDir.resolve("tmp-ckpt." + last.getIndex());
    deleteTree(tmp);
    store.checkpoint(tmp);
    Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
    TermIndex previous = storage.latestTermIndex();
    storage.refresh();
    // Keep the previous checkpoint too: a follower may still be receiving it.
    if (previous != null) {
      storage.deleteOlderThan(previous.getIndex());
    }
    LOG.info("snapshot taken at {} (database applied index {})", last, store.appliedIndex());
    return last.getIndex();
  }

  @Override
  public void close() throws IOException {
    super.close();
    storeLock.writeLock().lock();
    try {
      if (store != null) {
        store.close();
        store = null;
      }
    } finally {
      storeLock.writeLock().unlock();
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(dir)) {
      for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) {
        Files.delete(p);
      }
    }
  }

  /**
   * Snapshots as RocksDB checkpoint directories {@code sm/ckpt.<term>_<index>}, each listed file by
   * file for Ratis's InstallSnapshot.
   */
  private static final class CheckpointStorage implements StateMachineStorage {
    private Path smDir;
    private volatile FileListSnapshotInfo latest;

    @Override
    public void init(RaftStorage raftStorage) throws IOException {
      smDir = raftStorage.getStorageDir().getStateMachineDir().toPath();
      Files.createDirectories(smDir);
      refresh();
    }

    TermIndex latestTermIndex() {
      FileListSnapshotInfo l = latest;
      return l == null ? null : l.getTermIndex();
    }

    Path dirOf(TermIndex ti) {
      return smDir.resolve("ckpt." + ti.getTerm() + "_" + ti.getIndex());
    }

    void refresh() throws IOException {
      TermIndex best = null;
      if (Files.isDirectory(smDir)) {
        try (Stream<Path> dirs = Files.list(smDir)) {
          for (Path p : (Iterable<Path>) dirs::iterator) {
            Matcher m = CHECKPOINT.matcher(p.getFileName().toString());
            if (m.matches() && Files.isDirectory(p)) {
              TermIndex ti = TermIndex.valueOf(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)));
              if (best == null || ti.getIndex() > best.getIndex()) {
                best = ti;
              }
            }
          }
        }
      }
      if (best == null) {
        latest = null;
        return;
      }
      List<FileInfo> files = new ArrayList<>();
      try (Stream<Path> walk = Files.list(dirOf(best))) {
        for (Path f : (Iterable<Path>) walk::iterator) {
          if (Files.isRegularFile(f) && !f.getFileName().toString().endsWith(".md5")) {
            files.add(new FileInfo(f.toAbsolutePath(), null));
          }
        }
      }
      latest = new FileListSnapshotInfo(files, best);
    }

    void deleteOlderThan(long index) throws IOException {
      try (Stream<Path> dirs = Files.list(smDir)) {
        for (Path p : (Iterable<Path>) dirs::iterator) {
          Matcher m = CHECKPOINT.matcher(p.getFileName().toString());
          if (m.matches() && Long.parseLong(m.group(2)) < index) {
            deleteTree(p);
          }
        }
      }
    }

    @Override
    public SnapshotInfo getLatestSnapshot() {
      return latest;
    }

    @Override
    public void format() {}

    @Override
    public void cleanupOldSnapshots(org.apache.ratis.statemachine.SnapshotRetentionPolicy policy) {}

    @Override
    public File getSnapshotDir() {
      return null;
    }

    @Override
    public File getTmpDir() {
      return null;
    }
  }
}
