package io.plb.client.wire;

import com.google.protobuf.ByteString;
import io.plb.core.command.Command;
import io.plb.core.command.Limits;
import io.plb.core.error.PlbException;
import io.plb.core.keyspace.KeyHash;
import io.plb.core.load.HistoryLayout;
import io.plb.core.load.HotKey;
import io.plb.core.load.HotKeys;
import io.plb.core.load.LoadBucket;
import io.plb.core.load.LoadFigures;
import io.plb.core.load.LoadReport;
import io.plb.core.load.Resolution;
import io.plb.core.load.ServerLoad;
import io.plb.core.load.SliceLoad;
import io.plb.core.map.ActionCause;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.Handover;
import io.plb.core.map.HandoverPhase;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.proto.v1.AssignRangeRequest;
import io.plb.proto.v1.ForceHandoverEntry;
import io.plb.proto.v1.HandoverStepEntry;
import io.plb.proto.v1.StartHandoverEntry;
import io.plb.proto.v1.MapSnapshot;
import io.plb.proto.v1.MergeRangesRequest;
import io.plb.proto.v1.QueueServer;
import io.plb.proto.v1.RegisterServerRequest;
import io.plb.proto.v1.RemoveServerRequest;
import io.plb.proto.v1.SetPinnedRequest;
import io.plb.proto.v1.SplitRangeRequest;
import io.plb.proto.v1.UpdateServerRequest;
import java.util.ArrayList;
import java.util.List;

/**
 * Converts between the wire types of {@code plb.v1} and PLB's domain types. Protobuf stays at the
 * edge: the core never sees generated classes, and every conversion happens here, once.
 *
 * <p>Stateless. Conversions from the wire validate what the wire cannot express (a missing oneof,
 * an unknown enum) and throw {@link PlbException} with {@code INVALID_ARGUMENT}.
 */
public final class Wire {
  private Wire() {}

  // ------------------------------------------------------------------ map entries

  public static io.plb.proto.v1.RangeEntry toProto(RangeEntry r) {
    io.plb.proto.v1.RangeEntry.Builder b =
        io.plb.proto.v1.RangeEntry.newBuilder()
            .setStart(r.start())
            .setEnd(r.end())
            .setOwner(r.owner())
            .setEpoch(r.epoch())
            .setPinned(r.pinned());
    if (r.handover() != null) {
      b.setHandover(
          io.plb.proto.v1.Handover.newBuilder()
              .setTarget(r.handover().target())
              .setPhase(io.plb.proto.v1.HandoverPhase.valueOf(r.handover().phase().name())));
    }
    return b.build();
  }

  public static RangeEntry fromProto(io.plb.proto.v1.RangeEntry p) {
    Handover handover = null;
    if (p.hasHandover()) {
      handover = new Handover(p.getHandover().getTarget(), phase(p.getHandover().getPhase()));
    }
    return new RangeEntry(
        p.getStart(), p.getEnd(), p.getOwner(), p.getEpoch(), handover, p.getPinned());
  }

  private static HandoverPhase phase(io.plb.proto.v1.HandoverPhase p) {
    switch (p) {
      case PREPARE:
        return HandoverPhase.PREPARE;
      case SWITCH:
        return HandoverPhase.SWITCH;
      case COMPLETE:
        return HandoverPhase.COMPLETE;
      case ABORT_SWITCH:
        return HandoverPhase.ABORT_SWITCH;
      default:
        throw PlbException.invalid("handover phase " + p + " is not a phase");
    }
  }

  public static QueueServer toProto(QueueServerInfo s) {
    return QueueServer.newBuilder()
        .setId(s.id())
        .setAddress(s.address())
        .setCapacity(s.capacity())
        .setState(toProto(s.state()))
        .build();
  }

  public static QueueServerInfo fromProto(QueueServer p) {
    return new QueueServerInfo(p.getId(), p.getAddress(), p.getCapacity(), fromProto(p.getState()));
  }

