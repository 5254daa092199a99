package io.plb.client.cli;

import io.plb.client.wire.MapChunks;
import io.plb.client.Endpoints;
import io.plb.client.PlbClientException;
import io.plb.client.admin.PlbAdminClient;
import io.plb.client.watch.MapWatcher;
import io.plb.core.keyspace.Ring;
import io.plb.core.map.ClusterImage;
import io.plb.core.map.MapDelta;
import io.plb.core.map.QueueServerInfo;
import io.plb.core.map.RangeEntry;
import io.plb.core.map.ServerState;
import io.plb.client.wire.Wire;
import io.plb.proto.v1.ClusterStatus;
import io.plb.proto.v1.HandoverInfo;
import io.plb.proto.v1.ListHandoversResponse;
import io.plb.proto.v1.MoveRangeResponse;
import io.plb.proto.v1.NodeStatus;
import io.plb.proto.v1.QueueStatus;
import io.plb.proto.v1.RangeLoad;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;

/**
 * {@code plbctl}: the operator's command line for a PLB cluster. Human-readable tables by default,
 * {@code --json} for scripts (shapes documented in docs/cli.md and kept stable). Exit status 0 on
 * success, 1 when PLB refused or failed the request, 2 for a usage error; errors are one line on
 * standard error.
 */
public final class PlbCtl {
  static final String USAGE = String.join("\n",
      "usage: plbctl [--endpoints HOST:PORT,...] [--json] [--timeout SECONDS] COMMAND ...",
      "",
      "Cluster:",
      "  status                         members, roles, leader, term, applied index, map version",
      "  map                            the shard map: every range, its owner and epoch",
      "  watch [--from VERSION] [--count N]   print each map version as it commits",
      "Queue servers:",
      "  servers                        registered queue servers",
      "  server add ID --address HOST:PORT [--capacity C]",
      "  server update ID [--address HOST:PORT] [--capacity C] [--state ACTIVE|DRAINING|DOWN]",
      "  server remove ID",
      "  server drain ID [--max-wait S]   move all its ranges away (hold handover), then it is drained",
      "Ranges (RANGE is the start of a range, as 'plbctl map' prints it: 0x... or decimal):",
      "  split RANGE (--at HASH | --key KEY | --pieces N)",
      "                                        split a range at a hash, at a key's hash, or into N "
          + "equal ranges",
      "  merge RANGE [NEXT]             merge a range with the one that follows it",
      "  assign RANGE SERVER [--force]  give an unassigned range an owner (--force: reassign",
      "                                 without a handover, only while setting a cluster up)",
      "  pin RANGE | unpin RANGE        keep the balancer from moving a range",
      "Handovers:",
      "  move RANGE --to SERVER [--no-wait] [--max-wait SECONDS]",
      "                                 move a range with the hold handover; waits and shows",
      "                                 each phase as it commits (exit 1 if it is aborted)",
      "  handovers                      open handovers: phase, age, deadline, backlog, held",
      "  abort RANGE [--reason TEXT]    abort a range's handover (from SWITCH it runs backwards)",
      "Balancer:",
      "  plan                           dry run on the leader: the actions it would take now, each",
      "                                 server's predicted utilisation before/after, notes",
      "  balancer pause|resume [--by WHO]   stop or restart automatic actions (committed)",
      "  balancer status                paused or not, rounds, last plan, actions, forecast health",
      "  forecast [--server ID | --range RANGE] [--buckets N]",
      "                                 actual load against forecast for recent buckets, the",
      "                                 models and their accuracy (MASE, WAPE), fallbacks",
      "  history [--server ID | --range RANGE] [--from T] [--to T] [--resolution fine|coarse]",
      "                                 the load history, a bucket per row (T: epoch ms, an",
      "                                 ISO-8601 instant, or -5m for five minutes ago)",
      "",
      "Endpoints default to $PLB_ENDPOINTS, else the local cluster (127.0.0.1:7301-7303).",
      "");

  private final PrintStream out;
  private final PrintStream err;
  private final Map<String, String> env;
  /** Wall-clock milliseconds: what relative times ({@code --from -1h}) count back from. */
  private final java.util.function.LongSupplier wallMillis;

  public PlbCtl(PrintStream out, PrintStream err, Map<String, String> env) {
    this(out, err, env, System::currentTimeMillis);
  }

  public PlbCtl(PrintStream out, PrintStream err, Map<String, String> env,
      java.util.function.LongSupplier wallMillis) {
    this.out = out;
    this.err = err;
    this.env = env;
    this.wallMillis = wallMillis;
  }

  public static void main(String[] args) {
    int code = new PlbCtl(System.out, System.err, System.getenv()).run(args);
    System.out.flush();
    System.exit(code);
  }