  public static io.plb.proto.v1.ServerState toProto(ServerState s) {
    return io.plb.proto.v1.ServerState.valueOf(s.name());
  }

  public static ServerState fromProto(io.plb.proto.v1.ServerState s) {
    switch (s) {
      case ACTIVE:
        return ServerState.ACTIVE;
      case DRAINING:
        return ServerState.DRAINING;
      case DOWN:
        return ServerState.DOWN;
      default:
        throw PlbException.invalid("server state " + s + " is not a state");
    }
  }

  // ------------------------------------------------------------------ maps and deltas

  /**
   * The whole map in one message (chunk 0 of 1), whatever its size; what travels between nodes and
   * clients goes in chunks ({@link MapChunks}).
   */
  public static MapSnapshot toProto(ClusterImage image) {
    MapSnapshot.Builder b = MapSnapshot.newBuilder().setVersion(image.version())
        .setChunkCount(1)
        .setRangeCount(image.rangeCount())
        .setServerCount(image.servers().size());
    for (RangeEntry r : image.ranges()) {
      b.addRanges(toProto(r));
    }
    for (QueueServerInfo s : image.servers().values()) {
      b.addServers(toProto(s));
    }
    return b.build();
  }

  /**
   * A map in one message.
   *
   * @throws IllegalStateException if the snapshot breaks a map invariant or is one chunk of a
   *     larger map (those are gathered by {@link MapChunks.Assembly})
   */
  public static ClusterImage fromProto(MapSnapshot p) {
    if (p.getChunkCount() > 1) {
      throw new IllegalStateException("map " + p.getVersion() + " comes in " + p.getChunkCount()
          + " chunks; this is chunk " + p.getChunkIndex());
    }
    List<RangeEntry> ranges = new ArrayList<>(p.getRangesCount());
    for (io.plb.proto.v1.RangeEntry r : p.getRangesList()) {
      ranges.add(fromProto(r));
    }
    List<QueueServerInfo> servers = new ArrayList<>(p.getServersCount());
    for (QueueServer s : p.getServersList()) {
      servers.add(fromProto(s));
    }
    return ClusterImage.of(p.getVersion(), ranges, servers);
  }

  public static io.plb.proto.v1.MapDelta toProto(MapDelta d) {
    io.plb.proto.v1.MapDelta.Builder b =
        io.plb.proto.v1.MapDelta.newBuilder()
            .setVersion(d.version())
            .setPrevVersion(d.prevVersion())
            .addAllRemovedRangeStarts(d.removedRangeStarts())
            .addAllRemovedServers(d.removedServers())
            .setCause(d.cause());
    if (d.actionCause() != null) {
      b.setActionCause(toProto(d.actionCause()));
    }
    for (RangeEntry r : d.upsertedRanges()) {
      b.addUpsertedRanges(toProto(r));
    }
    for (QueueServerInfo s : d.upsertedServers()) {
      b.addUpsertedServers(toProto(s));
    }
    return b.build();
  }

  public static MapDelta fromProto(io.plb.proto.v1.MapDelta p) {
    List<RangeEntry> ranges = new ArrayList<>();
    for (io.plb.proto.v1.RangeEntry r : p.getUpsertedRangesList()) {
      ranges.add(fromProto(r));
    }
    List<QueueServerInfo> servers = new ArrayList<>();
    for (QueueServer s : p.getUpsertedServersList()) {
      servers.add(fromProto(s));
    }
    return new MapDelta(
        p.getVersion(),
        p.getPrevVersion(),
        p.getRemovedRangeStartsList(),
        ranges,
        p.getRemovedServersList(),
        servers,
        p.getCause(),
        p.hasActionCause() ? fromProto(p.getActionCause()) : null);
  }

  public static io.plb.proto.v1.ActionCause toProto(ActionCause c) {
    return io.plb.proto.v1.ActionCause.newBuilder()
        .setReason(c.reason())
        .setCriterion(c.criterion())
        .setCriterionValue(c.criterionValue())
        .setSource(c.source())
        .setSourceBefore(c.sourceBefore())
        .setSourceAfter(c.sourceAfter())
        .setTarget(c.target())
        .setTargetBefore(c.targetBefore())
        .setTargetAfter(c.targetAfter())
        .setMeanLoad(c.meanLoad())
        .setUpperLoad(c.upperLoad())
        .setModel(c.model())
        .setDecidedAtMillis(c.decidedAtMillis())
        .setRound(c.round())
        .setDetail(c.detail())
        .build();
  }

  public static ActionCause fromProto(io.plb.proto.v1.ActionCause p) {
    return new ActionCause(p.getReason(), p.getCriterion(), p.getCriterionValue(), p.getSource(),
        p.getSourceBefore(), p.getSourceAfter(), p.getTarget(), p.getTargetBefore(),
        p.getTargetAfter(), p.getMeanLoad(), p.getUpperLoad(), p.getModel(),
        p.getDecidedAtMillis(), p.getRound(), p.getDetail());
  }

  // ------------------------------------------------------------------ commands

  public static Command fromProto(RegisterServerRequest r) {
    return new Command.RegisterServer(
        r.getId(), r.getAddress(), r.hasCapacity() ? r.getCapacity() : null);
  }

  public static Command fromProto(UpdateServerRequest r) {
    ServerState state = null;
    if (r.hasState()) {
      state = fromProto(r.getState());
    }
    return new Command.UpdateServer(
        r.getId(),
        r.hasAddress() ? r.getAddress() : null,
        r.hasCapacity() ? r.getCapacity() : null,
        state);
  }

  public static Command fromProto(RemoveServerRequest r) {
    return new Command.RemoveServer(r.getId());
  }

  /**
   * A split at a key becomes a split at the key's hash; the key is checked first. A split into
   * pieces carries {@code maxPieces}, the receiving leader's {@code map.maxSplitPieces}.
   */
  public static Command fromProto(SplitRangeRequest r, int maxPieces) {
    if (r.getPointCase() == SplitRangeRequest.PointCase.PIECES) {
      return new Command.SplitEvenly(r.getRangeStart(), r.getPieces(), maxPieces);
    }
    return fromProto(r);
  }

  /** A split at one point, as {@link #fromProto(SplitRangeRequest, int)}. */
  public static Command fromProto(SplitRangeRequest r) {
    switch (r.getPointCase()) {
      case AT_HASH:
        return new Command.SplitRange(r.getRangeStart(), r.getAtHash());
      case AT_KEY:
        byte[] key = r.getAtKey().toByteArray();
        Limits.checkKey(key);
        return new Command.SplitRange(r.getRangeStart(), KeyHash.hash(key));
      case PIECES:
        throw PlbException.invalid("a split into pieces is written as a split_evenly entry");
      default:
        throw PlbException.invalid("split point is missing: give at_hash, at_key or pieces");
    }
  }

  public static Command fromProto(MergeRangesRequest r) {
    if (!r.hasNextRangeStart()) {
      throw PlbException.invalid("merge needs both range starts (range_start, next_range_start)");
    }
    return new Command.MergeRanges(r.getRangeStart(), r.getNextRangeStart());
  }

  public static Command fromProto(AssignRangeRequest r) {
    return new Command.AssignRange(r.getRangeStart(), r.getOwner(), r.getForce());
  }

  public static Command fromProto(SetPinnedRequest r) {
    return new Command.SetPinned(r.getRangeStart(), r.getPinned());
  }