  /** Runs one command; returns the exit status. */
  public int run(String[] argv) {
    Args args;
    try {
      args = Args.parse(argv);
    } catch (IllegalArgumentException e) {
      err.println("plbctl: " + e.getMessage());
      return 2;
    }
    if (args.flag("help")) {
      out.print(USAGE);
      return 0;
    }
    if (args.positional.isEmpty()) {
      err.println("plbctl: no command given (see plbctl --help)");
      return 2;
    }
    String endpoints = args.option("endpoints", env.getOrDefault("PLB_ENDPOINTS",
        String.join(",", Endpoints.LOCAL_CLUSTER)));
    boolean json = args.flag("json");
    try (PlbAdminClient admin = PlbAdminClient.newBuilder()
        .endpoints(endpoints)
        .deadline(Duration.ofMillis((long) (number(args, "timeout", "10") * 1000)))
        .build()) {
      return dispatch(args, admin, endpoints, json);
    } catch (PlbClientException e) {
      err.println("plbctl: " + e.code() + ": " + e.getMessage());
      return 1;
    } catch (IllegalArgumentException e) {
      err.println("plbctl: " + e.getMessage());
      return 2;
    }
  }

  private int dispatch(Args a, PlbAdminClient admin, String endpoints, boolean json) {
    String cmd = a.positional.get(0);
    switch (cmd) {
      case "status":
        a.expect(1, "status");
        printStatus(admin.clusterStatus(), json);
        return 0;
      case "map":
        a.expect(1, "map");
        printMap(admin.getMap(0), json);
        return 0;
      case "servers":
        a.expect(1, "servers");
        printServers(admin.getMap(0), json);
        return 0;
      case "server":
        return server(a, admin, json);
      case "split": {
        a.expect(2, "split RANGE (--at HASH | --key KEY | --pieces N)");
        long range = Ring.parse(a.positional.get(1));
        String at = a.option("at", null);
        String key = a.option("key", null);
        String pieces = a.option("pieces", null);
        if ((at == null ? 0 : 1) + (key == null ? 0 : 1) + (pieces == null ? 0 : 1) != 1) {
          throw new IllegalArgumentException(
              "split needs exactly one of --at HASH, --key KEY or --pieces N");
        }
        long v;
        if (pieces != null) {
          int n;
          try {
            n = Integer.parseInt(pieces);
          } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--pieces '" + pieces + "' is not a whole number");
          }
          v = admin.splitEvenly(range, n);
        } else {
          v = at != null ? admin.splitAtHash(range, Ring.parse(at))
              : admin.splitAtKey(range, key.getBytes(StandardCharsets.UTF_8));
        }
        done(json, v, "split range " + Ring.hex(range));
        return 0;
      }
      case "merge": {
        if (a.positional.size() < 2 || a.positional.size() > 3) {
          throw new IllegalArgumentException("usage: plbctl merge RANGE [NEXT]");
        }
        long left = Ring.parse(a.positional.get(1));
        long right;
        if (a.positional.size() == 3) {
          right = Ring.parse(a.positional.get(2));
        } else {
          ClusterImage image = admin.getMap(0);
          int i = image.indexOfStart(left);
          if (i < 0) {
            throw PlbClientException.of(io.plb.core.error.ErrorCode.NOT_FOUND,
                "no range starts at " + Ring.hex(left), null);
          }
          if (i + 1 >= image.rangeCount()) {
            throw PlbClientException.of(io.plb.core.error.ErrorCode.INVALID_ARGUMENT,
                "range " + image.range(i).rangeText() + " is the last one; nothing follows it",
                null);
          }
          right = image.range(i + 1).start();
        }
        long v = admin.merge(left, right);
        done(json, v, "merged ranges at " + Ring.hex(left) + " and " + Ring.hex(right));
        return 0;
      }
      case "assign": {
        a.expect(3, "assign RANGE SERVER [--force]");
        long range = Ring.parse(a.positional.get(1));
        long v = admin.assign(range, a.positional.get(2), a.flag("force"));
        done(json, v, "range " + Ring.hex(range) + " assigned to " + a.positional.get(2));
        return 0;
      }
      case "pin":
      case "unpin": {
        a.expect(2, cmd + " RANGE");
        long range = Ring.parse(a.positional.get(1));
        long v = admin.setPinned(range, cmd.equals("pin"));
        done(json, v, "range " + Ring.hex(range) + (cmd.equals("pin") ? " pinned" : " unpinned"));
        return 0;
      }
      case "watch":
        a.expect(1, "watch [--from VERSION] [--count N]");
        return watch(a, endpoints, json);
      case "move": {
        a.expect(2, "move RANGE --to SERVER [--no-wait]");
        long range = Ring.parse(a.positional.get(1));
        String to = a.option("to", null);
        if (to == null) {
          throw new IllegalArgumentException("move needs --to SERVER");
        }
        MoveRangeResponse started = admin.move(range, to);
        if (a.flag("no-wait")) {
          if (json) {
            Map<String, Object> o = Json.object();
            o.put("version", started.getVersion());
            o.put("handover_epoch", started.getHandoverEpoch());
            o.put("phase", "PREPARE");
            out.println(Json.write(o));
          } else {
            out.println("handover of range " + Ring.hex(range) + " to " + to
                + " opened (map version " + started.getVersion() + ", epoch "
                + started.getHandoverEpoch() + ")");
          }
          return 0;
        }
        return followMove(range, to, started, endpoints, json,
            (long) (number(a, "max-wait", "600") * 1000));
      }
      case "abort": {
        a.expect(2, "abort RANGE [--reason TEXT]");
        long range = Ring.parse(a.positional.get(1));
        long v = admin.abortHandover(range, a.option("reason", "aborted by an operator"));
        done(json, v, "handover of range " + Ring.hex(range) + " aborted");
        return 0;
      }
      case "handovers":
        a.expect(1, "handovers");
        printHandovers(admin.handovers(), admin, json);
        return 0;
      case "plan":
        a.expect(1, "plan");
        new BalancerCommands(out).plan(admin.plan(), json);
        return 0;
      case "balancer": {
        String usage = "balancer pause|resume|status [--by WHO]";
        a.expect(2, usage);
        String verb = a.positional.get(1);
        switch (verb) {
          case "pause", "resume" -> {
            boolean pause = verb.equals("pause");
            long v = admin.setBalancerPaused(pause, a.option("by", "operator"));
            if (json) {
              Map<String, Object> o = Json.object();
              o.put("paused", pause);
              o.put("version", v);
              out.println(Json.write(o));
            } else {
              out.println("balancer " + (pause ? "paused" : "resumed") + " (committed; the map "
                  + "stays at version " + v + ")");
            }
          }
          case "status" -> new BalancerCommands(out).status(admin.balancerStatus(), json);
          default -> throw new IllegalArgumentException("usage: plbctl " + usage);
        }
        return 0;
      }
      case "forecast":
        a.expect(1, "forecast [--server ID | --range RANGE] [--buckets N]");
        new BalancerCommands(out).forecast(admin.forecast(BalancerCommands.forecastRequest(
            a.option("server", null), a.option("range", null), a.option("buckets", null))), json);
        return 0;
      case "history":
        a.expect(1, "history [--server ID | --range RANGE] [--from T] [--to T] "
            + "[--resolution fine|coarse]");
        new BalancerCommands(out).history(admin, a.option("server", null),
            a.option("range", null), a.option("from", null), a.option("to", null),
            a.option("resolution", null), json, wallMillis.getAsLong());
        return 0;
      default:
        throw new IllegalArgumentException("unknown command '" + cmd + "' (see plbctl --help)");
    }
  }

  private int server(Args a, PlbAdminClient admin, boolean json) {
    if (a.positional.size() < 3) {
      throw new IllegalArgumentException("usage: plbctl server add|update|remove ID ...");
    }
    String verb = a.positional.get(1);
    String id = a.positional.get(2);
    a.expect(3, "server " + verb + " ID");
    String capacityText = a.option("capacity", null);
    Double capacity = capacityText == null ? null : parseDouble("--capacity", capacityText);
    switch (verb) {
      case "add": {
        String address = a.option("address", null);
        if (address == null) {
          throw new IllegalArgumentException("server add needs --address HOST:PORT");
        }
        done(json, admin.registerServer(id, address, capacity), "server " + id + " registered");
        return 0;
      }
      case "update": {
        String state = a.option("state", null);
        ServerState s = null;
        if (state != null) {
          try {
            s = ServerState.valueOf(state.toUpperCase(Locale.ROOT));
          } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                "--state must be one of " + Arrays.toString(ServerState.values()));
          }
        }
        done(json, admin.updateServer(id, a.option("address", null), capacity, s),
            "server " + id + " updated");
        return 0;
      }
      case "remove":
        done(json, admin.removeServer(id), "server " + id + " removed");
        return 0;
      case "drain":
        return drain(admin, id, json, (long) (number(a, "max-wait", "600") * 1000));
      default:
        throw new IllegalArgumentException("unknown server command '" + verb
            + "' (add, update, remove, drain)");
    }
  }

  /**
   * Marks a server DRAINING (it takes no new ranges) and moves each of its ranges, with the hold
   * handover, to the ACTIVE server owning the fewest ranges — as many at once as the cluster's
   * handover limits allow — until it owns none. Prints each move as it starts and ends.
   */
  private int drain(PlbAdminClient admin, String id, boolean json, long maxWaitMillis) {
    ClusterImage image = admin.getMap(0);
    if (image.server(id) == null) {
      throw new IllegalArgumentException("no queue server '" + id + "' is registered");
    }
    long v = admin.updateServer(id, null, null, ServerState.DRAINING);
    int total = image.rangesOf(id).size();
    if (!json) {
      out.println("server " + id + " is DRAINING (map version " + v + "); moving " + total
          + " range(s) away");
    }
    long deadline = System.nanoTime() + maxWaitMillis * 1_000_000L;
    int moved = 0;
    java.util.Set<Long> moving = new java.util.HashSet<>();
    while (true) {
      image = admin.getMap(0);
      List<RangeEntry> left = image.rangesOf(id);
      for (java.util.Iterator<Long> it = moving.iterator(); it.hasNext(); ) {
        long start = it.next();
        int i = image.indexOfStart(start);
        RangeEntry r = i < 0 ? null : image.range(i);
        if (r == null || r.handover() == null) {
          it.remove();
          boolean away = r == null || !r.owner().equals(id);
          moved += away ? 1 : 0;
          if (!json) {
            out.println("  " + Ring.hex(start) + (away ? " moved to " + (r == null ? "?"
                : r.owner()) : " move aborted; will try again") + "  (" + moved + " of "
                + total + ")");
          }
        }
      }
      if (left.isEmpty() && moving.isEmpty()) {
        break;
      }
      if (System.nanoTime() > deadline) {
        if (!json) {
          out.println("server " + id + " still owns " + left.size() + " range(s) after "
              + maxWaitMillis / 1000 + " s");
        }
        return 1;
      }
      for (RangeEntry r : left) {
        if (r.handover() != null || moving.contains(r.start())) {
          continue;
        }
        String target = leastLoaded(image, id);
        if (target == null) {
          throw new IllegalStateException("no ACTIVE queue server can take " + id
              + "'s ranges");
        }
        try {
          admin.move(r.start(), target);
          moving.add(r.start());
          image = admin.getMap(0);
          if (!json) {
            out.println("  " + Ring.hex(r.start()) + " -> " + target + " ...");
          }
        } catch (PlbClientException e) {
          break; // a handover limit: wait for a running move to end
        }
      }
      java.util.concurrent.locks.LockSupport.parkNanos(200_000_000L); // poll the map
    }
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("server", id);
      o.put("state", "DRAINING");
      o.put("ranges_moved", moved);
      o.put("ranges_left", 0);
      out.println(Json.write(o));
    } else {
      out.println("server " + id + " is drained: it owns no ranges (state DRAINING)");
    }
    return 0;
  }

  private static String leastLoaded(ClusterImage image, String except) {
    String best = null;
    int n = Integer.MAX_VALUE;
    for (var s : image.servers().values()) {
      if (s.state() == ServerState.ACTIVE && !s.id().equals(except)) {
        int c = image.rangesOf(s.id()).size();
        if (c < n) {
          n = c;
          best = s.id();
        }
      }
    }
    return best;
  }

  /** A non-negative number option; a usage error that names the option otherwise. */
  private static double number(Args a, String name, String dflt) {
    String text = a.option(name, dflt);
    double v = parseDouble("--" + name, text);
    if (!(v >= 0) || Double.isInfinite(v)) {
      throw new IllegalArgumentException("--" + name + " must be a number >= 0, got '" + text + "'");
    }
    if (name.equals("timeout") && v == 0) {
      throw new IllegalArgumentException("--timeout must be greater than 0");
    }
    return v;
  }

  private static double parseDouble(String name, String text) {
    try {
      return Double.parseDouble(text);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " '" + text + "' is not a number");
    }
  }

  private void done(boolean json, long version, String what) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("version", version);
      out.println(Json.write(o));
    } else {
      out.println(what + " (map version " + version + ")");
    }
  }

  // ------------------------------------------------------------------ status

  private void printStatus(ClusterStatus s, boolean json) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("leader", s.getLeaderId().isEmpty() ? null : s.getLeaderId());
      o.put("leader_address", s.getLeaderAddress().isEmpty() ? null : s.getLeaderAddress());
      o.put("term", s.getTerm());
      o.put("map_version", s.getMapVersion());
      o.put("ranges", s.getRanges());
      o.put("servers", s.getServers());
      List<Object> members = new ArrayList<>();
      for (NodeStatus m : s.getMembersList()) {
        Map<String, Object> mo = Json.object();
        mo.put("id", m.getId());
        mo.put("role", m.getRole().name());
        mo.put("api_address", m.getApiAddress());
        mo.put("raft_address", m.getRaftAddress());
        mo.put("term", m.getTerm());
        mo.put("applied_index", m.getAppliedIndex());
        mo.put("commit_index", m.getCommitIndex());
        mo.put("map_version", m.getMapVersion());
        mo.put("snapshot_index", m.getSnapshotIndex());
        mo.put("error", m.getError().isEmpty() ? null : m.getError());
        members.add(mo);
      }
      o.put("members", members);
      out.println(Json.write(o));
      return;
    }
    out.println("leader " + (s.getLeaderId().isEmpty() ? "(none)" : s.getLeaderId() + " at "
        + s.getLeaderAddress()) + " · term " + s.getTerm() + " · map version "
        + s.getMapVersion() + " · " + s.getRanges() + " ranges · " + s.getServers()
        + " queue servers");
    Table t = new Table("NODE", "ROLE", "API", "RAFT", "TERM", "APPLIED", "COMMIT", "MAP",
        "SNAPSHOT", "NOTE");
    for (NodeStatus m : s.getMembersList()) {
      boolean down = m.getRole() == io.plb.proto.v1.NodeRole.UNREACHABLE;
      t.row(m.getId(), m.getRole(), m.getApiAddress(), m.getRaftAddress(),
          down ? "-" : m.getTerm(), down ? "-" : m.getAppliedIndex(),
          down ? "-" : m.getCommitIndex(), down ? "-" : m.getMapVersion(),
          down ? "-" : m.getSnapshotIndex(), m.getError());
    }
    out.print(t.render());
  }

  // ------------------------------------------------------------------ map

  static Map<String, Object> rangeJson(RangeEntry r) {
    Map<String, Object> o = Json.object();
    o.put("start", Ring.hex(r.start()));
    o.put("end", Ring.hexEnd(r.end()));
    o.put("owner", r.isAssigned() ? r.owner() : null);
    o.put("epoch", r.epoch());
    if (r.handover() == null) {
      o.put("handover", null);
    } else {
      Map<String, Object> h = Json.object();
      h.put("target", r.handover().target());
      h.put("phase", r.handover().phase().name());
      o.put("handover", h);
    }
    o.put("pinned", r.pinned());
    return o;
  }

  static Map<String, Object> serverJson(QueueServerInfo s) {
    Map<String, Object> o = Json.object();
    o.put("id", s.id());
    o.put("address", s.address());
    o.put("capacity", s.capacity());
    o.put("state", s.state().name());
    return o;
  }

  /** The {@code ranges} and {@code servers} arrays of a full map. */
  private static void putMap(Map<String, Object> o, ClusterImage image) {
    List<Object> ranges = new ArrayList<>();
    for (RangeEntry r : image.ranges()) {
      ranges.add(rangeJson(r));
    }
    o.put("ranges", ranges);
    List<Object> servers = new ArrayList<>();
    for (QueueServerInfo s : image.servers().values()) {
      servers.add(serverJson(s));
    }
    o.put("servers", servers);
  }

  private void printMap(ClusterImage image, boolean json) {
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("version", image.version());
      putMap(o, image);
      out.println(Json.write(o));
      return;
    }
    out.println("map version " + image.version() + " · " + image.rangeCount() + " ranges · "
        + image.servers().size() + " queue servers");
    Table t = new Table("START", "END", "SHARE", "OWNER", "EPOCH", "PINNED", "HANDOVER");
    for (RangeEntry r : image.ranges()) {
      double share = Ring.width(r.start(), r.end()) / 0x1p64 * 100;
      t.row(Ring.hex(r.start()), Ring.hexEnd(r.end()), String.format("%.2f%%", share),
          r.isAssigned() ? r.owner() : "-", r.epoch(), r.pinned() ? "yes" : "no",
          r.handover() == null ? "-" : r.handover().phase() + " → " + r.handover().target());
    }
    out.print(t.render());
  }

  /**
   * The registered queue servers with the ranges they own and, as each server reports it
   * ({@code GetQueueStatus}, asked with a 2 s deadline), its ownership lease: a server without
   * one accepts and delivers nothing (docs/design.md §5 "Owner leases"); and the producers'
   * resends it recognised and stored nothing for (DUPS; §5 "Idempotent publish"). A server that
   * does not answer shows "?" (null in JSON).
   */
  private void printServers(ClusterImage image, boolean json) {
    Map<String, Integer> owned = new LinkedHashMap<>();
    for (RangeEntry r : image.ranges()) {
      if (r.isAssigned()) {
        owned.merge(r.owner(), 1, Integer::sum);
      }
    }
    Map<String, QueueStatusProbe.Answer> queues =
        QueueStatusProbe.fetch(image.servers().values(), Duration.ofSeconds(2));
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("version", image.version());
      List<Object> servers = new ArrayList<>();
      for (QueueServerInfo s : image.servers().values()) {
        Map<String, Object> so = serverJson(s);
        so.put("ranges", owned.getOrDefault(s.id(), 0));
        QueueStatus q = statusOf(queues, s.id());
        so.put("lease_held", q == null ? null : q.getLeaseHeld());
        so.put("lease_remaining_ms", q == null ? null : q.getLeaseRemainingMillis());
        so.put("fenced_total", q == null ? null : q.getFencedTotal());
        so.put("duplicates_total", q == null ? null : q.getDuplicatesTotal());
        so.put("fenced_producers_total", q == null ? null : q.getFencedProducersTotal());
        so.put("producer_sequences", q == null ? null : q.getProducerSequences());
        servers.add(so);
      }
      o.put("servers", servers);
      out.println(Json.write(o));
      return;
    }
    out.println("map version " + image.version() + " · " + image.servers().size()
        + " queue servers");
    Table t = new Table("ID", "ADDRESS", "CAPACITY", "STATE", "RANGES", "LEASE", "FENCED",
        "DUPS");
    for (QueueServerInfo s : image.servers().values()) {
      QueueStatus q = statusOf(queues, s.id());
      t.row(s.id(), s.address(), s.capacity(), s.state(), owned.getOrDefault(s.id(), 0),
          q == null ? "?" : q.getLeaseHeld() ? seconds(q.getLeaseRemainingMillis()) : "none",
          q == null ? "?" : q.getFencedTotal(), q == null ? "?" : q.getDuplicatesTotal());
    }
    out.print(t.render());
  }

  private static QueueStatus statusOf(Map<String, QueueStatusProbe.Answer> queues, String id) {
    QueueStatusProbe.Answer a = queues.get(id);
    return a == null ? null : a.status();
  }

  // ------------------------------------------------------------------ handovers

  /**
   * Open handovers, with what each is waiting for as the queue servers report it: the source's
   * remaining backlog (it must drain before SWITCH can end) and the messages held at the source
   * (hold buffer) and at the target (prefix and held queue). A queue server that does not answer
   * within two seconds shows "?" (null in JSON).
   */
  private void printHandovers(ListHandoversResponse r, PlbAdminClient admin, boolean json) {
    Map<String, QueueStatusProbe.Answer> queues = Map.of();
    if (r.getHandoversCount() > 0) {
      ClusterImage image = admin.getMap(0);
      Set<String> involved = new HashSet<>();
      for (HandoverInfo h : r.getHandoversList()) {
        RangeEntry e = Wire.fromProto(h.getRange());
        involved.add(e.owner());
        involved.add(e.handover().target());
      }
      List<QueueServerInfo> servers = new ArrayList<>();
      for (String id : involved) {
        QueueServerInfo s = image.servers().get(id);
        if (s != null) {
          servers.add(s);
        }
      }
      queues = QueueStatusProbe.fetch(servers, Duration.ofSeconds(2));
    }
    if (json) {
      Map<String, Object> o = Json.object();
      o.put("version", r.getVersion());
      o.put("leader", r.getLeaderId());
      List<Object> list = new ArrayList<>();
      for (HandoverInfo h : r.getHandoversList()) {
        RangeEntry e = Wire.fromProto(h.getRange());
        Map<String, Object> ho = rangeJson(e);
        ho.put("source", e.owner());
        ho.put("handover_epoch", h.getHandoverEpoch());
        ho.put("age_ms", h.getAgeMillis());
        ho.put("timeout_ms", h.getTimeoutMillis() == 0 ? null : h.getTimeoutMillis());
        RangeLoad src = rangeLoad(queues, e.owner(), e.start());
        RangeLoad dst = rangeLoad(queues, e.handover().target(), e.start());
        ho.put("source_backlog", src == null ? null : src.getQueued());
        ho.put("held_at_source", src == null ? null : src.getHeld());
        ho.put("held_at_target", dst == null ? null : dst.getHeld());
        list.add(ho);
      }
      o.put("handovers", list);
      out.println(Json.write(o));
      return;
    }
    out.println(r.getHandoversCount() + " open handover(s) · map version " + r.getVersion()
        + " · leader " + r.getLeaderId());
    Table t = new Table("RANGE", "SOURCE", "TARGET", "PHASE", "EPOCH", "AGE", "ABORTS IN",
        "BACKLOG", "HELD SRC", "HELD TGT");
    for (HandoverInfo h : r.getHandoversList()) {
      RangeEntry e = Wire.fromProto(h.getRange());
      String abortsIn = h.getTimeoutMillis() == 0 ? "-"
          : seconds(Math.max(0, h.getTimeoutMillis() - h.getAgeMillis()));
      RangeLoad src = rangeLoad(queues, e.owner(), e.start());
      RangeLoad dst = rangeLoad(queues, e.handover().target(), e.start());
      t.row(e.rangeText(), e.owner(), e.handover().target(), e.handover().phase(),
          h.getHandoverEpoch(), seconds(h.getAgeMillis()), abortsIn,
          src == null ? "?" : src.getQueued(), src == null ? "?" : src.getHeld(),
          dst == null ? "?" : dst.getHeld());
    }
    out.print(t.render());
    for (Map.Entry<String, QueueStatusProbe.Answer> q : new TreeMap<>(queues).entrySet()) {
      if (q.getValue().error() != null) {
        out.println("queue server " + q.getKey() + " did not answer: " + q.getValue().error());
      }
    }
  }

  private static RangeLoad rangeLoad(Map<String, QueueStatusProbe.Answer> queues, String server,
      long start) {
    QueueStatusProbe.Answer a = queues.get(server);
    return a == null ? null : a.range(start);
  }

  private static String seconds(long millis) {
    return String.format("%.1fs", millis / 1000.0);
  }

  /** Follows a move on the watch stream until it completes or is aborted. */
  private int followMove(long range, String to, MoveRangeResponse started, String endpoints,
      boolean json, long maxWaitMillis) {
    CountDownLatch done = new CountDownLatch(1);
    int[] exit = {1};
    String[] lastPhase = {""};
    long epoch = started.getHandoverEpoch();
    MapWatcher.Listener listener = (image, delta) -> {
      if (image.version() < started.getVersion()) {
        return;
      }
      RangeEntry r = image.rangeFor(range);
      String phase;
      if (r.start() != range) {
        phase = "GONE"; // split or merged: the move is over
      } else if (r.handover() != null && r.epoch() + 1 == epoch) {
        phase = r.handover().phase().name();
      } else if (r.owner().equals(to) && r.epoch() == epoch) {
        phase = "COMPLETE";
      } else {
        phase = "ABORTED";
      }
      if (phase.equals(lastPhase[0])) {
        return;
      }
      lastPhase[0] = phase;
      synchronized (out) {
        if (json) {
          Map<String, Object> o = Json.object();
          o.put("version", image.version());
          o.put("phase", phase);
          o.put("range", rangeJson(r));
          o.put("cause", delta == null ? null : delta.cause());
          out.println(Json.write(o));
        } else {
          out.println("v" + image.version() + "  " + phase + "  " + r.rangeText() + " owner "
              + r.owner() + " epoch " + r.epoch()
              + (r.handover() == null ? "" : " → " + r.handover().target())
              + (delta == null ? "" : "  (" + delta.cause() + ")"));
        }
        out.flush();
      }
      if (phase.equals("COMPLETE")) {
        exit[0] = 0;
        done.countDown();
      } else if (phase.equals("ABORTED") || phase.equals("GONE")) {
        exit[0] = 1;
        done.countDown();
      }
    };
    try (Endpoints eps = Endpoints.parse(endpoints);
        MapWatcher watcher = new MapWatcher(eps, listener)) {
      watcher.start();
      if (!done.await(maxWaitMillis, java.util.concurrent.TimeUnit.MILLISECONDS)) {
        err.println("plbctl: DEADLINE_EXCEEDED: the handover of " + Ring.hex(range)
            + " did not finish within " + maxWaitMillis / 1000 + " s; it goes on (plbctl handovers)");
        return 1;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return 1;
    }
    if (exit[0] != 0) {
      err.println("plbctl: ABORTED: the handover of " + Ring.hex(range) + " to " + to
          + " did not complete (" + lastPhase[0] + ")");
    }
    return exit[0];
  }

  // ------------------------------------------------------------------ watch

  private int watch(Args a, String endpoints, boolean json) {
    long count = (long) number(a, "count", "0");
    long from = (long) number(a, "from", "0");
    if (from > 0) {
      return watchFrom(endpoints, from, count, json);
    }
    CountDownLatch done = new CountDownLatch(1);
    long[] seen = {0};
    MapWatcher.Listener listener = new MapWatcher.Listener() {
      @Override
      public void onMap(ClusterImage image, MapDelta delta) {
        if (image.version() <= from && delta == null && from > 0) {
          return;
        }
        synchronized (out) {
          if (json) {
            out.println(Json.write(watchJson(image, delta)));
          } else if (delta == null) {
            out.println("v" + image.version() + "  full map: " + image.rangeCount() + " ranges, "
                + image.servers().size() + " queue servers");
          } else {
            out.println("v" + image.version() + "  " + delta.cause() + describe(delta)
                + (delta.actionCause() == null ? ""
                    : "\n      because " + delta.actionCause().summary()
                        + "\n      " + delta.actionCause().detail()));
          }
          out.flush();
        }
        if (count > 0 && ++seen[0] >= count) {
          done.countDown();
        }
      }
    };
    try (Endpoints eps = Endpoints.parse(endpoints);
        MapWatcher watcher = new MapWatcher(eps, listener)) {
      watcher.start();
      done.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }

  /**
   * Prints every change after version {@code from}, as the nodes' change history holds them (a
   * full map first if a node no longer has them); resumes on the next node when a stream ends.
   */
  private int watchFrom(String endpoints, long from, long count, boolean json) {
    long after = from;
    long seen = 0;
    int failures = 0;
    try (Endpoints eps = Endpoints.parse(endpoints)) {
      for (int node = 0; count == 0 || seen < count; node++) {
        String address = eps.get(node % eps.size());
        try {
          java.util.Iterator<io.plb.proto.v1.WatchMapResponse> it =
              io.plb.proto.v1.MapServiceGrpc.newBlockingStub(eps.channel(address))
                  .watchMap(io.plb.proto.v1.WatchMapRequest.newBuilder()
                      .setAfterVersion(after).setNearest(true).build());
          MapChunks.Assembly chunks = new MapChunks.Assembly();
          while (it.hasNext() && (count == 0 || seen < count)) {
            io.plb.proto.v1.WatchMapResponse r = it.next();
            failures = 0;
            if (r.hasFullMap()) {
              ClusterImage image = chunks.add(r.getFullMap());
              if (image == null) {
                continue; // more chunks to come
              }
              after = image.version();
              printChange(image, null, json);
              seen++;
            } else if (r.hasDelta()) {
              MapDelta d = io.plb.client.wire.Wire.fromProto(r.getDelta());
              after = d.version();
              printChange(null, d, json);
              seen++;
            }
          }
          if (count > 0 && seen >= count) {
            break;
          }
        } catch (io.grpc.StatusRuntimeException e) {
          if (++failures > 3 * eps.size()) {
            throw io.plb.client.PlbClientException.from(e);
          }
        }
      }
    }
    return 0;
  }

  private void printChange(ClusterImage image, MapDelta delta, boolean json) {
    synchronized (out) {
      if (json) {
        if (delta == null) {
          out.println(Json.write(watchJson(image, null)));
        } else {
          Map<String, Object> o = deltaJson(delta);
          out.println(Json.write(o));
        }
      } else if (delta == null) {
        out.println("v" + image.version() + "  full map: " + image.rangeCount() + " ranges, "
            + image.servers().size() + " queue servers");
      } else {
        out.println("v" + delta.version() + "  " + delta.cause() + describe(delta)
            + (delta.actionCause() == null ? ""
                : "\n      because " + delta.actionCause().summary()
                    + "\n      " + delta.actionCause().detail()));
      }
      out.flush();
    }
  }

  private static String describe(MapDelta d) {
    List<String> parts = new ArrayList<>();
    for (RangeEntry r : d.upsertedRanges()) {
      parts.add(r.rangeText() + " → " + (r.isAssigned() ? r.owner() : "-") + " epoch " + r.epoch()
          + (r.pinned() ? " pinned" : ""));
    }
    for (QueueServerInfo s : d.upsertedServers()) {
      parts.add("server " + s.id() + " " + s.address() + " " + s.state() + " capacity "
          + s.capacity());
    }
    for (String s : d.removedServers()) {
      parts.add("server " + s + " removed");
    }
    return parts.isEmpty() ? "" : "\n      " + String.join("\n      ", parts);
  }

  static Map<String, Object> watchJson(ClusterImage image, MapDelta delta) {
    Map<String, Object> o = Json.object();
    o.put("version", image.version());
    if (delta == null) {
      o.put("type", "full_map");
      putMap(o, image);
    } else {
      o.putAll(deltaJson(delta));
    }
    return o;
  }

  static Map<String, Object> deltaJson(MapDelta delta) {
    Map<String, Object> o = Json.object();
    o.put("version", delta.version());
    {
      o.put("type", "delta");
      o.put("prev_version", delta.prevVersion());
      o.put("cause", delta.cause());
      o.put("action_cause", delta.actionCause() == null ? null
          : BalancerCommands.causeJson(delta.actionCause()));
      List<Object> removed = new ArrayList<>();
      for (long s : delta.removedRangeStarts()) {
        removed.add(Ring.hex(s));
      }
      o.put("removed_range_starts", removed);
      List<Object> ranges = new ArrayList<>();
      for (RangeEntry r : delta.upsertedRanges()) {
        ranges.add(rangeJson(r));
      }
      o.put("upserted_ranges", ranges);
      o.put("removed_servers", delta.removedServers());
      List<Object> servers = new ArrayList<>();
      for (QueueServerInfo s : delta.upsertedServers()) {
        servers.add(serverJson(s));
      }
      o.put("upserted_servers", servers);
    }
    return o;
  }

  // ------------------------------------------------------------------ arguments

  /** Positional words and {@code --name value} / {@code --name=value} / {@code --flag} options. */
  static final class Args {
    private static final java.util.Set<String> FLAGS =
        java.util.Set.of("json", "force", "help", "no-wait");
    private static final java.util.Set<String> OPTIONS = java.util.Set.of(
        "endpoints", "timeout", "at", "key", "address", "capacity", "state", "from", "count",
        "to", "reason", "max-wait", "by", "server", "range", "buckets", "resolution", "pieces");
    final List<String> positional = new ArrayList<>();
    final Map<String, String> options = new LinkedHashMap<>();

    static Args parse(String[] argv) {
      Args a = new Args();
      for (int i = 0; i < argv.length; i++) {
        String s = argv[i];
        if (s.equals("-h")) {
          s = "--help";
        }
        if (s.startsWith("--") && s.length() > 2) {
          String name = s.substring(2);
          String value = null;
          int eq = name.indexOf('=');
          if (eq >= 0) {
            value = name.substring(eq + 1);
            name = name.substring(0, eq);
          }
          if (FLAGS.contains(name)) {
            if (value != null) {
              throw new IllegalArgumentException("--" + name + " takes no value");
            }
            a.options.put(name, "true");
          } else if (OPTIONS.contains(name)) {
            if (value == null) {
              if (i + 1 >= argv.length) {
                throw new IllegalArgumentException("--" + name + " needs a value");
              }
              value = argv[++i];
            }
            a.options.put(name, value);
          } else {
            throw new IllegalArgumentException("unknown option --" + name
                + " (see plbctl --help)");
          }
        } else {
          a.positional.add(s);
        }
      }
      return a;
    }

    boolean flag(String name) {
      return options.containsKey(name);
    }

    String option(String name, String dflt) {
      return options.getOrDefault(name, dflt);
    }

    void expect(int words, String usage) {
      if (positional.size() != words) {
        throw new IllegalArgumentException("usage: plbctl " + usage);
      }
    }
  }
}