  /** The log-entry form of a command. */
  public static io.plb.proto.v1.Command toLogEntry(Command c) {
    io.plb.proto.v1.Command.Builder b = io.plb.proto.v1.Command.newBuilder();
    if (c instanceof Command.RegisterServer x) {
      RegisterServerRequest.Builder r =
          RegisterServerRequest.newBuilder().setId(x.id()).setAddress(x.address());
      if (x.capacity() != null) {
        r.setCapacity(x.capacity());
      }
      b.setRegisterServer(r);
    } else if (c instanceof Command.UpdateServer x) {
      UpdateServerRequest.Builder r = UpdateServerRequest.newBuilder().setId(x.id());
      if (x.address() != null) {
        r.setAddress(x.address());
      }
      if (x.capacity() != null) {
        r.setCapacity(x.capacity());
      }
      if (x.state() != null) {
        r.setState(toProto(x.state()));
      }
      b.setUpdateServer(r);
    } else if (c instanceof Command.RemoveServer x) {
      b.setRemoveServer(RemoveServerRequest.newBuilder().setId(x.id()));
    } else if (c instanceof Command.SplitRange x) {
      b.setSplitRange(SplitRangeRequest.newBuilder().setRangeStart(x.rangeStart()).setAtHash(x.at()));
    } else if (c instanceof Command.SplitEvenly x) {
      b.setSplitEvenly(io.plb.proto.v1.SplitEvenlyEntry.newBuilder()
          .setRangeStart(x.rangeStart())
          .setPieces(x.pieces())
          .setMaxPieces(x.maxPieces()));
    } else if (c instanceof Command.MergeRanges x) {
      b.setMergeRanges(
          MergeRangesRequest.newBuilder()
              .setRangeStart(x.leftStart())
              .setNextRangeStart(x.rightStart()));
    } else if (c instanceof Command.AssignRange x) {
      b.setAssignRange(
          AssignRangeRequest.newBuilder()
              .setRangeStart(x.rangeStart())
              .setOwner(x.owner())
              .setForce(x.force()));
    } else if (c instanceof Command.SetPinned x) {
      b.setSetPinned(
          SetPinnedRequest.newBuilder().setRangeStart(x.rangeStart()).setPinned(x.pinned()));
    } else if (c instanceof Command.StartHandover x) {
      b.setStartHandover(
          StartHandoverEntry.newBuilder()
              .setRangeStart(x.rangeStart())
              .setRangeEnd(x.rangeEnd())
              .setExpectedEpoch(x.expectedEpoch())
              .setTarget(x.target())
              .setMaxPerServer(x.maxPerServer())
              .setMaxTotal(x.maxTotal()));
    } else if (c instanceof Command.HandoverReady x) {
      b.setHandoverReady(step(x.rangeStart(), x.handoverEpoch(), ""));
    } else if (c instanceof Command.HandoverDrained x) {
      b.setHandoverDrained(step(x.rangeStart(), x.handoverEpoch(), ""));
    } else if (c instanceof Command.AbortHandover x) {
      b.setAbortHandover(step(x.rangeStart(), x.handoverEpoch(), x.reason()));
    } else if (c instanceof Command.FinishAbort x) {
      b.setFinishAbort(step(x.rangeStart(), x.handoverEpoch(), ""));
    } else if (c instanceof Command.ExpireAbort x) {
      b.setExpireAbort(step(x.rangeStart(), x.handoverEpoch(), x.reason()));
    } else if (c instanceof Command.ForceHandover x) {
      b.setForceHandover(
          ForceHandoverEntry.newBuilder()
              .setRangeStart(x.rangeStart())
              .setExpectedEpoch(x.expectedEpoch())
              .setTarget(x.target()));
    } else if (c instanceof Command.AppendLoadSamples x) {
      b.setAppendLoadSamples(io.plb.proto.v1.AppendLoadSamplesEntry.newBuilder()
          .setLayout(toProto(x.layout()))
          .setBucket(toProto(x.bucket())));
    } else if (c instanceof Command.SetBalancerPaused x) {
      b.setSetBalancerPaused(io.plb.proto.v1.SetBalancerPausedEntry.newBuilder()
          .setPaused(x.paused())
          .setBy(x.by() == null ? "" : x.by()));
    } else if (c instanceof Command.OpenProducer x) {
      b.setOpenProducer(io.plb.proto.v1.OpenProducerEntry.newBuilder().setProducer(x.producer()));
    } else {
      throw new IllegalArgumentException("unknown command " + c);
    }
    ActionCause cause = Command.causeOf(c);
    if (cause != null) {
      b.setCause(toProto(cause));
    }
    return b.build();
  }



  /** The log-entry form of a command proposed by the leader in {@code term} (fenced). */
  public static io.plb.proto.v1.Command toLogEntry(Command c, long proposerTerm) {
    return toLogEntry(c).toBuilder().setProposerTerm(proposerTerm).build();
  }

  private static HandoverStepEntry step(long rangeStart, long handoverEpoch, String reason) {
    return HandoverStepEntry.newBuilder()
        .setRangeStart(rangeStart)
        .setHandoverEpoch(handoverEpoch)
        .setReason(reason)
        .build();
  }

  /** The command in a log entry. @throws PlbException INVALID_ARGUMENT for an empty entry */
  public static Command fromLogEntry(io.plb.proto.v1.Command p) {
    Command c = commandOf(p);
    if (!p.hasCause()) {
      return c;
    }
    ActionCause cause = fromProto(p.getCause());
    if (c instanceof Command.StartHandover x) {
      return new Command.StartHandover(x.rangeStart(), x.rangeEnd(), x.expectedEpoch(),
          x.target(), x.maxPerServer(), x.maxTotal(), cause);
    } else if (c instanceof Command.SplitRange x) {
      return new Command.SplitRange(x.rangeStart(), x.at(), cause);
    } else if (c instanceof Command.MergeRanges x) {
      return new Command.MergeRanges(x.leftStart(), x.rightStart(), cause);
    }
    throw PlbException.invalid("only a handover start, a split or a merge carries a cause");
  }

  private static Command commandOf(io.plb.proto.v1.Command p) {
    switch (p.getKindCase()) {
      case REGISTER_SERVER:
        return fromProto(p.getRegisterServer());
      case UPDATE_SERVER:
        return fromProto(p.getUpdateServer());
      case REMOVE_SERVER:
        return fromProto(p.getRemoveServer());
      case SPLIT_RANGE:
        return fromProto(p.getSplitRange());
      case SPLIT_EVENLY:
        return new Command.SplitEvenly(p.getSplitEvenly().getRangeStart(),
            p.getSplitEvenly().getPieces(), p.getSplitEvenly().getMaxPieces());
      case MERGE_RANGES:
        return fromProto(p.getMergeRanges());
      case ASSIGN_RANGE:
        return fromProto(p.getAssignRange());
      case SET_PINNED:
        return fromProto(p.getSetPinned());
      case START_HANDOVER: {
        StartHandoverEntry e = p.getStartHandover();
        return new Command.StartHandover(e.getRangeStart(), e.getRangeEnd(), e.getExpectedEpoch(),
            e.getTarget(), e.getMaxPerServer(), e.getMaxTotal());
      }
      case HANDOVER_READY:
        return new Command.HandoverReady(
            p.getHandoverReady().getRangeStart(), p.getHandoverReady().getHandoverEpoch());
      case HANDOVER_DRAINED:
        return new Command.HandoverDrained(
            p.getHandoverDrained().getRangeStart(), p.getHandoverDrained().getHandoverEpoch());
      case ABORT_HANDOVER:
        return new Command.AbortHandover(p.getAbortHandover().getRangeStart(),
            p.getAbortHandover().getHandoverEpoch(), p.getAbortHandover().getReason());
      case FINISH_ABORT:
        return new Command.FinishAbort(
            p.getFinishAbort().getRangeStart(), p.getFinishAbort().getHandoverEpoch());
      case EXPIRE_ABORT:
        return new Command.ExpireAbort(p.getExpireAbort().getRangeStart(),
            p.getExpireAbort().getHandoverEpoch(), p.getExpireAbort().getReason());
      case FORCE_HANDOVER: {
        ForceHandoverEntry e = p.getForceHandover();
        return new Command.ForceHandover(e.getRangeStart(), e.getExpectedEpoch(), e.getTarget());
      }
      case APPEND_LOAD_SAMPLES: {
        io.plb.proto.v1.AppendLoadSamplesEntry e = p.getAppendLoadSamples();
        if (!e.hasLayout() || !e.hasBucket()) {
          throw PlbException.invalid("load samples need a layout and a bucket");
        }
        return new Command.AppendLoadSamples(fromProto(e.getLayout()), fromProto(e.getBucket()));
      }
      case SET_BALANCER_PAUSED:
        return new Command.SetBalancerPaused(p.getSetBalancerPaused().getPaused(),
            p.getSetBalancerPaused().getBy());
      case OPEN_PRODUCER:
        return new Command.OpenProducer(p.getOpenProducer().getProducer());
      default:
        throw PlbException.invalid("log entry holds no command");
    }
  }

  // ------------------------------------------------------------------ load history

  public static io.plb.proto.v1.SliceLoad toProto(SliceLoad s) {
    LoadFigures f = s.load();
    return io.plb.proto.v1.SliceLoad.newBuilder()
        .setSlice(s.slice())
        .setMessagesIn(f.messagesIn())
        .setBytesIn(f.bytesIn())
        .setMessagesOut(f.messagesOut())
        .setBytesOut(f.bytesOut())
        .setQueueDepth(f.queueDepth())
        .setOldestAgeMillis(f.oldestAgeMillis())
        .build();
  }

  public static SliceLoad fromProto(io.plb.proto.v1.SliceLoad p) {
    return new SliceLoad(p.getSlice(), new LoadFigures(p.getMessagesIn(), p.getBytesIn(),
        p.getMessagesOut(), p.getBytesOut(), p.getQueueDepth(), p.getOldestAgeMillis()));
  }

  public static io.plb.proto.v1.LoadFigures toProto(LoadFigures f) {
    return io.plb.proto.v1.LoadFigures.newBuilder()
        .setMessagesIn(f.messagesIn())
        .setBytesIn(f.bytesIn())
        .setMessagesOut(f.messagesOut())
        .setBytesOut(f.bytesOut())
        .setQueueDepth(f.queueDepth())
        .setOldestAgeMillis(f.oldestAgeMillis())
        .build();
  }

  public static LoadFigures fromProto(io.plb.proto.v1.LoadFigures p) {
    return new LoadFigures(p.getMessagesIn(), p.getBytesIn(), p.getMessagesOut(),
        p.getBytesOut(), p.getQueueDepth(), p.getOldestAgeMillis());
  }

  public static io.plb.proto.v1.HotKeys toProto(HotKeys h) {
    io.plb.proto.v1.HotKeys.Builder b =
        io.plb.proto.v1.HotKeys.newBuilder().setThreshold(h.threshold());
    for (HotKey k : h.keys()) {
      b.addKeys(io.plb.proto.v1.HotKey.newBuilder().setHash(k.hash()).setCount(k.count())
          .setError(k.error()).setBytes(k.bytes()));
    }
    return b.build();
  }

  public static HotKeys fromProto(io.plb.proto.v1.HotKeys p) {
    List<HotKey> keys = new ArrayList<>(p.getKeysCount());
    for (io.plb.proto.v1.HotKey k : p.getKeysList()) {
      keys.add(new HotKey(k.getHash(), k.getCount(), k.getError(), k.getBytes()));
    }
    return new HotKeys(keys, p.getThreshold());
  }

  public static io.plb.proto.v1.ServerLoad toProto(ServerLoad s) {
    return io.plb.proto.v1.ServerLoad.newBuilder()
        .setServerId(s.serverId())
        .setLoad(toProto(s.load()))
        .setReports(s.reports())
        .setSession(s.session())
        .setLastSeq(s.lastSeq())
        .build();
  }

  public static ServerLoad fromProto(io.plb.proto.v1.ServerLoad p) {
    return new ServerLoad(p.getServerId(), fromProto(p.getLoad()), p.getReports(),
        p.getSession(), p.getLastSeq());
  }

  public static io.plb.proto.v1.Resolution toProto(Resolution r) {
    return r == Resolution.FINE ? io.plb.proto.v1.Resolution.FINE
        : io.plb.proto.v1.Resolution.COARSE;
  }

  /** @throws PlbException INVALID_ARGUMENT for an unset or unknown resolution */
  public static Resolution fromProto(io.plb.proto.v1.Resolution r) {
    switch (r) {
      case FINE:
        return Resolution.FINE;
      case COARSE:
        return Resolution.COARSE;
      default:
        throw PlbException.invalid("resolution " + r + " is not FINE or COARSE");
    }
  }

  public static io.plb.proto.v1.LoadBucket toProto(LoadBucket b) {
    io.plb.proto.v1.LoadBucket.Builder p = io.plb.proto.v1.LoadBucket.newBuilder()
        .setResolution(toProto(b.resolution()))
        .setStartMillis(b.startMillis())
        .setWidthMillis(b.widthMillis())
        .setCoveredMillis(b.coveredMillis())
        .setFineBuckets(b.fineBuckets())
        .setHotKeys(toProto(b.hotKeys()));
    for (SliceLoad s : b.slices()) {
      p.addSlices(toProto(s));
    }
    for (ServerLoad s : b.servers()) {
      p.addServers(toProto(s));
    }
    return p.build();
  }

  public static LoadBucket fromProto(io.plb.proto.v1.LoadBucket p) {
    List<SliceLoad> slices = new ArrayList<>(p.getSlicesCount());
    for (io.plb.proto.v1.SliceLoad s : p.getSlicesList()) {
      slices.add(fromProto(s));
    }
    List<ServerLoad> servers = new ArrayList<>(p.getServersCount());
    for (io.plb.proto.v1.ServerLoad s : p.getServersList()) {
      servers.add(fromProto(s));
    }
    return new LoadBucket(fromProto(p.getResolution()), p.getStartMillis(), p.getWidthMillis(),
        p.getCoveredMillis(), p.getFineBuckets(), slices, fromProto(p.getHotKeys()), servers);
  }

  public static io.plb.proto.v1.HistoryLayout toProto(HistoryLayout l) {
    return io.plb.proto.v1.HistoryLayout.newBuilder()
        .setBucketMillis(l.bucketMillis())
        .setFineRetentionMillis(l.fineRetentionMillis())
        .setCoarseBucketMillis(l.coarseBucketMillis())
        .setCoarseRetentionMillis(l.coarseRetentionMillis())
        .setHotKeys(l.hotKeys())
        .build();
  }

  public static HistoryLayout fromProto(io.plb.proto.v1.HistoryLayout p) {
    return new HistoryLayout(p.getBucketMillis(), p.getFineRetentionMillis(),
        p.getCoarseBucketMillis(), p.getCoarseRetentionMillis(), p.getHotKeys());
  }

  public static io.plb.proto.v1.LoadReport toProto(LoadReport r) {
    io.plb.proto.v1.LoadReport.Builder b = io.plb.proto.v1.LoadReport.newBuilder()
        .setServerId(r.serverId())
        .setSession(r.session())
        .setSeq(r.seq())
        .setIntervalMillis(r.intervalMillis())
        .setHotKeys(toProto(r.hotKeys()));
    for (SliceLoad s : r.slices()) {
      b.addSlices(toProto(s));
    }
    return b.build();
  }

  /** The report as sent; not yet checked ({@link LoadReport#check()}). */
  public static LoadReport fromProto(io.plb.proto.v1.LoadReport p) {
    List<SliceLoad> slices = new ArrayList<>(p.getSlicesCount());
    for (io.plb.proto.v1.SliceLoad s : p.getSlicesList()) {
      slices.add(fromProto(s));
    }
    return new LoadReport(p.getServerId(), p.getSession(), p.getSeq(), p.getIntervalMillis(),
        slices, fromProto(p.getHotKeys()));
  }

  /** Key bytes for a request. */
  public static ByteString key(byte[] key) {
    return ByteString.copyFrom(key);
  }
}
